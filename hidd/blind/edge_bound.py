"""How sharp a uniformly defocused photo's edges can be: the test of a blur estimate against the photo itself.

A spectral fit (hidd.blind.psf_fit) sees the photo's power spectrum only, and a sharp photo whose spectrum
happens to look blurred fools it (smooth gradients of sky and water with few sharp lines). But a disk of
radius r cannot leave a sharp edge anywhere: a step of height h becomes a ramp 2r px wide whose steepest slope
is the disk's line-spread peak, 2h/(πr). So with R the range of y within ± r px of a pixel (the whole step at
the ramp's centre),

    ρ = |∇y| · r / R ≤ 2/π ≈ 0.64,

less for a softened lens. Noise, thin features seen through a hard-edged disk (its line spread has steep
sides) and a lens that is not a disk raise it, so `edge_sharpness` reads a high quantile (EDGE_QUANTILE) of ρ
over the STRONG_EDGE_FRACTION of pixels of strongest local range, and a blur is contradicted only above
MAX_EDGE_SHARPNESS, a margin above 2/π.

The bound assumes a scene without point lights. A small bright source seen through the lens is the PSF
itself, a disc whose rim is as steep as the lens's softening lets it be (bokeh): ρ ≈ r / softening. So the
discs of lights are left out: connected regions brighter than HIGHLIGHT_FACTOR × the mean of their
(4⌈r⌉+1)² neighbourhood that fit in a disc of radius r + HIGHLIGHT_REACH, widened by that radius (the bright
side of a scene's edge extends further and stays in). An image with too little left (MIN_EVIDENCE)
contradicts nothing. Dense lights whose discs overlap defeat this; hidd.blind.defocus therefore asks the test
only where the spectrum alone is least sure (a blur that only a coarser scale saw, and the tiles' shared
blur), and a contradicted blur leaves the photo as it is: the safe side. The test loses its power for small
radii: central differences bound |∇y| by about R/√2, so ρ ≤ r/√2 and no radius under 2 px can be rejected.

The same test reads a blur where the spectrum cannot (hidd.blind.defocus's last resort): `edge_read_radius`
is the radius up to which ρ stays within EDGE_READ_LEVEL (just above a disk's 2/π), in steps of
EDGE_READ_STEP. A blurred edge's ρ grows in proportion to r once r passes its blur, so the reading is its blur,
biased by the lens's shape (a bright rim lowers the line spread's peak and reads long, a soft edge reads
short). Textured photos read short at larger blurs, their strongest local ranges spanning several features:
the safe side.

y is lightly smoothed first (EDGE_SMOOTHING) so that pixel noise does not count as edges; gradients are
central differences, the range a (2⌈r⌉+1)² max − min filter, all on the grey linear-light image.

Each constant's kind and the photos behind it: docs/DECISIONS.md; the measurements that set them:
docs/BENCHMARKS.md, "Development notes moved from docstrings".
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from hidd.blind.spectrum import gray_linear

MAX_EDGE_SHARPNESS = 1.3  # ρ's quantile above which a blur of radius r is contradicted (blurred ≤ 1.11, misread ≥ 1.65)
EDGE_QUANTILE = 0.995  # ... taken over
STRONG_EDGE_FRACTION = 0.03  # ... the pixels with the largest local range (flat areas say nothing)
EDGE_SMOOTHING = 0.5  # px: std of the Gaussian applied before the gradients
HIGHLIGHT_FACTOR = 1.5  # a region this × brighter than its neighbourhood's mean, and disc-sized, is a light
HIGHLIGHT_REACH = 2.0  # px beyond the radius r around such a pixel
MIN_EVIDENCE = 0.01  # fraction of the image that must remain for the test to say anything
EDGE_READ_LEVEL = 0.7  # edge_read_radius: the largest r whose ρ stays within this (a disk of radius r: 2/π ≈ 0.64)
EDGE_READ_STEP = 0.5  # px between the radii it tries


def edge_sharpness(linear: torch.Tensor, radius: float) -> float:
    """The EDGE_QUANTILE of ρ = |∇y| · radius / (local range of y within ± ⌈radius⌉ px) over the
    STRONG_EDGE_FRACTION of pixels with the largest local range, leaving out the discs of point lights, for an
    image (C, H, W) or (H, W) in LINEAR light (see the module docstring). About 2/π or less if the image is
    a disk blur of that radius; more if its edges are sharper; 0 if the lights leave too little to judge."""
    return _sharpness(*_smoothed_slope(linear, "edge_sharpness"), radius)


def edge_read_radius(linear: torch.Tensor, max_radius: float) -> float:
    """The blur the image's edges allow: the largest radius r ≤ max_radius (EDGE_READ_STEP apart) up to which
    edge_sharpness stays within EDGE_READ_LEVEL, for an image (C, H, W) or (H, W) in LINEAR light; 0 if even
    the first step is too sharp or the image has nothing to judge (see the module docstring)."""
    gray, slope = _smoothed_slope(linear, "edge_read_radius")
    radius, window, high, low = 0.0, 1, gray, gray
    for candidate in np.arange(EDGE_READ_STEP, max_radius + 1e-9, EDGE_READ_STEP):
        while window < _window(candidate):  # grown by 3×3 filters: max over (w + 2)² = 3×3 max of the w² max
            window, high, low = window + 2, ndimage.maximum_filter(high, 3), ndimage.minimum_filter(low, 3)
        rho = _sharpness(gray, slope, float(candidate), high - low)
        if not 0 < rho <= EDGE_READ_LEVEL:  # 0: nothing left to judge, which allows no reading either
            break
        radius = float(candidate)
    return radius


def _window(radius: float) -> int:
    """The side of the square window within ± ⌈radius⌉ px."""
    return 2 * math.ceil(radius) + 1


def _smoothed_slope(linear: torch.Tensor, who: str) -> tuple[np.ndarray, np.ndarray]:
    """The grey linear-light image lightly smoothed (EDGE_SMOOTHING), and its gradient magnitude."""
    gray = gray_linear(linear, who).numpy()
    if not np.isfinite(gray).all():
        raise ValueError(f"{who}: the image has non-finite values")
    gray = ndimage.gaussian_filter(gray, EDGE_SMOOTHING)
    return gray, np.hypot(*np.gradient(gray))


def _sharpness(gray: np.ndarray, slope: np.ndarray, radius: float, local_range: np.ndarray | None = None) -> float:
    """edge_sharpness of a grey image already smoothed, with its gradient magnitude (and its range over the
    window of `radius`, if already known)."""
    if not radius > 0:
        raise ValueError(f"edge sharpness: the radius must be > 0, got {radius}")
    window = _window(radius)
    if local_range is None:
        local_range = ndimage.maximum_filter(gray, window) - ndimage.minimum_filter(gray, window)
    judged = ~_light_discs(gray, radius, window)
    if judged.mean() < MIN_EVIDENCE:
        return 0.0
    count = min(int(judged.sum()), max(1, round(STRONG_EDGE_FRACTION * gray.size)))  # a share of the whole image
    local_range, slope = local_range[judged], slope[judged]
    strong = np.argpartition(local_range, -count)[-count:]  # the `count` largest, by rank: ties do not widen the set
    ratio = slope[strong] * radius / np.maximum(local_range[strong], 1e-12)
    return float(np.quantile(ratio, EDGE_QUANTILE))


def _light_discs(gray: np.ndarray, radius: float, window: int) -> np.ndarray:
    """Pixels within radius + HIGHLIGHT_REACH of a point light's disc: a connected region brighter than
    HIGHLIGHT_FACTOR × its neighbourhood's mean that fits in that disc (the bright side of a scene's edge
    extends further and stays in the test)."""
    bright = gray > HIGHLIGHT_FACTOR * ndimage.uniform_filter(gray, 2 * window - 1)
    labels, _ = ndimage.label(bright)
    span = 2 * (radius + HIGHLIGHT_REACH)
    small = [i + 1 for i, box in enumerate(ndimage.find_objects(labels))
             if box[0].stop - box[0].start <= span and box[1].stop - box[1].start <= span]
    lights = np.isin(labels, small)
    if not lights.any():
        return lights
    # a dilation by the disc, in time independent of its size: squared distances to a light are whole numbers
    distance = ndimage.distance_transform_edt(~lights)
    return np.rint(distance ** 2) <= (radius + HIGHLIGHT_REACH) ** 2
