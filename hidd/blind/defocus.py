"""A photo's lens PSF for the sampler: the whole-photo spectral fit, checked against the photo, with three
fall-backs where the fit reads the photo in focus.

1. The whole-photo fit (hidd.blind.psf_fit) reads a PSF k, a disk of radius r softened by a Gaussian, at the
   finest scale that resolves it. It is kept only if the photo does not contradict it:
   - a blur only a coarser scale saw must also fit the full-resolution spectrum, its log residual at most
     MAX_FINEST_FIT_RATIO × the in-focus one (with a noise floor N f^−γ, γ ≤ FINE_BAND_NOISE_SLOPE: demosaicing,
     white balance and 4:2:0 JPEG make a high-ISO photo's fine band fall about as f^−2.7), and the photo's edges
     (hidd.blind.edge_bound: ρ ≤ MAX_EDGE_SHARPNESS; a disk allows 2/π). Blurs the finest scale sees are not
     asked the edges: the discs of point lights (bokeh) have steep rims the edge test can only leave out
     approximately;
   - any blur must fit the photo's noise: beyond the blur's main lobe a blurred photo holds noise only, so that
     band's level (hidd.blind.noise.band_excess) is at most MAX_BAND_EXCESS × the noise its flat patches show.
   A contradicted blur leaves the photo in focus (the safe side).
2. Read in focus, a blur the fit preferred unclearly (by CORROBORATED_MARGIN, short of psf_fit's
   IN_FOCUS_MARGIN) is taken where the tiles' radius quantiles q and 1 − q bracket it (q = `shared_quantile`,
   hidd.blind.radius_map), the lower one reads a blur, and the edges allow it: a periodic texture's spectrum
   is a few peaks that fit neither hypothesis well.
3. Else, a depth-varying photo (part sharp, part blurred) has a whole-photo spectrum dominated by its sharp
   part; its tiles still tell. The radius r_q that all but a fraction q of the tiles reach stands for the blur
   most of the photo shares, provided the tiles' radii vary (quantile 1 − q ≥ MIN_SPREAD · r_q: a uniform
   blur the fit rejected is not the one the camera model describes), the whole-photo spectrum does not reject
   it (residual at most MAX_FIT_RATIO × the in-focus one: a sharp photo's flat sky tiles fit large blurs) and
   the edges allow it:

       k = disk of radius SHARED_RADIUS_FACTOR · r_q, softened by a Gaussian of std SHARED_SOFTENING px.

   Smaller and softer than r_q because the photo holds a spread of radii: their mean PSF has a soft edge and
   no sharp OTF zeros, and under-deconvolving the more blurred part is safe where over-sharpening the sharper
   part is not. Where r_q < IN_FOCUS_RADIUS (more than a fraction q of the photo sharp) the photo stays in
   focus. The softening models the spread of radii, not the lens, so `softening_white` leaves it.
4. Last, where every reading says in focus (with `edge_read_share` > 0), the edges read a blur of their own:
   a textureless or noisy photo hides its blur from the spectrum, not from its edges. Where
   hidd.blind.edge_bound's `edge_read_radius` r_e lies in [EDGE_READ_MIN_RADIUS, EDGE_READ_MAX_RADIUS] (and
   within `max_radius` and RESOLVED_RADIUS_FRACTION of the short side), the photo is deblurred by a disk of
   radius r_e softened by EDGE_READ_SOFTENING, and the no-harm guard keeps at most `edge_read_share` of it (the
   reading is off by −21 … +26 %, and deblurring is sensitive to the radius).

estimate_defocus_batch reads same-size photos at once where that pays: their Welch spectra at every scale the
search may use (hidd.blind.psf_fit.WelchPyramid) and the first scale's search, vectorised over the photos, on their
device; the branches above then run photo by photo on those spectra.

Each constant's kind and the development photos behind it: docs/DECISIONS.md; the measurements that set them:
docs/BENCHMARKS.md, "Development notes moved from docstrings".
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from hidd.blind.edge_bound import EDGE_READ_STEP, MAX_EDGE_SHARPNESS, edge_read_radius, edge_sharpness
from hidd.blind.noise import band_excess
from hidd.blind.psf_fit import (IN_FOCUS_RADIUS, MAX_RADIUS, RESOLVED_RADIUS_FRACTION, PSFEstimate, WelchPyramid,
                                 estimate_for_lens, estimate_psf, lens_fit_ratio, welch_pyramid)
from hidd.blind.radius_map import tile_radius_quantiles_batch
from hidd.blind.spectrum import as_batch, gray_batch
from hidd.camera.psf import LensPSF
from hidd.camera.tone import tone_curve

SHARED_RADIUS_FACTOR = 0.8  # the PSF's radius over r_q
SHARED_SOFTENING = 0.6  # px: its Gaussian softening (the spread of radii, and the lens's own)
CORROBORATED_MARGIN = 1.0  # a blur the tiles and edges confirm need only fit better than in focus
MIN_SPREAD = 1.25  # the tiles' radii must vary: quantile 1 − q at least this × quantile q
MAX_FIT_RATIO = 2.0  # ... and the whole-photo spectrum must not contradict the PSF: its residual at most this ×
# the in-focus one (depth-varying photos up to 1.43; a sharp lake at dusk whose flat sky tiles read 8–10 px: 3.6)
EDGE_READ_MIN_RADIUS = 3.0  # px: the least edge reading taken for a blur (sharp photos ≤ 2.0, depth-varying 1.0–2.5)
EDGE_READ_MAX_RADIUS = 12.0  # px: and the most (a photo with no sharp edge among its strongest ones reads anything:
# skimage's colour wheel 28–30 px, whose half-strength deblur at 28 px ruined it, 19.2 dB against itself)
EDGE_READ_SOFTENING = 0.35  # px: the Gaussian softening of its disk (a lens's typical 0.3–0.7)
LINEAR = tone_curve("none")  # estimate_defocus works on linear light: its noise is measured there
MAX_FINEST_FIT_RATIO = 3.0  # a blur only a coarser scale saw: the full-resolution spectrum's residual under it, over
# the in-focus one, at most this (blurred photos' coarse finds ≤ 2.15 with FINE_BAND_NOISE_SLOPE's floor)
FINE_BAND_NOISE_SLOPE = 2.0  # ... with a noise floor N f^−γ, γ ≤ this, under both hypotheses (the search: ≤ 1)
MAX_BAND_EXCESS = 5.3  # any blur the whole-photo fit reads: the band beyond its main lobe may hold at most this ×
# the noise the flat patches show (hidd.blind.noise.band_excess: 452 blurred photos ≤ 4.46, sharp photos read
# blurred 6.26–18.1)


def estimate_defocus(linear: torch.Tensor, *, max_radius: float = MAX_RADIUS, shared_quantile: float = 0.0,
                     edge_read_share: float = 0.0) -> PSFEstimate:
    """The lens PSF of an image (C, H, W) or (H, W) in LINEAR light: estimate_psf (a blur that only a coarser
    scale saw must fit the full-resolution spectrum and the image's edges; any blur, the image's noise), and
    where the image reads in focus: with shared_quantile > 0, a blur the whole-photo fit preferred unclearly
    that the tiles' quantiles bracket, or else the PSF most of its tiles share, if any; then, with
    edge_read_share > 0, the blur its edges allow, at most that share of it kept (see the module docstring)."""
    check_fallbacks(shared_quantile, edge_read_share)
    return estimate_defocus_batch(as_batch(linear, "estimate_defocus"), max_radius=max_radius, shared_quantile=shared_quantile,
                                  edge_read_share=edge_read_share)[0]


def estimate_defocus_batch(linear: torch.Tensor, *, max_radius: float = MAX_RADIUS, shared_quantile: float = 0.0,
                           edge_read_share: float = 0.0) -> list[PSFEstimate]:
    """estimate_defocus of each of same-size images (B, C, H, W) in LINEAR light, on their device: the Welch spectra
    of all of them at every scale the search may use, and the first scale's search, are computed at once, and so are
    the tiles' fits of the images read in focus; what follows, per image, reuses them. Photo i's estimate is
    estimate_defocus(linear[i]) (to the rounding of batched FFTs: the same lens, scale and flags)."""
    check_fallbacks(shared_quantile, edge_read_share)
    pyramids = welch_pyramid(gray_batch(linear, "estimate_defocus_batch"), max_radius)
    first = [_first_reading(image, pyramids.photo(i), max_radius) for i, image in enumerate(linear)]
    in_focus = [i for i, (_, kept) in enumerate(first) if not kept]
    quantiles = {}
    if shared_quantile > 0 and in_focus:  # the tiles of every photo read in focus, fitted together
        found = tile_radius_quantiles_batch(linear[in_focus], (shared_quantile, 1 - shared_quantile))
        quantiles = dict(zip(in_focus, found))
    return [estimate if kept else _fall_back(linear[i], pyramids.photo(i), estimate, max_radius, quantiles.get(i),
                                             edge_read_share)
            for i, (estimate, kept) in enumerate(first)]


def _first_reading(linear: torch.Tensor, pyramid: WelchPyramid, max_radius: float) -> tuple[PSFEstimate, bool]:
    """The whole-photo fit of an image (C, H, W) and whether it stands (a blur the photo does not contradict); where
    it does not, the in-focus estimate the fall-backs start from."""
    estimate = estimate_psf(linear, max_radius=max_radius, pyramid=pyramid)
    if estimate.lens.radius > 0:
        seen = estimate.found_scale == 1 or _coarse_blur_holds(linear, estimate.lens, pyramid)
        if seen and _noise_allows(linear, estimate.lens):
            return estimate, True
        # a sharp photo whose spectrum looks blurred
        estimate = estimate_for_lens(linear, LensPSF(0.0), pyramid=pyramid)
    return estimate, False


def _fall_back(linear: torch.Tensor, pyramid: WelchPyramid, estimate: PSFEstimate, max_radius: float,
               quantiles: np.ndarray | None, edge_read_share: float) -> PSFEstimate:
    """The fall-backs of an image (C, H, W) read in focus (its in-focus `estimate`): with the tiles' quantiles q and
    1 − q (None: shared_quantile 0), a corroborated or a shared blur; then, with edge_read_share > 0, the blur its
    edges allow; else the estimate."""
    if quantiles is not None:
        low, high = (float(v) for v in quantiles)
        blur = (_corroborated_blur(linear, pyramid, max_radius, low, high)
                or _shared_blur(linear, pyramid, max_radius, low, high))
        if blur is not None:
            return blur
    if edge_read_share > 0:
        # read past the top, so that a photo with no edge to stop the reading is not taken for a blur at the top
        radius = edge_read_radius(linear, EDGE_READ_MAX_RADIUS + EDGE_READ_STEP)
        top = min(EDGE_READ_MAX_RADIUS, max_radius, RESOLVED_RADIUS_FRACTION * min(linear.shape[-2:]))
        if EDGE_READ_MIN_RADIUS <= radius <= top:
            lens = LensPSF(radius, softening=EDGE_READ_SOFTENING)
            return replace(estimate_for_lens(linear, lens, pyramid=pyramid), max_share=edge_read_share)
    return estimate


def check_fallbacks(shared_quantile: float, edge_read_share: float) -> None:
    """Refuse, in one line, a shared_quantile outside [0, 0.5) or an edge_read_share outside [0, 1]."""
    if not 0 <= shared_quantile < 0.5:
        raise ValueError(f"sampler.shared_quantile must be in [0, 0.5), got {shared_quantile}")
    if not 0 <= edge_read_share <= 1:
        raise ValueError(f"sampler.edge_read_share must be in [0, 1], got {edge_read_share}")


def _corroborated_blur(linear: torch.Tensor, pyramid: WelchPyramid, max_radius: float, low: float,
                       high: float) -> PSFEstimate | None:
    """The blur the whole-photo spectrum prefers to focus, though by less than IN_FOCUS_MARGIN, where the tiles'
    quantiles q and 1 − q (low, high) bracket it and the image's edges and noise allow it (see the module
    docstring), or None."""
    if low < IN_FOCUS_RADIUS:
        return None
    estimate = estimate_psf(linear, max_radius=max_radius, in_focus_margin=CORROBORATED_MARGIN, pyramid=pyramid)
    if not low <= estimate.lens.radius <= high:
        return None
    lens = estimate.lens  # unlike a clear blur, one the finest scale saw must fit the edges too
    seen = _edges_allow(linear, lens) if estimate.found_scale == 1 else _coarse_blur_holds(linear, lens, pyramid)
    return estimate if seen and _noise_allows(linear, lens) else None


def _shared_blur(linear: torch.Tensor, pyramid: WelchPyramid, max_radius: float, radius: float,
                 upper: float) -> PSFEstimate | None:
    """The PSF most of the image's tiles share, given the tiles' quantiles q and 1 − q (see the module
    docstring), or None."""
    if radius < IN_FOCUS_RADIUS or upper < MIN_SPREAD * radius:
        return None
    lens = LensPSF(SHARED_RADIUS_FACTOR * float(min(radius, max_radius)), softening=SHARED_SOFTENING)
    shared = estimate_for_lens(linear, lens, pyramid=pyramid)
    return shared if shared.fit_ratio <= MAX_FIT_RATIO and _edges_allow(linear, lens) else None


def _coarse_blur_holds(linear: torch.Tensor, lens: LensPSF, pyramid: WelchPyramid) -> bool:
    """Whether a blur that only a coarser scale saw fits the full-resolution spectrum too, and the image's edges."""
    ratio = lens_fit_ratio(linear, lens, max_noise_slope=FINE_BAND_NOISE_SLOPE, pyramid=pyramid)
    return ratio <= MAX_FINEST_FIT_RATIO and _edges_allow(linear, lens)


def _edges_allow(linear: torch.Tensor, lens: LensPSF) -> bool:
    """Whether the image's sharpest edges are no sharper than a blur of the lens's radius leaves them."""
    return edge_sharpness(linear, lens.radius) <= MAX_EDGE_SHARPNESS


def _noise_allows(linear: torch.Tensor, lens: LensPSF) -> bool:
    """Whether the band beyond the blur's main lobe holds no more than noise, as much as the flat patches show."""
    return band_excess(linear, lens, LINEAR) <= MAX_BAND_EXCESS
