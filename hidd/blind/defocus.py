"""A photo's lens PSF for the sampler: the whole-photo spectral fit (hidd.blind.psf_fit), unless a blur
that only a coarser scale saw is contradicted by the full-resolution spectrum or by the photo's own edges
(hidd.blind.edge_bound: then it is in focus), and, where the photo reads "in focus", the blur that most
of the photo shares (depth-varying defocus), if its edges allow it.

A photo whose defocus varies with depth (part sharp, part blurred) has a whole-photo spectrum dominated by
its sharp part, so the global fit reads it in focus (7 of the camera benchmark's 12 depth photos, one with a
median radius of 4.4 px). Its tiles still tell: on those photos 60–90 % of the 64² tiles fit a blur, on
sharp photos almost none do (hidd.blind.radius_map). So where the global fit reads in focus, the radius
r_q that all but a fraction q of the tiles reach (q = `shared_quantile`) stands for the photo's blur,
provided the tiles' radii do vary (their 1 − q quantile is at least MIN_SPREAD · r_q):

    k = disk of radius SHARED_RADIUS_FACTOR · r_q, softened by a Gaussian of std SHARED_SOFTENING px.

Smaller and softer than r_q, because the photo holds a spread of radii: their mean PSF has a soft edge and
no sharp OTF zeros, and under-deconvolving the more blurred part is safe where over-sharpening the sharper
part is not. Where r_q < IN_FOCUS_RADIUS (more than a fraction q of the photo is sharp) the photo stays
in focus. So does one whose tiles agree on a blur that the whole-photo fit rejects: that blur is not the
one the camera model describes (the sRGB-disk set's camera_r5, blurred after the tone curve: tiles 4.5–5.1
px, spread 1.13; deblurred at 0.8 · 4.5 px it lost 0.30 dB), and depth-varying photos spread by 1.4–2.2.
Nor may the whole-photo spectrum contradict k: its residual under k must stay within MAX_FIT_RATIO of the
in-focus one. Flat tiles (a clear sky, calm water) fit large blurs, so a sharp photo that is mostly sky
can have blurred-looking, spread tiles (a lake at dusk, 512²: 8.4–10.6 px); its sharp horizon and reeds
then make the whole spectrum reject k (ratio 3.6), where depth-varying photos give at most 1.43.

Measured on 24 depth-varying development photos (camera benchmark (c) and a second draw of the same
six photos; fast, 2026-11-27): of the nine photos whose lower quartile is 0 (more than a quarter sharp, so
they are left alone), six lose at every uniform radius of 1.5 px or more, by up to 8 dB; the median radius
instead of the lower quartile over-sharpens the in-focus foreground of the motorcycle (−0.2…−0.3 dB). On
the five photos the lower quartile reaches, a plain disk of radius r_q gained +0.16…+2.15 dB (mean +1.10),
the softer smaller disk +0.29…+2.92 (mean +1.46). Its softening models the spread of radii, not the lens,
so `softening_white` leaves it (PSFEstimate.softening_fitted). Note 0.8 · r_q can fall below
IN_FOCUS_RADIUS (r_q 1.2–1.5): one such photo gained +2.9 dB, so the radius is not floored.

Where the spectrum alone is least sure, the photo is asked too. A blur that only a coarser scale saw
(hidd.blind.psf_fit: the finest scale read in focus) must also fit the full-resolution spectrum (residual
at most MAX_FINEST_FIT_RATIO × the in-focus one) and the photo's edges (hidd.blind.edge_bound); so must
the tiles' shared blur. Two sharp corpus photos were misread at a coarser scale and spoiled by the
deblur: a moss macro (9.6 px; the full-resolution spectrum rejects it, 3.84) and a lake at dusk (8.4 and
12.7 px; its reeds and horizon are far sharper than that, ρ 1.93–2.51, and so for its flat tiles' shared
blur of 5.5 px, 1.65). Blurs the finest scale sees are trusted as before: bokeh discs of point lights
have steep rims that the edge test must leave out, and it can only do so approximately (dense,
overlapping lights defeat it: such a photo whose blur only a coarser scale saw comes back unchanged).
"""
from __future__ import annotations

import torch

from hidd.blind.edge_bound import MAX_EDGE_SHARPNESS, edge_sharpness
from hidd.blind.psf_fit import IN_FOCUS_RADIUS, MAX_RADIUS, PSFEstimate, estimate_for_lens, estimate_psf
from hidd.blind.radius_map import tile_radius_quantiles
from hidd.camera.psf import LensPSF

SHARED_RADIUS_FACTOR = 0.8  # the PSF's radius over r_q
SHARED_SOFTENING = 0.6  # px: its Gaussian softening (the spread of radii, and the lens's own)
MIN_SPREAD = 1.25  # the tiles' radii must vary: quantile 1 − q at least this × quantile q
MAX_FIT_RATIO = 2.0  # ... and the whole-photo spectrum must not contradict the PSF: its residual at most this ×
# the in-focus one (depth-varying photos up to 1.43; a sharp lake at dusk whose flat sky tiles read 8–10 px: 3.6)
MAX_FINEST_FIT_RATIO = 3.0  # a blur only a coarser scale saw: the full-resolution spectrum's residual under it, over
# the in-focus one, at most this (such blurred photos, 3–25 px: ≤ 2.49; a sharp moss macro read at 9.6 px: 3.84)


def estimate_defocus(linear: torch.Tensor, *, max_radius: float = MAX_RADIUS,
                     shared_quantile: float = 0.0) -> PSFEstimate:
    """The lens PSF of an image (C, H, W) or (H, W) in LINEAR light: estimate_psf (a blur that only a coarser
    scale saw must fit the full-resolution spectrum and the image's edges), and where the image reads in
    focus and shared_quantile > 0, the PSF most of its tiles share (see the module docstring), if any."""
    if not 0 <= shared_quantile < 0.5:
        raise ValueError(f"sampler.shared_quantile must be in [0, 0.5), got {shared_quantile}")
    estimate = estimate_psf(linear, max_radius=max_radius)
    if estimate.lens.radius > 0:
        if estimate.found_scale == 1 or _coarse_blur_holds(linear, estimate.lens):
            return estimate
        estimate = estimate_for_lens(linear, LensPSF(0.0))  # a sharp photo whose coarse spectrum looks blurred
    if shared_quantile <= 0:
        return estimate
    radius, upper = tile_radius_quantiles(linear, (shared_quantile, 1 - shared_quantile))
    if radius < IN_FOCUS_RADIUS or upper < MIN_SPREAD * radius:
        return estimate
    lens = LensPSF(SHARED_RADIUS_FACTOR * float(min(radius, max_radius)), softening=SHARED_SOFTENING)
    shared = estimate_for_lens(linear, lens)
    return shared if shared.fit_ratio <= MAX_FIT_RATIO and _edges_allow(linear, lens) else estimate


def _coarse_blur_holds(linear: torch.Tensor, lens: LensPSF) -> bool:
    """Whether a blur that only a coarser scale saw fits the full-resolution spectrum too, and the image's edges."""
    return estimate_for_lens(linear, lens).fit_ratio <= MAX_FINEST_FIT_RATIO and _edges_allow(linear, lens)


def _edges_allow(linear: torch.Tensor, lens: LensPSF) -> bool:
    """Whether the image's sharpest edges are no sharper than a blur of the lens's radius leaves them."""
    return edge_sharpness(linear, lens.radius) <= MAX_EDGE_SHARPNESS
