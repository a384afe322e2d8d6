"""Blind radius map of a spatially varying defocus (depth): per-tile PSF radii, filtered and interpolated.

Tiles of `tile`×`tile` pixels at a stride of tile/4 each get hidd.blind.psf_fit's spectral fit, with the
natural-image slope β = TILE_SLOPE held fixed: a small tile has too few frequency rings to tell a steeper
scene spectrum from more blur (with β free, the map's correlation with the true one on the benchmark's
depth-varying pair falls from 0.77 to 0.56), and a tile is in focus unless a blur fits it clearly better
(TILE_IN_FOCUS_MARGIN). The tile grid is median-filtered over smooth×smooth tiles (flat tiles give
unreliable radii), set to 0 under IN_FOCUS_RADIUS and interpolated bilinearly between tile centres
(constant beyond the outer centres).

`tile_radius_quantiles` reads the same tile fits as a distribution instead (on large photos at a wider
stride): its lower quartile is a blur that three quarters of the photo reach, and so one PSF that deblurs
most of a depth-varying photo without over-sharpening much of it (hidd.blind.defocus). Tiles stay 64 px
and see radii up to TILE_MAX_RADIUS: on a large photo a wider blur reads as that.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from hidd.blind.psf_fit import IN_FOCUS_RADIUS, TILE_IN_FOCUS_MARGIN, TILE_SLOPE, best_radius
from hidd.blind.spectrum import gray_linear, tile_spectra

TILE_MAX_RADIUS = 12.0  # the largest radius a tile is searched for (its window resolves about (tile − 1)/2 − 1)


def tile_radii(gray: torch.Tensor, tile: int, stride: int, max_radius: float = TILE_MAX_RADIUS,
               smooth: int = 3) -> np.ndarray:
    """Radius grid of the `tile`×`tile` tiles of a gray linear-light image (H, W) at `stride`: each tile's fit
    (slope TILE_SLOPE, in focus unless a blur wins by TILE_IN_FOCUS_MARGIN), median-filtered over smooth×smooth
    tiles and 0 below IN_FOCUS_RADIUS."""
    spectra = tile_spectra(gray, tile, stride)
    top = min(max_radius, (tile - 1) / 2 - 1)
    radii = best_radius(spectra, tile, top, TILE_SLOPE, in_focus_margin=TILE_IN_FOCUS_MARGIN)[0].numpy()
    radii = ndimage.median_filter(radii, size=smooth, mode="nearest")
    return np.where(radii < IN_FOCUS_RADIUS, 0.0, radii)


def estimate_radius_map(linear: torch.Tensor, *, tile: int = 64, max_radius: float = TILE_MAX_RADIUS,
                        smooth: int = 3) -> torch.Tensor:
    """Per-pixel defocus radius (H, W) of an image (C, H, W) or (H, W) in LINEAR light (see the module docstring)."""
    gray = gray_linear(linear, "estimate_radius_map")
    h, w = gray.shape
    tile = min(tile, h, w)
    stride = max(1, tile // 4)
    radii = torch.from_numpy(tile_radii(gray, tile, stride, max_radius, smooth))
    n_i, n_j = radii.shape
    first = tile // 2  # centre of the first tile; the last is at first + (n - 1) * stride
    inner = F.interpolate(radii[None, None], size=((n_i - 1) * stride + 1, (n_j - 1) * stride + 1),
                          mode="bilinear", align_corners=True)
    pad = (first, w - first - inner.shape[-1], first, h - first - inner.shape[-2])
    return F.pad(inner, pad, mode="replicate")[0, 0].float()


def tile_radius_quantiles(linear: torch.Tensor, quantiles, *, tile: int = 64, max_tiles: int = 400) -> np.ndarray:
    """Quantiles of the defocus radii of an image's tiles (tile_radii); linear: (C, H, W) or (H, W) in LINEAR
    light. Tiles overlap by 3/4 on small images; on large ones the stride grows so that at most about
    `max_tiles` are fitted (seconds, not minutes, at 1680×1120)."""
    gray = gray_linear(linear, "tile_radius_quantiles")
    h, w = gray.shape
    tile = min(tile, h, w)
    stride = max(1, tile // 4, math.ceil(math.sqrt(h * w / max_tiles)))
    return np.quantile(tile_radii(gray, tile, stride), quantiles)
