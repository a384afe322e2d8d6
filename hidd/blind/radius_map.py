"""Per-tile PSF radii of a spatially varying defocus (depth), read from the tiles' spectra, as a distribution.

Tiles of `tile`×`tile` pixels each get hidd.blind.psf_fit's spectral fit, with the natural-image slope
β = TILE_SLOPE held fixed: a small tile has too few frequency rings to tell a steeper scene spectrum from more
blur, and a tile is in focus unless a blur fits it clearly better (TILE_IN_FOCUS_MARGIN). The tile grid is
median-filtered over smooth×smooth tiles (flat tiles give unreliable radii) and set to 0 under IN_FOCUS_RADIUS.
Read per tile as a map it is unreliable (a quarter of a sharp photo's tiles read blurred by 2 px or more): the
per-pixel map is hidd.blind.defocus_map's, from edges.

`tile_radius_quantiles` reads the tile fits as a distribution (on large photos at a wider stride): its lower
quartile is a blur that three quarters of the photo reach, and so one PSF that deblurs
most of a depth-varying photo without over-sharpening much of it (hidd.blind.defocus). Tiles stay 64 px
and see radii up to TILE_MAX_RADIUS: on a large photo a wider blur reads as that.

`map_scale` reads the tile fits as a calibration of a map read by its shape (the learned one, hidd.blind.map_net):
with f_t a tile's fit and m_t the map's mean over that tile, the map's scale is

    s = median_t (f_t / m_t)   over the tiles that both read defocused (≥ FOCUS_RADIUS),

1 where none does. A tile's fit reads its blur from where its spectrum falls (the disk's first zero), unreliably
alone, but the median over a photo's tiles carries its blur's size; the map carries where the blur is larger.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from hidd.blind.defocus_map import FOCUS_RADIUS
from hidd.blind.psf_fit import IN_FOCUS_RADIUS, TILE_IN_FOCUS_MARGIN, TILE_SLOPE, best_radius
from hidd.blind.spectrum import as_batch, gray_batch, tile_spectra

FIT_TILES = 4096  # the most tiles whose radii are fitted at once (memory, not results)
TILE_MAX_RADIUS = 12.0  # the largest radius a tile is searched for (its window resolves about (tile − 1)/2 − 1)


def tile_radii(gray: torch.Tensor, tile: int, stride: int, max_radius: float = TILE_MAX_RADIUS,
               smooth: int = 3) -> np.ndarray:
    """Radius grids (…, n_i, n_j) of the `tile`×`tile` tiles of gray linear-light images (…, H, W) at `stride`: each
    tile's fit (slope TILE_SLOPE, in focus unless a blur wins by TILE_IN_FOCUS_MARGIN), median-filtered over
    smooth×smooth tiles of its own image and 0 below IN_FOCUS_RADIUS. The spectra and fits run on the images' device,
    at most FIT_TILES tiles at a time; the grids (at most a few hundred radii each) are filtered on the host."""
    spectra = tile_spectra(gray, tile, stride)  # (…, n_i, n_j, F)
    top = min(max_radius, (tile - 1) / 2 - 1)
    rows = spectra.reshape(-1, spectra.shape[-1])
    radii = torch.cat([best_radius(part, tile, top, TILE_SLOPE, in_focus_margin=TILE_IN_FOCUS_MARGIN)[0]
                       for part in rows.split(FIT_TILES)]).cpu().numpy().reshape(spectra.shape[:-1])
    radii = ndimage.median_filter(radii, size=(1,) * (radii.ndim - 2) + (smooth, smooth), mode="nearest")
    return np.where(radii < IN_FOCUS_RADIUS, 0.0, radii)


def tile_radius_quantiles(linear: torch.Tensor, quantiles, *, tile: int = 64, max_tiles: int = 400) -> np.ndarray:
    """Quantiles of the defocus radii of an image's tiles (tile_radii); linear: (C, H, W) or (H, W) in LINEAR
    light. Tiles overlap by 3/4 on small images; on large ones the stride grows so that at most about
    `max_tiles` are fitted (seconds, not minutes, at 1680×1120)."""
    return tile_radius_quantiles_batch(as_batch(linear, "tile_radius_quantiles"), quantiles, tile=tile, max_tiles=max_tiles)[0]


def tile_radius_quantiles_batch(linear: torch.Tensor, quantiles, *, tile: int = 64,
                                max_tiles: int = 400) -> np.ndarray:
    """tile_radius_quantiles of each of same-size images (B, C, H, W), (B, len(quantiles)): their tiles fitted
    together, each image's quantiles over its own tiles."""
    gray = gray_batch(linear, "tile_radius_quantiles")
    h, w = gray.shape[-2:]
    tile = min(tile, h, w)
    stride = max(1, tile // 4, math.ceil(math.sqrt(h * w / max_tiles)))
    radii = tile_radii(gray, tile, stride)
    return np.quantile(radii.reshape(len(gray), -1), quantiles, axis=1).T


def map_scale(radius: torch.Tensor, linear: torch.Tensor, *, tile: int = 64, max_tiles: int = 400) -> float:
    """The factor s that brings a per-pixel defocus map (H, W) to the blur its photo's tile spectra read (the module
    docstring): linear is the photo (C, H, W) or (H, W) in LINEAR light; tiles of `tile` px at a stride of tile/2,
    wider on large photos (at most about `max_tiles`, as tile_radius_quantiles). 1.0 where no tile reads defocused
    on both."""
    gray = gray_batch(as_batch(linear, "map_scale"), "map_scale")
    h, w = gray.shape[-2:]
    if tuple(radius.shape) != (h, w):
        raise ValueError(f"map_scale: a map of shape {tuple(radius.shape)} for a photo of {h}x{w}")
    tile = min(tile, h, w)
    stride = max(1, tile // 2, math.ceil(math.sqrt(h * w / max_tiles)))
    fits = tile_radii(gray, tile, stride)[0]
    means = radius.to(torch.float64).unfold(0, tile, stride).unfold(1, tile, stride).mean(dim=(-2, -1)).cpu().numpy()
    both = (fits >= FOCUS_RADIUS) & (means >= FOCUS_RADIUS)
    return float(np.median(fits[both] / means[both])) if both.any() else 1.0
