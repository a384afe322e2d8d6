"""Blind defocus map: a per-pixel blur radius and its confidence, from the blur each region's edges allow.

A disk of radius r cannot leave an edge sharper than its line-spread peak: with R the range of y within ± r px,
ρ = |∇y| · r / R ≤ 2/π (hidd.blind.edge_bound). `edge_read_radius` turns this into a reading, the largest r whose
strongest edges stay within that bound, and reads a uniformly blurred photo's radius to −21 … +26 %. Read on
TILE×TILE tiles at a stride of TILE/2, it is a map:

    r_t = edge_read_radius(tile t),   confidence c_t = [the tile holds an edge],

a tile holding an edge when its largest local range (over ± EDGE_REACH px) exceeds EDGE_Z times the grey noise std
σ. Two pixels of Gaussian noise differ by more than z σ with probability 2 Φ(−z/√2), 1.5e-8 for EDGE_Z = 8; over
the pixel pairs of a 64 px tile's 5×5 windows (about 4096 × 300, far from independent) that bounds a flat tile's
false edge by about 1e-3 (it grows with the tile's area). A tile without an edge says nothing (its reading is the
search's top, nothing contradicting any blur): its radius is filled from the tiles that say something, by
normalised convolution over the tile grid with a Gaussian of FILL_SPREAD tiles, and where no tile near it says
anything it is 0 (in focus: the photo stays as it is there). The grid is median-filtered over 3×3 tiles and
interpolated bilinearly between tile centres (constant beyond the outer ones).

The readings are bounds from the sharpest edges, so they err short where a tile spans several features (the safe
side: less deblurring). Sharp photos read 0.5–2 px: demosaicing, JPEG and the pixel aperture soften every edge a
little, so a tile reads as defocused only from FOCUS_RADIUS on, a physical bound (2 px, twice the pixel pitch, is
beyond the softening any sharp photo here shows; docs/BENCHMARKS.md has the false-alarm rate this gives on sharp
photos).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from hidd.blind import filters
from hidd.blind.edge_bound import edge_read_radius_batch
from hidd.blind.spectrum import gray_linear, working
from hidd.camera.noise import NoiseLevelFunction

TILE = 64  # px: the side of a tile read on its own (sampler.radius_tile)
EDGE_REACH = 2  # px: local ranges over ± this, to tell an edge from noise
EDGE_Z = 8.0  # a tile holds an edge when its largest local range exceeds this × the noise std
FILL_SPREAD = 1.5  # tiles: std of the Gaussian that fills tiles without edges from their neighbours
MAX_MAP_RADIUS = 12.0  # px: the largest radius read (a 64 px tile resolves about this)
FOCUS_RADIUS = 2.0  # px: a radius below this is in focus (sharp photos read 0.5–2 through their camera)
TILE_BATCH = 1024  # tiles read at once (memory: about 15 float32 copies of this many tiles)


@dataclass
class DefocusMap:
    """A photo's blur radius per pixel and the evidence for it."""

    radius: torch.Tensor  # (H, W) disk radius in px; 0 in focus
    confidence: torch.Tensor  # (H, W) in [0, 1]: edges, the share of the tiles around the pixel that hold an edge;
    # learned, 1 / (1 + its expected error in px) (hidd.blind.map_net)
    tiles: np.ndarray  # (rows, cols) the tiles' readings before filling (NaN: no edge)

    @property
    def in_focus(self) -> torch.Tensor:
        """(H, W) bool: below FOCUS_RADIUS."""
        return self.radius < FOCUS_RADIUS

    def share(self) -> torch.Tensor:
        """(H, W) in [0, 1]: how much of a deblurring each pixel keeps (region_share)."""
        return region_share(self.radius)


def region_share(radius: torch.Tensor) -> torch.Tensor:
    """How much of a deblurring each pixel of a radius map (…, H, W) keeps: min(r / FOCUS_RADIUS, 1), none in focus,
    all from FOCUS_RADIUS on (a blind map ramps between tile centres, so the seam is a tile's width)."""
    return (radius / FOCUS_RADIUS).clamp(0, 1)


def _starts(size: int, tile: int) -> list[int]:
    """Tile origins along an axis of `size`: stride tile/2, the last flush with the end."""
    stride = max(1, tile // 2)
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def tile_readings(linear: torch.Tensor, noise_std: float, tile: int = TILE,
                  who: str = "tile_readings") -> tuple[np.ndarray, list[int], list[int], int]:
    """Each tile's edge reading (NaN where it holds no edge), its row and column origins, and the tile size, for an
    image (C, H, W) or (H, W) in LINEAR light whose grey noise std is `noise_std`. The tiles are read as batches
    on the image's device (hidd.blind.edge_bound.edge_read_radius_batch); only the readings come to the host. A bad
    noise level or image is a ValueError naming `who`."""
    if not math.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"{who}: the noise std must be finite and ≥ 0, got {noise_std}")
    gray = gray_linear(linear, who)
    if not bool(torch.isfinite(gray).all()):
        raise ValueError(f"{who}: the image has non-finite values")
    h, w = gray.shape
    tile = min(tile, h, w)
    rows, cols = _starts(h, tile), _starts(w, tile)
    window = 2 * EDGE_REACH + 1
    local_range = filters.maximum_filter(gray, window) - filters.minimum_filter(gray, window)
    tiles = _tiles(torch.stack([gray, local_range]), rows, cols, tile)  # (2, rows, cols, tile, tile)
    edged = (tiles[1].amax(dim=(-2, -1)) > EDGE_Z * noise_std).flatten()
    chosen = tiles[0].flatten(0, 1)[edged]
    read = [edge_read_radius_batch(chosen[i:i + TILE_BATCH, None], MAX_MAP_RADIUS)
            for i in range(0, chosen.shape[0], TILE_BATCH)]
    readings = torch.full((len(rows) * len(cols),), math.nan, dtype=torch.float64)
    readings[edged.cpu()] = torch.cat(read).cpu().double() if read else torch.zeros(0, dtype=torch.float64)
    return readings.reshape(len(rows), len(cols)).numpy(), rows, cols, tile


