"""How sharp a uniformly defocused photo's edges can be: the test of a blur estimate against the photo itself.

A spectral fit (hidd.blind.psf_fit) sees the photo's power spectrum only, and a sharp photo whose spectrum
happens to look blurred fools it: a moss macro whose plants repeat every ~20 px, a lake at dusk whose sky
and water are smooth gradients and whose few sharp lines (horizon, reeds) are too small a share of the
spectrum. Both read 8–13 px at a coarser scale, and deblurring them at that radius ruined them (21.6 and
24.1 dB against the input). But a disk of radius r cannot leave a sharp edge anywhere: a step of height h
becomes a ramp 2r px wide whose steepest slope is the disk's line-spread peak, 2h/(πr). So with R the range
of y within ± r px of a pixel (the whole step when the pixel is on the ramp),

    ρ = |∇y| · r / R ≤ 2/π ≈ 0.64,

less for a softened lens. Noise, thin features seen through a hard-edged disk (its line spread has steep
sides) and a lens that is not a disk raise it, so `edge_sharpness` reads a high quantile of ρ over the
pixels of strongest local range: on 100 blurred photos at their estimated radius (camera and sRGB-disk
benchmarks, 1.3–8 px at 256²; lens-PSF photos with normal or strong noise, demosaiced, JPEG q60–95, 3–20 px
at 256²–384²; 12 and 25 px at 1680×1120) it stayed ≤ 1.05, while the two sharp photos above read 1.65–4.07
at the radii they were misread with (1.65: the lake's flat tiles' shared blur, 5.5 px). A blur estimate above MAX_EDGE_SHARPNESS is contradicted by the
photo's own edges. The test loses its power for small radii: a sharp edge gives ρ ≈ 0.3–0.5 · r, so below
about 4 px a sharp photo can pass (sharp skimage photos at 3 px: 1.17–1.52).

y is lightly smoothed first (EDGE_SMOOTHING) so that pixel noise does not count as edges; gradients are
central differences, the range a (2⌈r⌉+1)² max − min filter, all on the grey linear-light image.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from hidd.blind.spectrum import gray_linear

MAX_EDGE_SHARPNESS = 1.4  # ρ's quantile above which a blur of radius r is contradicted (blurred ≤ 1.05, misread ≥ 1.65)
EDGE_QUANTILE = 0.995  # ... taken over
STRONG_EDGE_FRACTION = 0.03  # ... the pixels with the largest local range (flat areas say nothing)
EDGE_SMOOTHING = 0.5  # px: std of the Gaussian applied before the gradients


def edge_sharpness(linear: torch.Tensor, radius: float) -> float:
    """The EDGE_QUANTILE of ρ = |∇y| · radius / (local range of y within ± radius px) over the
    STRONG_EDGE_FRACTION of pixels with the largest local range, for an image (C, H, W) or (H, W) in LINEAR
    light. About 2/π or less if the image is a disk blur of that radius; more if its edges are sharper."""
    if radius <= 0:
        raise ValueError(f"edge_sharpness: the radius must be > 0, got {radius}")
    gray = ndimage.gaussian_filter(gray_linear(linear, "edge_sharpness").numpy(), EDGE_SMOOTHING)
    slope = np.hypot(*np.gradient(gray))
    window = 2 * math.ceil(radius) + 1
    local_range = ndimage.maximum_filter(gray, window) - ndimage.minimum_filter(gray, window)
    strong = local_range >= np.quantile(local_range, 1 - STRONG_EDGE_FRACTION)
    ratio = slope[strong] * radius / np.maximum(local_range[strong], 1e-12)
    return float(np.quantile(ratio, EDGE_QUANTILE))
