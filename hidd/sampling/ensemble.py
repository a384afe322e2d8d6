"""Self-ensemble of the score over mirror images: horizontal, vertical and both flips.

The score network is not exactly equivariant to mirroring, while natural images are statistically
symmetric under it; averaging F⁻¹ s_θ(F x, σ) over k flips F lowers the denoiser's error at k network
evaluations per call. Flips keep the image's shape (transposes would not), so shape-specific
wrappers of the network (hidd.tiling) still apply.
"""
from __future__ import annotations

import torch

from hidd.sampling.base import ScoreFn

FLIPS = [(), (-1,), (-2,), (-2, -1)]  # flipped dims, in the order used: k = 1, 2, 4 take the first k
ENSEMBLE_SIZES = (1, 2, 4)  # sampler.score_ensemble


class FlipEnsembleScore:
    """score_fn averaged over the first `size` of FLIPS (size 1: score_fn itself)."""

    def __init__(self, score_fn: ScoreFn, size: int):
        if size not in ENSEMBLE_SIZES:
            raise ValueError(f"sampler.score_ensemble must be one of {ENSEMBLE_SIZES}, got {size}")
        self.score_fn = score_fn  # s_θ(x, σ); called `size` times per call of the ensemble
        self.flips = FLIPS[:size]

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if len(self.flips) == 1:
            return self.score_fn(x, sigma)
        total = torch.zeros_like(x)
        for dims in self.flips:
            total += self.score_fn(x.flip(dims), sigma).flip(dims) if dims else self.score_fn(x, sigma)
        return total / len(self.flips)
