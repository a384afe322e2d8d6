"""GroupNorm with a choice of how its statistics are reduced: PyTorch's kernel, or a split reduction.

For x (B, C, H, W) in G groups of C/G channels, GroupNorm is y = (x − μ_bg) / √(σ²_bg + ε) · γ_c + β_c, with
μ_bg and σ²_bg the mean and (biased) variance of image b's n = (C/G)·H·W values in group g. PyTorch's CUDA kernel
reduces each (image, group) in one thread block: at batch 1 and 1680×1120, 8 to 32 blocks for millions of values
each, a few of a card's 100+ multiprocessors (GroupNorm was 54 % of the network's time on an H200).

The split reduction cuts each (image, group) into K = (C/G)·H equal chunks, one image row of one channel (W
values each):
1. per chunk k, in float32, its mean m_k and variance v_k (torch.var_mean: Welford within the chunk), B·C·H
   partial results, which the reduction kernels spread over the whole card;
2. combined with Chan's parallel formula for equal counts: M2 = Σ_k M2_k + W Σ_k (m_k − μ)², i.e.
   μ = mean_k m_k and σ² = M2 / (K·W) = mean_k v_k + mean_k (m_k − μ)² (both sums of non-negative terms: stable when
   |μ| ≫ σ, unlike E[x²] − E[x]²);
3. one per-channel affine y = x·a + b, a_bc = γ_c / √(σ²_bg + ε), b_bc = β_c − μ_bg·a_bc (one fused addcmul).
The result is float32, as the statistics (as nn.GroupNorm's under CUDA autocast, which runs it in float32), in
x's memory layout. Parameters and state-dict keys are nn.GroupNorm's (weight, bias), so checkpoints load strictly.

Which reduction a GroupNorm uses is its `impl`, 'native' or 'split'; resolve_norm('auto', device) picks it per device
type (NORM_BY_DEVICE: split on CUDA, native elsewhere, where PyTorch's kernel is already parallel over the image).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("auto", "native", "split")
NORM_BY_DEVICE = {"cuda": "split"}  # 'auto' on a device type; any other: native


def split_group_norm(x: torch.Tensor, num_groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                     eps: float) -> torch.Tensor:
    """F.group_norm(x, num_groups, weight, bias, eps) by a split reduction (module docstring); x (B, C, H, W)."""
    b, c, h, w = x.shape
    var, mean = torch.var_mean(x.float(), dim=-1, correction=0)  # (B, C, H): one chunk per row of a channel
    mean, var = mean.reshape(b, num_groups, -1), var.reshape(b, num_groups, -1)  # (B, G, K) chunks of equal count W
    group_mean = mean.mean(dim=-1, keepdim=True)
    group_var = var.mean(dim=-1, keepdim=True) + (mean - group_mean).square().mean(dim=-1, keepdim=True)  # Chan
    scale = (group_var + eps).rsqrt().expand(b, num_groups, c // num_groups).reshape(b, c)
    if weight is not None:
        scale = scale * weight.float()
    shift = -group_mean.expand(b, num_groups, c // num_groups).reshape(b, c) * scale
    if bias is not None:
        shift = shift + bias.float()
    return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])


_REDUCTIONS = {"native": F.group_norm, "split": split_group_norm}


def resolve_norm(name: str, device: str | torch.device) -> str:
    """The reduction ('native' or 'split') that norm `name` means on `device`."""
    if name not in NORMS:
        raise ValueError(f"norm '{name}': choose from {', '.join(NORMS)}")
    return NORM_BY_DEVICE.get(torch.device(device).type, "native") if name == "auto" else name


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters and state dict) whose statistics are reduced by `impl`: 'native' or 'split'."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, impl: str = "native"):
        super().__init__(num_groups, num_channels, eps=eps)
        if impl not in _REDUCTIONS:
            raise ValueError(f"GroupNorm impl '{impl}': choose from {', '.join(_REDUCTIONS)}")
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _REDUCTIONS[self.impl](x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl}"


def use_norm(model: nn.Module, name: str, device: str | torch.device) -> nn.Module:
    """Set every GroupNorm of `model` to norm `name` ('auto': by `device`'s type), in place; returns the model."""
    impl = resolve_norm(name, device)
    for module in model.modules():
        if isinstance(module, GroupNorm):
            module.impl = impl
    return model