def _tiles(image: torch.Tensor, rows: list[int], cols: list[int], tile: int) -> torch.Tensor:
    """The tile×tile windows (…, rows, cols, tile, tile) of images (…, H, W) at the given origins."""
    span = torch.arange(tile, device=image.device)
    ys = torch.tensor(rows, device=image.device)[:, None] + span
    xs = torch.tensor(cols, device=image.device)[:, None] + span
    return image[..., ys[:, None, :, None], xs[None, :, None, :]]


def tile_means(radius: torch.Tensor, tile: int = TILE) -> np.ndarray:
    """A per-pixel map's (H, W) mean over the tiles the edge map reads (tile px, stride tile/2, the last flush with
    the end): (rows, cols), float64, what `DefocusMap.tiles` holds for a map read per pixel."""
    h, w = radius.shape
    side = min(tile, h, w)
    means = _tiles(radius, _starts(h, side), _starts(w, side), side).mean(dim=(-2, -1))
    return means.cpu().double().numpy()


def edge_ceiling(linear: torch.Tensor, noise_std: float, tile: int = TILE) -> torch.Tensor:
    """The largest blur the edges near each pixel allow, (H, W) float32 on the image's device, for an image (C, H, W)
    or (H, W) in LINEAR light whose grey noise std is noise_std: each tile's reading (tile_readings) taken as the
    bound at the tile's centre, a tile without an edge bounding nothing (MAX_MAP_RADIUS, the search's top),
    interpolated bilinearly between tile centres as the map's grid is.

    A tile's reading bounds the blur of its strongest edges: a disk of radius r cannot leave an edge sharper than its
    line-spread peak (hidd.blind.edge_bound), and the reading errs short, not long, where a tile spans several
    features. A map read another way (the learned one) is held under it: its over-reading is what rings."""
    readings, rows, cols, side = tile_readings(linear, noise_std, tile, "edge_ceiling")
    bound = np.where(np.isfinite(readings), readings, MAX_MAP_RADIUS)
    return _to_pixels(bound, rows, cols, side, *linear.shape[-2:], linear.device)


def grey_noise_std(noise: NoiseLevelFunction, encoded: torch.Tensor) -> torch.Tensor:
    """The linear-light noise std (B,) of the grey (channel-mean) image of photos (B, C, H, W) of encoded values under
    their noise-level functions: each photo's RMS per-channel std over √C (channels taken as independent)."""
    encoded = working(encoded)
    return (noise.linear_std(encoded).square().flatten(1).mean(dim=1) / encoded.shape[1]).sqrt()


def estimate_defocus_map(linear: torch.Tensor, noise_std: float, tile: int = TILE) -> DefocusMap:
    """The defocus map of one photo (C, H, W) or (H, W) in LINEAR light whose grey noise std (linear light) is
    noise_std, from tiles of `tile` px (sampler.radius_tile; see the module docstring)."""
    readings, rows, cols, tile = tile_readings(linear, noise_std, tile, "estimate_defocus_map")
    h, w = linear.shape[-2:]
    held = np.isfinite(readings).astype(np.float64)
    mass = ndimage.gaussian_filter(held, FILL_SPREAD, mode="nearest")
    filled = ndimage.gaussian_filter(np.nan_to_num(readings), FILL_SPREAD, mode="nearest") / np.maximum(mass, 1e-12)
    grid = np.where(held > 0, readings, np.where(mass > 1e-3, filled, 0.0))
    grid = ndimage.median_filter(grid, size=3, mode="nearest")
    grid = np.where(grid < FOCUS_RADIUS, 0.0, grid)
    device = linear.device
    return DefocusMap(_to_pixels(grid, rows, cols, tile, h, w, device),
                      _to_pixels(np.clip(mass, 0, 1), rows, cols, tile, h, w, device), readings)


def _to_pixels(grid: np.ndarray, rows: list[int], cols: list[int], tile: int, h: int, w: int,
               device: torch.device | None = None) -> torch.Tensor:
    """A tile grid interpolated bilinearly between tile centres onto the (H, W) pixels (constant beyond them), in
    float32 on `device`."""
    def weights(starts: list[int], size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        centres = np.asarray(starts, dtype=np.float64) + (tile - 1) / 2
        at = torch.from_numpy(np.interp(np.arange(size), centres, np.arange(len(starts)))).to(device)
        first = at.floor().long()
        return first, (first + 1).clamp(max=len(starts) - 1), at - first

    (y0, y1, wy), (x0, x1, wx) = weights(rows, h), weights(cols, w)
    g = torch.from_numpy(grid).to(device)
    wy, wx = wy[:, None], wx[None, :]
    top = g[y0][:, x0] * (1 - wx) + g[y0][:, x1] * wx
    bottom = g[y1][:, x0] * (1 - wx) + g[y1][:, x1] * wx
    return (top * (1 - wy) + bottom * wy).float()
