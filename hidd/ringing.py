"""Ringing of a deblurred image: power piled up at its blur's OTF notches.

A deconvolution divides the photo's spectrum by the blur's OTF K. Where |K| is near a zero (a disk's notches
at |f| ≈ 0.61/r, 1.12/r, …) the photo holds almost nothing of the scene, and whatever it does hold there (noise,
JPEG error, or the scene itself where the real blur is not the PSF assumed: another lens shape, motion, a blur
that acted on other values than the model's) is amplified most. It comes back as ripples of period ≈ 1.6 r
along every edge and around every point light: ringing. In the spectrum of the result that is a bump at the
first notch. A natural image's radially averaged power falls smoothly with frequency (about as a power law),
and so does a correctly deblurred one's, so

    notch_excess = max over the first notch's rings of  log P(f) − T(f),

P the result's Welch power spectrum (Hann-windowed tiles, averaged over rings: hidd.blind.spectrum), T a quadratic
in log f fitted to log P away from every notch, measures the bump as the natural log of a power ratio (1: the power
there is e ≈ 2.7 × the trend). The notches are the aperture's: a Gaussian softening only multiplies the OTF by a
positive factor, so they are found with the softening left out. It cannot see ringing that falls between notches,
nor judge blurs under about 2 px (their first notch lies where JPEG's blocks and the finest texture make bumps of
their own), and it reads a periodic texture whose period happens to lie at the notch as ringing too. So the no-harm
guard (hidd.no_harm) only caps the share of a result that shows it (`fast`: ½): that costs a wrongly flagged result
part of its gain, and a result better than its photo stays better at ½ (the error of y + w (x̂ − y) is quadratic in
w, and lower at ½ than at 0 wherever it is at 1).

The Welch spectrum is computed on the image's device (float32 unless the image is float64); the trend is fitted to
its ring powers (at most TILE/2 + 1) on the host, in float64.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from hidd.blind.spectrum import as_batch, gray_batch, otf_power, tile_spectra
from hidd.camera.psf import LensPSF

NOTCH_POWER = 0.01  # a notch: a local minimum of the blur's radially averaged |OTF|² below this
HIGHEST_NOTCH = 0.3  # cycles/px: a first notch above this (blurs under ~2 px) is not judged: there JPEG's 8-px blocks
# (their harmonics crowd the upper band) and the sampler's finest texture make bumps of their own (results that
# gained read 0.78–1.27 there, sharp references at most 0.41)
HIGHEST_FREQUENCY = 0.45  # cycles/px: the trend stops here (demosaicing owns the corner)
NOTCH_EXCLUSION = 0.12  # the trend leaves out rings within this fraction of a notch's frequency
NOTCH_WIDTH = 0.06  # the bump is looked for within this fraction of the first notch's frequency (and one ring)
TILE = 256  # the Welch tiles' side (smaller images: their short side)
MIN_TREND_RINGS = 6  # fewer rings to fit the trend to: no judgement


def notch_excess(image: torch.Tensor, lens: LensPSF, tile: int = TILE) -> float:
    """The bump (natural log of a power ratio) of an image's (C, H, W) or (H, W) radially averaged power spectrum at
    `lens`'s first OTF notch above the spectrum's smooth trend; NaN where the lens has no notch below HIGHEST_FREQUENCY
    that the image's tiles resolve (in focus, a PSF wider than a tile), none below HIGHEST_NOTCH (blurs under about
    2 px), or too few rings are left to fit the trend."""
    return notch_excess_batch(as_batch(image, "notch_excess"), [lens], tile)[0]


def notch_excess_batch(images: torch.Tensor, lenses: list[LensPSF], tile: int = TILE) -> list[float]:
    """notch_excess of each of same-size images (B, C, H, W) under its own lens, the Welch spectra of all of them
    computed at once on their device."""
    if images.ndim != 4 or len(lenses) != images.shape[0]:
        raise ValueError(f"notch_excess_batch: {len(lenses)} lenses for images of shape {tuple(images.shape)}")
    size = min(tile, *images.shape[-2:]) // 2 * 2
    judged = [i for i, lens in enumerate(lenses) if _resolved(lens, size)]
    excess = [math.nan] * len(lenses)
    if judged:
        gray = gray_batch(images[judged], "notch_excess")
        spectra = tile_spectra(gray, size, size // 2).mean(dim=(-3, -2)).cpu()  # size//2 + 1 ring powers each
        for i, spectrum in zip(judged, spectra):
            excess[i] = _excess(spectrum, lenses[i], size)
    return excess


def _resolved(lens: LensPSF, size: int) -> bool:
    """Whether `lens` may have a notch that windows of `size` pixels resolve (a disk, within a window)."""
    return lens.radius > 0 and size >= 16 and lens.channel(1.0).shape[-1] <= size


def _excess(spectrum: torch.Tensor, lens: LensPSF, size: int) -> float:
    """notch_excess of a radial spectrum (size//2 + 1,) on the host."""
    power = otf_power(replace(lens, softening=0.0), size)  # the aperture's zeros (a truncated Gaussian adds false ones)
    frequency = torch.arange(len(power), dtype=torch.float64) / size
    inner = (frequency > 0) & (frequency <= HIGHEST_FREQUENCY)
    minimum = torch.zeros_like(inner)
    minimum[1:-1] = (power[1:-1] <= power[:-2]) & (power[1:-1] <= power[2:])
    notches = frequency[minimum & inner & (power < NOTCH_POWER)]
    if len(notches) == 0 or notches[0] > HIGHEST_NOTCH:
        return math.nan
    first = float(notches[0])
    near = torch.zeros_like(inner)
    for notch in notches.tolist():
        near |= (frequency - notch).abs() < NOTCH_EXCLUSION * notch
    trend_rings = inner & (frequency >= 0.3 * first) & ~near & (spectrum > 0)
    if int(trend_rings.sum()) < MIN_TREND_RINGS:
        return math.nan
    log_f, log_p = frequency[trend_rings].log(), spectrum[trend_rings].log()
    design = torch.stack([torch.ones_like(log_f), log_f, log_f**2], dim=1)
    coefficients = torch.linalg.lstsq(design, log_p[:, None]).solution[:, 0]
    at_notch = ((frequency - first).abs() <= NOTCH_WIDTH * first + 1 / size) & (spectrum > 0)
    if not bool(at_notch.any()):
        return math.nan
    log_f = frequency[at_notch].log()
    trend = coefficients[0] + coefficients[1] * log_f + coefficients[2] * log_f**2
    return float((spectrum[at_notch].log() - trend).max())
