"""Denoising score matching (paper Eq. 7), continuous in time."""
from __future__ import annotations

import torch

from hidd.sde import SDE, _expand

REDUCTIONS = ("sum", "mean")  # training.loss_reduction


def score_matching_loss(model, sde: SDE, x0: torch.Tensor, *, t_min: float = 1e-5, reduction: str = "sum",
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """E_t E_z ‖σ_t s_θ(x0 + σ_t z, σ_t) + z‖², t ~ U(t_min, 1), averaged over the batch.

    The σ-weighting λ(t) = σ_t² of the reference makes every noise level count about equally.
    reduction: 'sum' adds the per-pixel terms of an image (the reference), 'mean' averages them.
    generator: draws t and z, so a step's randomness can be made a function of the step alone.
    """
    b = x0.shape[0]
    t = torch.rand(b, device=x0.device, generator=generator) * (1.0 - t_min) + t_min
    z = torch.randn(x0.shape, device=x0.device, generator=generator, dtype=x0.dtype)
    mean, std = sde.marginal_prob(x0, t)
    score = model(mean + _expand(std, x0) * z, std)
    per_pixel = (score.float() * _expand(std, x0) + z) ** 2
    dims = tuple(range(1, x0.dim()))
    if reduction not in REDUCTIONS:
        raise ValueError(f"training.loss_reduction: expected one of {', '.join(REDUCTIONS)}, got '{reduction}'")
    per_image = per_pixel.sum(dim=dims) if reduction == "sum" else per_pixel.mean(dim=dims)
    return per_image.mean()
