"""What the misfit of a measurement model says about the model: white noise, or correlated error.

The misfit r = y − A x̂ of a denoised estimate x̂ under the blur model A holds what the model does not
explain. Where the model is right (the photo's blur is the PSF, its noise independent per pixel), r is white
noise; errors that neighbouring pixels share (demosaicing, JPEG, a lens that the PSF family cannot fit) make
it correlated. Its lag-1 autocorrelation

    c = ½ (⟨r(i, j), r(i, j+1)⟩ + ⟨r(i, j), r(i+1, j)⟩) / ⟨r, r⟩   (r centred per image)

read 0.13–0.41 on white-noise photos and 0.57–0.62 on lens-PSF + demosaiced + JPEG ones (camera development
set); each threshold's false alarms on photos the model explains and misses on camera photos are measured by
scripts/misfit_alarms.py (docs/DECISIONS.md). `whiteness` turns c into a weight: 1 at or below WHITE_CORRELATION,
0 at or above a `correlated` bar, linear in between. The data step sets λ and the blind PSF's softening by it (hidd.sampling.blur_consistency),
and the no-harm guard hedges a result by it (hidd.no_harm).
"""
from __future__ import annotations

import torch

WHITE_CORRELATION = 0.35  # misfit lag-1 autocorrelation at or below which it counts as white noise
CORRELATED_MISFIT = 0.55  # ... at or above which as correlated error (demosaicing, JPEG, PSF mismatch)
WHITE_PSF_CORRELATION = 0.45  # ... at or above which the blind PSF keeps its softening


def lag1_correlation(residual: torch.Tensor) -> torch.Tensor:
    """Per image (B,): the mean of the horizontal and vertical lag-1 autocorrelations of residuals (B, C, H, W)."""
    r = residual.double() - residual.double().mean(dim=(-2, -1), keepdim=True)
    power = r.square().flatten(1).mean(dim=1).clamp_min(1e-30)
    across = (r[..., 1:] * r[..., :-1]).flatten(1).mean(dim=1)
    down = (r[..., 1:, :] * r[..., :-1, :]).flatten(1).mean(dim=1)
    return 0.5 * (across + down) / power


def whiteness(correlation: torch.Tensor, correlated: float = CORRELATED_MISFIT) -> torch.Tensor:
    """How white a misfit of lag-1 autocorrelation `correlation` is: 1 at or below WHITE_CORRELATION, 0 at or above
    `correlated`, linear in between."""
    return ((correlated - correlation) / (correlated - WHITE_CORRELATION)).clamp(0, 1)
