"""Inference precision of the score network: fp32, or autocast to bf16 / fp16, and its memory layout.

'auto' picks bf16 on CUDA cards with bf16 tensor cores (compute capability ≥ 8, Ampere on),
fp16 on older cards and fp32 on CPU, where low-precision autocast is rarely faster. On CUDA a
low precision also switches to channels_last, the layout tensor-core convolutions want; on a CPU every precision
runs channels_last (oneDNN's convolutions take it without reordering; the same sums in another order, so fp32
results agree to rounding).
The network's output is always returned in fp32 and contiguous: the sampler stays in fp32.

Two more choices of how the network runs, neither changing what it computes beyond rounding: its GroupNorms'
reduction, `norm` (hidd.models.norm: 'auto' is a split reduction on CUDA, PyTorch's kernel elsewhere), and
torch.compile, `compile` (hidd.models.compile: off, default, max-autotune, reduce-overhead).
"""
from __future__ import annotations

import torch

from hidd.models.compile import check_compile, compiled
from hidd.models.norm import resolve_norm, use_norm

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
TRAINING_PRECISIONS = ("fp32", "bf16")  # training.precision: bf16 autocasts the forward pass (CUDA)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(name: str, device: str | torch.device) -> torch.dtype:
    """The compute dtype that precision `name` means on `device`."""
    if name not in PRECISIONS:
        raise ValueError(f"precision '{name}': choose from {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if name != "auto":
        return _DTYPES[name]
    if device.type != "cuda":
        return torch.float32
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


class InferencePrecision:
    """Runs a network at one precision: `run(network, x, sigma)` instead of `model(x, sigma)`, where
    `network = prepare(model)` (the model in this precision's layout and norm, compiled if asked)."""

    def __init__(self, name: str, device: str | torch.device, *, norm: str = "auto", compile: str = "off"):
        self.device = torch.device(device)
        self.dtype = resolve_precision(name, self.device)  # compute dtype inside the network
        self.channels_last = self.device.type == "cpu" or (self.device.type == "cuda" and self.dtype != torch.float32)
        self.norm = resolve_norm(norm, self.device)  # the GroupNorms' reduction: 'native' or 'split'
        check_compile(compile, self.device)
        self.compile = compile

    @property
    def name(self) -> str:
        return next(k for k, v in _DTYPES.items() if v == self.dtype)

    def prepare(self, model: torch.nn.Module):
        """Put the model's weights in the layout this precision runs in and its GroupNorms on this norm (in place);
        returns the network to `run`: the model, or its compiled version (sharing its weights)."""
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return compiled(use_norm(model, self.norm, self.device), self.compile, self.device)

    def run(self, network, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype == torch.float32:
            return network(x, sigma).float().contiguous()
        with torch.autocast(self.device.type, dtype=self.dtype):
            out = network(x, sigma)
        return out.float().contiguous()
