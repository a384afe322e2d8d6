"""A photo's lens PSF for the sampler: the whole-photo spectral fit (hidd.blind.psf_fit), unless a blur
that only a coarser scale saw is contradicted by the full-resolution spectrum or by the photo's own edges
(hidd.blind.edge_bound), or any blur it reads by the photo's noise (hidd.blind.noise.band_excess: then it
is in focus), and, where the photo reads "in focus", a blur the spectrum
preferred unclearly if the tiles and edges confirm it, else the blur that most of the photo shares
(depth-varying defocus), if its edges allow it, and last the blur its edges alone read, half-trusted.

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
px, spread 1.13; deblurred at 0.8 · 4.5 px it lost 0.30 dB; the edge reading below, at half strength,
gains +0.46), and depth-varying photos spread by 1.4–2.2.
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

Before the shared blur, the tiles are asked to confirm the whole-photo fit's own preference. A periodic
texture's spectrum is a few peaks, not a power law, and fits neither hypothesis well: a stripe texture
blurred by 8.2 px (plasma_Grey, JPEG q74) preferred 8.0 px to focus by a ratio of only 0.79, short of
IN_FOCUS_MARGIN. Its tiles' shared blur, 0.8 · 6.1 px, was far too small: the stripes lie beyond that
blur's first OTF zero, where the true OTF had inverted them, and deblurring boosted them in the wrong
phase (−0.32 dB; 8.0 px: +5.5 dB). So a blur the whole-photo fit prefers at all (CORROBORATED_MARGIN) is
taken where the tiles' quantiles q and 1 − q bracket it, at least the lower one reads a blur, and the
edges allow it (a coarser scale's find must also fit the full-resolution spectrum, as below). Sharp
photos whose fit prefers a blur unclearly (the sRGB-disk set's sharp rocket, 256², 2.6 px at 0.77; the mate
photos 1.3 px at 0.95–0.99) have more than a quarter of sharp tiles; the depth-varying photos' preferences
(1.3–1.5 px) lie below their tiles' lower quartiles (1.6–1.9). Of 643 development images (held-out sets 0 and 20–34, the
camera and sRGB-disk benchmarks, blurred and sharp, the examples, the full-size corpus and mate photos;
2026-11-27), the whole-photo fit reads 350 in focus, and the step takes one: that stripe texture.

Where the spectrum alone is least sure, the photo is asked too. A blur that only a coarser scale saw
(hidd.blind.psf_fit: the finest scale read in focus) must also fit the full-resolution spectrum (residual at
most MAX_FINEST_FIT_RATIO × the in-focus one) and the photo's edges (hidd.blind.edge_bound); so must the
tiles' shared blur. Two sharp corpus photos were misread at a coarser scale and spoiled by the deblur: a moss
macro (9.6 px; the full-resolution spectrum rejected it, 3.84, under the floor below it fits, 1.73) and a lake
at dusk (8.4 and 12.7 px; its reeds and horizon are far sharper than that, ρ 1.93–2.51, and so for its flat
tiles' shared blur of 5.5 px, 1.65). In the full-resolution fit the noise floor may fall as steeply as f^−2
(FINE_BAND_NOISE_SLOPE; the search keeps f^−1, where steeper floors mimic blur): in a high-ISO photo of a dull
scene the fine band is noise, which demosaicing, white balance and 4:2:0 JPEG make fall about as f^−2.7 (a fig
on concrete, 6 px; fresh photos, 2026-11-27). With the search's floor, true blurs that the 2× coarser scale
read to within 10 % fitted 3.2–4.5× worse than focus and were refused: four high-ISO photos (4.1–6.0 px) came
back unchanged, a fifth got the edges' half-trusted blur. With it they fit at 1.5–2.2 and gain +0.57…+1.97 dB.
On 1034 development and fresh images the change alters those five verdicts only; no sharp photo's coarse blur
passes the spectrum and fails only there (the moss now fits at 1.73: its edges refuse it). Blurs the finest
scale sees are not asked the edges: bokeh discs of point lights have steep rims that the edge test must leave
out, and it can only do so approximately (dense, overlapping lights defeat it: such a photo whose blur only a
coarser scale saw comes back unchanged).

Every blur the whole-photo fit reads, at any scale, must also fit the photo's noise: beyond the blur's main
lobe a blurred photo holds noise only, so that band's level (hidd.blind.noise.band_excess) may be at most
MAX_BAND_EXCESS × the noise its flat patches show. On the 452 blurred photos that the fit reads blurred
(held-out sets 0 and 20–37, fresh sets 40–43 and a low-contrast one, the camera and sRGB-disk benchmarks, the
examples; 2026-11-27) it is at most 4.46 (JPEG q 60–80, which keeps noise around edges and wipes it out of
flat patches); on the sharp photos the fit reads blurred it is 6.26–18.1. Those were ruined by the deblur and
the guard, which looks for grain in flat areas, kept it: a bridge's thin cables against the sky (a fresh
photo's centre crop, 256², read 2.2 px at the finest scale: 17.9 dB against itself, ringing along every
cable), and a lake at dusk (make_heldout's crop of the corpus photo, read 16.3 px at the 2× coarser scale,
whose reeds and smooth sky passed the spectrum and the edges, ρ 0.71: 24.6 dB). Both now come back as they
came. The margin is narrow on both sides (4.46 against 6.26), and a photo textured all over has no flat patch
to compare with (skimage's chelsea reads 2.0 at any radius): the spectrum and the edges must catch those.

Last, where every reading above says in focus, the edges are asked for a blur of their own (with
`edge_read_share` > 0): a photo whose spectrum cannot show its blur (textureless, like OpenCV's orange,
whose smooth scene absorbs the blur into its own fall-off; or too noisy or too fine-grained at the scales
the fit sees: a lake at night, the baboon's fur) still has no edge sharper than the blur leaves it.
Where hidd.blind.edge_bound's `edge_read_radius` r_e is at least EDGE_READ_MIN_RADIUS (sharp photos read
at most 2.0, the camera benchmark's depth-varying ones 1.0–2.5) and at most EDGE_READ_MAX_RADIUS (a
photo without a sharp edge among its strongest reads any radius, blurred or not: so a larger blur that
the spectrum misses stays unread, the safe side), `max_radius`, and what the image resolves (as the
spectral fit: RESOLVED_RADIUS_FRACTION of its short side; small images read long), the photo is deblurred by a disk of radius r_e softened by
EDGE_READ_SOFTENING, and the no-harm guard keeps at most `edge_read_share` of the result. The
reading is off by −21 … +26 % (the lens's shape biases it), and deblurring is sensitive to the radius: on
ten blurred photos that read in focus (held-out simulator draws and the orange through the lens camera,
2–12 px; fast, 2026-11-27), the full result gained −1.03 … +1.80 dB (a lake at night whose radius read
26 % long lost), the half blend +0.49 … +1.89, mean +0.95, none worse. As shipped, the seven of them that
read 3 px or more (and in focus otherwise) and the sRGB-disk set's camera_r5 gain +0.46 … +1.89 dB
(docs/BENCHMARKS.md).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from hidd.blind.edge_bound import EDGE_READ_STEP, MAX_EDGE_SHARPNESS, edge_read_radius, edge_sharpness
from hidd.blind.noise import band_excess
from hidd.blind.psf_fit import (IN_FOCUS_RADIUS, MAX_RADIUS, RESOLVED_RADIUS_FRACTION, PSFEstimate,
                                 estimate_for_lens, estimate_psf, lens_fit_ratio)
from hidd.blind.radius_map import tile_radius_quantiles
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
    estimate = estimate_psf(linear, max_radius=max_radius)
    if estimate.lens.radius > 0:
        seen = estimate.found_scale == 1 or _coarse_blur_holds(linear, estimate.lens)
        if seen and _noise_allows(linear, estimate.lens):
            return estimate
        estimate = estimate_for_lens(linear, LensPSF(0.0))  # a sharp photo whose spectrum looks blurred
    if shared_quantile > 0:
        low, high = tile_radius_quantiles(linear, (shared_quantile, 1 - shared_quantile))
        blur = _corroborated_blur(linear, max_radius, low, high) or _shared_blur(linear, max_radius, low, high)
        if blur is not None:
            return blur
    if edge_read_share > 0:
        # read past the top, so that a photo with no edge to stop the reading is not taken for a blur at the top
        radius = edge_read_radius(linear, EDGE_READ_MAX_RADIUS + EDGE_READ_STEP)
        top = min(EDGE_READ_MAX_RADIUS, max_radius, RESOLVED_RADIUS_FRACTION * min(linear.shape[-2:]))
        if EDGE_READ_MIN_RADIUS <= radius <= top:
            lens = LensPSF(radius, softening=EDGE_READ_SOFTENING)
            return replace(estimate_for_lens(linear, lens), max_share=edge_read_share)
    return estimate


def check_fallbacks(shared_quantile: float, edge_read_share: float) -> None:
    """Refuse, in one line, a shared_quantile outside [0, 0.5) or an edge_read_share outside [0, 1]."""
    if not 0 <= shared_quantile < 0.5:
        raise ValueError(f"sampler.shared_quantile must be in [0, 0.5), got {shared_quantile}")
    if not 0 <= edge_read_share <= 1:
        raise ValueError(f"sampler.edge_read_share must be in [0, 1], got {edge_read_share}")


def _corroborated_blur(linear: torch.Tensor, max_radius: float, low: float, high: float) -> PSFEstimate | None:
    """The blur the whole-photo spectrum prefers to focus, though by less than IN_FOCUS_MARGIN, where the tiles'
    quantiles q and 1 − q (low, high) bracket it and the image's edges and noise allow it (see the module
    docstring), or None."""
    if low < IN_FOCUS_RADIUS:
        return None
    estimate = estimate_psf(linear, max_radius=max_radius, in_focus_margin=CORROBORATED_MARGIN)
    if not low <= estimate.lens.radius <= high:
        return None
    lens = estimate.lens  # unlike a clear blur, one the finest scale saw must fit the edges too
    seen = _edges_allow(linear, lens) if estimate.found_scale == 1 else _coarse_blur_holds(linear, lens)
    return estimate if seen and _noise_allows(linear, lens) else None


def _shared_blur(linear: torch.Tensor, max_radius: float, radius: float, upper: float) -> PSFEstimate | None:
    """The PSF most of the image's tiles share, given the tiles' quantiles q and 1 − q (see the module
    docstring), or None."""
    if radius < IN_FOCUS_RADIUS or upper < MIN_SPREAD * radius:
        return None
    lens = LensPSF(SHARED_RADIUS_FACTOR * float(min(radius, max_radius)), softening=SHARED_SOFTENING)
    shared = estimate_for_lens(linear, lens)
    return shared if shared.fit_ratio <= MAX_FIT_RATIO and _edges_allow(linear, lens) else None


def _coarse_blur_holds(linear: torch.Tensor, lens: LensPSF) -> bool:
    """Whether a blur that only a coarser scale saw fits the full-resolution spectrum too, and the image's edges."""
    return (lens_fit_ratio(linear, lens, max_noise_slope=FINE_BAND_NOISE_SLOPE) <= MAX_FINEST_FIT_RATIO
            and _edges_allow(linear, lens))


def _edges_allow(linear: torch.Tensor, lens: LensPSF) -> bool:
    """Whether the image's sharpest edges are no sharper than a blur of the lens's radius leaves them."""
    return edge_sharpness(linear, lens.radius) <= MAX_EDGE_SHARPNESS


def _noise_allows(linear: torch.Tensor, lens: LensPSF) -> bool:
    """Whether the band beyond the blur's main lobe holds no more than noise, as much as the flat patches show."""
    return band_excess(linear, lens, LINEAR) <= MAX_BAND_EXCESS
