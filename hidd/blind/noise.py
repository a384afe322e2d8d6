"""Blind noise-level function (NLF) of a photo: noise std as a function of encoded intensity.

Two measurements, fused:

1. Weak-texture patches (cf. Liu, Tanaka & Okutomi 2013). The photo is cut into PATCH×PATCH patches per
   channel; each patch's variance around its least-squares plane estimates the noise variance plus the
   scene's curvature. The scene's share is judged on a Gaussian-smoothed copy (where noise is averaged
   away but a defocused scene's curvature is not): in each intensity bin, only the WEAK_FRACTION of
   patches whose smoothed curvature is lowest count, and their median variance is the bin's noise
   variance. A plane removes only 3 of a patch's 64 degrees of freedom, so noise correlated over a pixel
   or two (demosaicing, JPEG) is measured at its full variance, which the finest wavelet band misses.
   The bins are fitted, by non-negative least squares, with Poisson–Gaussian noise carried through the
   tone curve plus a floor (hidd.camera.noise.NoiseLevelFunction: shot, read, floor).

2. The spectral band beyond the blur's main lobe. JPEG wipes noise out of flat patches and keeps it, with
   its own ringing, around edges: exactly where a deconvolution acts. Beyond the main lobe of the blur's
   OTF (|K|² < BAND_OTF_POWER) the photo holds almost no scene, so the fitted noise floor of its spectrum
   there is the noise that the data step will amplify, read where it is measured rather than extrapolated.
   The NLF is raised, by one factor, until its root-mean-square over the photo reaches that level.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import nnls

from hidd.blind.psf_fit import fit_spectra
from hidd.blind.spectrum import otf_power, ring_counts, tile_spectra
from hidd.camera.noise import NoiseLevelFunction
from hidd.camera.psf import LensPSF
from hidd.camera.tone import ToneCurve

PATCH = 8  # patch side of the weak-texture statistics
WEAK_FRACTION = 0.3  # share of each intensity bin's patches (least smoothed curvature) that are measured
SMOOTHING = 1.5  # std (pixels) of the Gaussian that judges a patch's scene curvature without its noise
INTENSITY_BINS = 8  # bins of patch mean over [0, 1]
MIN_PATCHES = 12  # a bin with fewer weak patches is left out of the fit
BAND_OTF_POWER = 0.05  # the noise band: rings where the blur's |OTF|² is below this
QUANTISATION = 1 / (255 * 12**0.5)  # std of 8-bit rounding: the least noise an 8-bit photo has


def _plane_residual_variance(images: torch.Tensor) -> torch.Tensor:
    """(C, H, W) → (C, n) variance of each PATCH×PATCH patch around its least-squares plane."""
    c, h, w = images.shape
    patches = images[:, :h // PATCH * PATCH, :w // PATCH * PATCH].unfold(1, PATCH, PATCH).unfold(2, PATCH, PATCH)
    patches = patches.reshape(c, -1, PATCH * PATCH).to(torch.float64)
    grid = torch.arange(PATCH, dtype=torch.float64) - (PATCH - 1) / 2
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    design = torch.stack([torch.ones(PATCH * PATCH, dtype=torch.float64), yy.flatten(), xx.flatten()], 1)
    fitted = patches @ torch.linalg.pinv(design).T @ design.T
    return (patches - fitted).square().sum(-1) / (PATCH * PATCH - 3)


def _smoothed(images: torch.Tensor) -> torch.Tensor:
    """(C, H, W) → each channel smoothed by a Gaussian of std SMOOTHING (taps to ± 3 std, edges replicated), float64."""
    smoothed = ndimage.gaussian_filter(images.detach().cpu().double().numpy(), (0, SMOOTHING, SMOOTHING),
                                       mode="nearest", truncate=3.0)
    return torch.from_numpy(smoothed).to(images.device)


def weak_texture_bins(encoded: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per intensity bin of (C, H, W) encoded images: (bin centre intensities, noise variances, patch counts)."""
    variance = _plane_residual_variance(encoded).flatten()
    curvature = _plane_residual_variance(_smoothed(encoded)).flatten()
    c, h, w = encoded.shape
    means = encoded[:, :h // PATCH * PATCH, :w // PATCH * PATCH].unfold(1, PATCH, PATCH).unfold(2, PATCH, PATCH)
    means = means.reshape(-1, PATCH * PATCH).to(torch.float64).mean(-1)
    edges = torch.linspace(0, 1, INTENSITY_BINS + 1, dtype=torch.float64)
    centres, variances, counts = [], [], []
    for low, high in zip(edges[:-1], edges[1:]):
        members = (means >= low) & (means < high) if high < 1 else (means >= low)
        if members.sum() < MIN_PATCHES / WEAK_FRACTION:
            continue
        weak = curvature[members] <= torch.quantile(curvature[members], WEAK_FRACTION)
        centres.append(float(means[members][weak].mean()))
        variances.append(float(variance[members][weak].median()))
        counts.append(int(weak.sum()))
    return np.array(centres), np.array(variances), np.array(counts)


def fit_nlf(centres: np.ndarray, variances: np.ndarray, counts: np.ndarray, tone: ToneCurve) -> tuple[float, float, float]:
    """(shot, read, floor) of std(e)² = Γ'(l)² (shot·l + read²) + floor², fitted by weighted NNLS on the bins."""
    if len(centres) == 0:
        return 0.0, 0.0, QUANTISATION
    e = torch.as_tensor(centres, dtype=torch.float64)
    linear = tone.decode(e).clamp_min(0)
    slope2 = tone.slope(linear) ** 2
    design = torch.stack([slope2 * linear, slope2, torch.ones_like(e)], 1).numpy()
    weight = np.sqrt(counts) / np.maximum(variances, QUANTISATION**2)  # relative errors, more patches more weight
    (shot, read2, floor2), _ = nnls(design * weight[:, None], variances * weight)
    return float(shot), float(np.sqrt(read2)), float(np.sqrt(floor2))


def band_noise_level(encoded: torch.Tensor, lens: LensPSF, tile: int = 256) -> float:
    """Root-mean-square noise std of (C, H, W) encoded images in the rings beyond the blur's main lobe (the upper
    half of the spectrum when in focus), from the noise floor fitted there with `lens` as the blur."""
    size = min(tile, *encoded.shape[-2:])
    spectrum = torch.stack([tile_spectra(channel, size, size // 2).mean(dim=(0, 1)) for channel in encoded]).mean(0)
    power = otf_power(lens, size)
    theta = fit_spectra(spectrum, power[None], size).theta[0]
    rings = torch.arange(len(power))
    frequency = rings.to(torch.float64).clamp_min(1) / size
    floor = theta[2].exp() * frequency ** (-theta[3])
    band = (rings > 0) & (power < BAND_OTF_POWER)
    if band.sum() < 4:
        band = rings > len(power) // 2
    counts = ring_counts(size)
    return float(((counts * floor)[band].sum() / counts[band].sum()).sqrt())


def band_excess(image: torch.Tensor, lens: LensPSF, tone: ToneCurve) -> float:
    """The noise level in the band beyond `lens`'s main lobe (band_noise_level) over the level the flat patches
    of an image (C, H, W) or (H, W) show (weak_texture_bins, fitted through `tone`): about 1 on a photo that
    lens blurred, a few where JPEG kept its noise around edges and wiped it out of flat patches, many where
    that band holds the scene's own detail, which the blur would have removed (hidd.blind.defocus)."""
    image = image.detach().cpu().to(torch.float64)
    image = image[None] if image.ndim == 2 else image
    return band_noise_level(image, lens) / float(_flat_patch_nlf(image, tone).level(image[None]))


def _flat_patch_nlf(image: torch.Tensor, tone: ToneCurve) -> NoiseLevelFunction:
    """The noise-level function the weak-texture patches of a float64 image (C, H, W) show, at least 8-bit rounding."""
    shot, read, floor = fit_nlf(*weak_texture_bins(image), tone)
    return NoiseLevelFunction(tone, *(torch.tensor([v], dtype=torch.float64)
                                      for v in (shot, read, max(floor, QUANTISATION))))


def estimate_nlf(encoded: torch.Tensor, tone: ToneCurve, lens: LensPSF | None = None) -> NoiseLevelFunction:
    """The noise-level function of one photo (C, H, W) in [0, 1] (see the module docstring).

    lens: the photo's (estimated) blur, which defines the spectral noise band; None skips that measurement.
    """
    encoded = encoded.detach().cpu().to(torch.float64)
    nlf = _flat_patch_nlf(encoded, tone)
    if lens is not None:
        level = float(nlf.level(encoded[None]))
        band = band_noise_level(encoded, lens)
        if band > level:
            gain = band / level
            nlf = NoiseLevelFunction(tone, nlf.shot * gain**2, nlf.read * gain, nlf.floor * gain)
    return nlf
