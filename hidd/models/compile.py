"""torch.compile of a score network for inference (hidd-reconstruct --compile MODE).

Modes (torch.compile's): 'off' runs the network as it is; 'default' compiles it with inductor (fused kernels: a
GroupNorm's statistics and its affine, SiLU and the residual sums each become one kernel); 'max-autotune' also
benchmarks kernel configurations (a longer compilation); 'reduce-overhead' adds CUDA graphs, which replay the
network's hundreds of kernel launches at once, for small images where launching costs more than computing (CUDA
only). A CUDA graph's outputs live in its own memory, which its next replay overwrites: they are cloned.

Photos of more than DYNAMIC_PIXELS pixels, each of its own size, run through a compilation with dynamic shapes
(one graph for every size, no recompilation per photo; no CUDA graphs, which would record and keep one per size,
and launches cost little there); smaller images (the 256² loop, tiles) through a static one, specialised to each
shape (the fastest kernels, and the fixed shapes CUDA graphs need). The two keep their compiled graphs apart.
The backend is inductor; HIDD_COMPILE_BACKEND names another ('eager' in the tests: traced by dynamo, not compiled).
"""
from __future__ import annotations

import os

import torch
from torch import nn

COMPILE_MODES = ("off", "default", "max-autotune", "reduce-overhead")
DYNAMIC_PIXELS = 512 * 512  # images larger than this (per image, H·W) run with dynamic shapes
BACKEND_ENV = "HIDD_COMPILE_BACKEND"


def check_compile(mode: str, device: str | torch.device) -> None:
    """ValueError in one line where compile mode `mode` is unknown or cannot run on `device`."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile '{mode}': choose from {', '.join(COMPILE_MODES)}")
    if mode == "reduce-overhead" and torch.device(device).type != "cuda":
        raise ValueError(f"compile 'reduce-overhead' replays CUDA graphs: it needs a CUDA device, not "
                         f"{torch.device(device).type} (use 'default' there)")


class CompiledNetwork:
    """`network(x, sigma)` as the model's, compiled in `mode` (not 'off'): dynamic shapes for full-size photos."""

    def __init__(self, model: nn.Module, mode: str, device: str | torch.device):
        check_compile(mode, device)
        if mode == "off":
            raise ValueError("compile 'off' is the model itself, not a CompiledNetwork")
        self.model, self.mode = model, mode
        backend = os.environ.get(BACKEND_ENV, "inductor")

        def options(mode: str) -> dict:  # (only inductor takes a mode)
            return dict(backend=backend, isolate_recompiles=True,
                        **({"mode": mode} if backend == "inductor" and mode != "default" else {}))

        self.graphs = mode == "reduce-overhead"  # on the static compilation only
        self.static = torch.compile(model, dynamic=False, **options(mode))
        self.dynamic = torch.compile(model, dynamic=True, **options("default" if self.graphs else mode))

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] * x.shape[-1] > DYNAMIC_PIXELS:
            return self.dynamic(x, sigma)
        if not self.graphs:
            return self.static(x, sigma)
        torch.compiler.cudagraph_mark_step_begin()  # the previous outputs are no longer read from the graph
        return self.static(x, sigma).clone()


def compiled(model: nn.Module, mode: str, device: str | torch.device):
    """The network to call: the model itself ('off') or its CompiledNetwork."""
    check_compile(mode, device)
    return model if mode == "off" else CompiledNetwork(model, mode, device)
