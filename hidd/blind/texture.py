"""Where a photo holds texture: the half of its pixels with the most local gradient energy.

A blur can be read only where the photo has structure for it to soften; in a flat region any radius explains the
pixels. The local gradient energy of a grey image g (…, H, W) is

    E = U_w( |∇(G_σ * g)|² ),   σ = SMOOTHING px, U_w the mean over a w × w window, w = WINDOW px,

(∇: central differences, hidd.blind.filters.gradient; G_σ and U_w with reflected borders), and a pixel is
*textured* where E exceeds its image's median: half of each image whatever its contrast, less where many pixels
share the median (none of a flat image).
`scripts/bench_defocus_map.py` scores a map on that half apart (docs/BENCHMARKS.md, "Where the map's error costs
the most": about 70 % of what the true map gains over the learned one lies there, measured with a 16 px window),
and map training may weight it (hidd.map_train, training.texture_weight).
"""
from __future__ import annotations

import torch

from hidd.blind.filters import gaussian_filter, gradient, uniform_filter

SMOOTHING = 1.0  # px: σ of the Gaussian before the gradient (pixel noise and JPEG's ±1 steps)
WINDOW = 17  # px: the window the energy is averaged over (about a 12 px blur's disc, odd)


def gradient_energy(grey: torch.Tensor) -> torch.Tensor:
    """E of the module docstring for grey images (…, H, W) (float; at least 2 × 2)."""
    dy, dx = gradient(gaussian_filter(grey, SMOOTHING))
    return uniform_filter(dy.square() + dx.square(), WINDOW)


def textured(grey: torch.Tensor) -> torch.Tensor:
    """Boolean (…, H, W): E above the median of its own image (each leading index an image of its own)."""
    energy = gradient_energy(grey)
    median = energy.flatten(-2).median(-1).values[..., None, None]
    return energy > median
