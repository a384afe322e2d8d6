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

Both run on the photos' device, over a batch of same-size photos at once, in float32 (float64 for float64 photos:
the reference). The patch statistics are tensor reductions (a plane fit is the patch's mean plus its projections on
the orthogonal y and x ramps, taken from the mean-centred patch); each bin's weak patches come from one sort of a
photo's patches by bin and then value, their quantile and median read off as torch.quantile (linear interpolation)
and torch.median (the lower median) compute them. Only the NNLS of each photo's few bins and the band's fit to its
radial spectrum (one value per ring) run in float64 on the host.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import nnls

from hidd.blind.filters import gaussian_filter
from hidd.blind.psf_fit import fit_spectra
from hidd.blind.spectrum import as_batch, otf_power, ring_counts, tile_spectra, working
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


def _patches(images: torch.Tensor) -> torch.Tensor:
    """(…, H, W) → (…, n, PATCH²): the whole PATCH×PATCH patches, row by row, each flattened row by row."""
    h, w = images.shape[-2:]
    cropped = images[..., :h // PATCH * PATCH, :w // PATCH * PATCH]
    patches = cropped.unfold(-2, PATCH, PATCH).unfold(-2, PATCH, PATCH)  # …, h/P, w/P, P, P
    return patches.reshape(*images.shape[:-2], -1, PATCH * PATCH)


def _plane_residual_variance(images: torch.Tensor) -> torch.Tensor:
    """(…, H, W) → (…, n) variance of each PATCH×PATCH patch around its least-squares plane, in the images' dtype.

    On the centred grid the plane's regressors 1, y and x are orthogonal, so the plane is the patch's mean plus its
    projections on y and x; the mean is taken off first, which keeps float32 clear of cancellation."""
    centred = _patches(images)
    centred = centred - centred.mean(-1, keepdim=True)
    grid = torch.arange(PATCH, dtype=images.dtype, device=images.device) - (PATCH - 1) / 2
    rows, columns = grid.repeat_interleave(PATCH), grid.repeat(PATCH)
    norm = PATCH * grid.square().sum()  # Σ y² = Σ x² over a patch
    residual = centred - (centred * rows).sum(-1, keepdim=True) / norm * rows
    residual = residual - (centred * columns).sum(-1, keepdim=True) / norm * columns
    return residual.square().sum(-1) / (PATCH * PATCH - 3)


def _smoothed(images: torch.Tensor) -> torch.Tensor:
    """(…, H, W) → each image smoothed by a Gaussian of std SMOOTHING (taps to ± 3 std, edges replicated: ndimage's
    mode "nearest"), on its device and in its dtype."""
    return gaussian_filter(images, SMOOTHING, mode="nearest", truncate=3.0)


def _grouped(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """Rows of values (B, N) sorted by their group (B, N) (in [0, n_groups]; n_groups: none), and by value within
    each (NaN last): (the sorted rows (B, N), each group's first index (B, n_groups), its size (B, n_groups))."""
    values, order = values.sort(dim=-1)
    values = values.gather(-1, groups.gather(-1, order).argsort(dim=-1, stable=True))
    sizes = torch.zeros(len(groups), n_groups + 1, dtype=torch.long, device=groups.device)
    sizes = sizes.scatter_add_(1, groups, torch.ones_like(groups))[:, :n_groups]
    return values, sizes.cumsum(1) - sizes, sizes


def _segment_quantile(rows: torch.Tensor, firsts: torch.Tensor, sizes: torch.Tensor, q: float) -> torch.Tensor:
    """torch.quantile(segment, q) (linear interpolation) of each segment [first, first + size) of sorted rows
    (B, N), (B, G) → (B, G), as torch computes it: rank q (m − 1) in float64 from q held in the rows' dtype, the
    fraction cast back to that dtype, torch.lerp; NaN where the segment holds a NaN (it sorts last)."""
    rank = torch.tensor(q, dtype=rows.dtype).to(torch.float64) * (sizes - 1).clamp_min(0)
    below, above = rank.floor().long(), rank.ceil().long()
    last = rows.shape[-1] - 1
    low = rows.gather(-1, (firsts + below).clamp(max=last))
    quantile = torch.lerp(low, rows.gather(-1, (firsts + above).clamp(max=last)), (rank - below).to(rows.dtype))
    return torch.where(rows.gather(-1, (firsts + sizes - 1).clamp(0, last)).isnan(), torch.nan, quantile)


def weak_texture_stats(encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per photo and intensity bin of encoded photos (B, C, H, W): (bin centre intensities, noise variances, weak
    patch counts), each (B, INTENSITY_BINS), on the photos' device, float32 (float64 for float64 photos); a bin left
    out (fewer than MIN_PATCHES / WEAK_FRACTION patches) counts 0, its centre and variance NaN.

    The patches of a bin are those whose mean lies in it (the last bin takes means ≥ 1 too, none takes a mean < 0);
    its weak patches are those whose smoothed curvature is at most the bin's WEAK_FRACTION quantile (torch.quantile),
    its variance their lower median (torch.median) and its centre their mean intensity."""
    if encoded.ndim != 4:
        raise ValueError(f"weak_texture_stats takes photos (B, C, H, W), got a tensor of shape {tuple(encoded.shape)}")
    encoded = working(encoded)
    b = len(encoded)
    variance = _plane_residual_variance(encoded).reshape(b, -1)
    curvature = _plane_residual_variance(_smoothed(encoded)).reshape(b, -1)
    means = _patches(encoded).mean(-1).reshape(b, -1)
    none = torch.full((b, INTENSITY_BINS), torch.nan, dtype=encoded.dtype, device=encoded.device)
    if means.shape[-1] == 0:
        return none, none, torch.zeros_like(none, dtype=torch.long)
    inside = means >= 0  # NaN: in no bin
    bins = torch.where(inside, (means * INTENSITY_BINS).floor().clamp(max=INTENSITY_BINS - 1), INTENSITY_BINS).long()
    sorted_curvature, firsts, members = _grouped(curvature, bins, INTENSITY_BINS)
    threshold = _segment_quantile(sorted_curvature, firsts, members, WEAK_FRACTION)
    weak = inside & (curvature <= threshold.gather(1, bins.clamp(max=INTENSITY_BINS - 1)))
    weak_bins = torch.where(weak, bins, INTENSITY_BINS)
    sorted_variance, firsts, counts = _grouped(variance, weak_bins, INTENSITY_BINS)
    median = sorted_variance.gather(-1, (firsts + (counts - 1).clamp_min(0) // 2).clamp(max=means.shape[-1] - 1))
    in_bin = weak_bins[:, None, :] == torch.arange(INTENSITY_BINS, device=bins.device)[:, None]  # B, bins, N
    centres = torch.where(in_bin, means[:, None, :], 0).sum(-1) / counts
    kept = ~(members < MIN_PATCHES / WEAK_FRACTION) & (counts > 0)
    return torch.where(kept, centres, none), torch.where(kept, median, none), torch.where(kept, counts, 0)


def weak_texture_bins(encoded: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per intensity bin of (C, H, W) encoded images: (bin centre intensities, noise variances, patch counts), the
    bins kept only (weak_texture_stats of one photo)."""
    centres, variances, counts = (v[0].cpu().numpy() for v in weak_texture_stats(encoded[None]))
    kept = counts > 0
    return centres[kept].astype(np.float64), variances[kept].astype(np.float64), counts[kept]


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
    return band_noise_levels(encoded[None], [lens], tile)[0]


def band_noise_levels(encoded: torch.Tensor, lenses: list[LensPSF], tile: int = 256) -> list[float]:
    """band_noise_level of each of same-size photos (B, C, H, W) under its own lens: the Welch spectra of all their
    channels at once on their device, then each photo's radial spectrum (one value per ring, the mean over its
    channels) fitted in float64 on the host, all photos in one fit."""
    encoded = working(encoded)
    if encoded.ndim != 4 or len(lenses) != len(encoded):
        raise ValueError(f"band_noise_levels: {len(lenses)} lenses for photos of shape {tuple(encoded.shape)}")
    size = min(tile, *encoded.shape[-2:])
    spectra = tile_spectra(encoded, size, size // 2).mean(dim=(-3, -2)).mean(1).to("cpu", torch.float64)
    powers = torch.stack([otf_power(lens, size) for lens in lenses])
    thetas = fit_spectra(spectra, powers[:, None], size).theta[:, 0]
    return [_band_level(theta, power, size) for theta, power in zip(thetas, powers)]


def _band_level(theta: torch.Tensor, power: torch.Tensor, size: int) -> float:
    """The RMS of the fitted noise floor N f^−γ (θ = log A, β, log N, γ) over the rings where the blur's radially
    averaged |OTF|² `power` is below BAND_OTF_POWER (the upper half of the rings where fewer than 4 are)."""
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
    photo = working(as_batch(image, "band_excess"))
    return band_noise_level(photo[0], lens) / float(_flat_patch_nlfs(photo, tone).level(photo))


def _flat_patch_nlfs(encoded: torch.Tensor, tone: ToneCurve) -> NoiseLevelFunction:
    """The noise-level functions the weak-texture patches of photos (B, C, H, W) show, at least 8-bit rounding:
    one NNLS fit per photo on the host (a few bins), the parameters (B,) float64 on the photos' device."""
    stats = weak_texture_stats(encoded)
    centres, variances = (v.to("cpu", torch.float64).numpy() for v in stats[:2])
    counts = stats[2].cpu().numpy()
    parameters = []
    for centre, variance, count in zip(centres, variances, counts):
        kept = count > 0
        shot, read, floor = fit_nlf(centre[kept], variance[kept], count[kept], tone)
        parameters.append((shot, read, max(floor, QUANTISATION)))
    shot, read, floor = torch.tensor(parameters, dtype=torch.float64).reshape(-1, 3).to(encoded.device).unbind(1)
    return NoiseLevelFunction(tone, shot, read, floor)


def estimate_nlfs(encoded: torch.Tensor, tone: ToneCurve,
                  lenses: list[LensPSF | None] | None = None) -> NoiseLevelFunction:
    """The noise-level functions of photos (B, C, H, W) in [0, 1] (see the module docstring), parameters (B,) float64
    on the photos' device; the per-pixel work on that device, in float32 (float64 for float64 photos).

    lenses: each photo's (estimated) blur, which defines its spectral noise band; None (for all, or for a photo)
    skips that measurement."""
    encoded = working(encoded)
    if encoded.ndim != 4:
        raise ValueError(f"estimate_nlfs takes photos (B, C, H, W), got a tensor of shape {tuple(encoded.shape)}")
    lenses = [None] * len(encoded) if lenses is None else list(lenses)
    if len(lenses) != len(encoded):
        raise ValueError(f"estimate_nlfs: {len(lenses)} lenses for {len(encoded)} photos")
    nlf = _flat_patch_nlfs(encoded, tone)
    if all(lens is None for lens in lenses):
        return nlf
    levels = nlf.level(encoded).tolist()
    measured = [i for i, lens in enumerate(lenses) if lens is not None]
    bands = dict(zip(measured, band_noise_levels(encoded[measured], [lenses[i] for i in measured])))
    gain = [bands[i] / level if bands.get(i, -math.inf) > level else 1.0 for i, level in enumerate(levels)]
    gain = torch.tensor(gain, dtype=torch.float64, device=encoded.device)
    return NoiseLevelFunction(tone, nlf.shot * gain**2, nlf.read * gain, nlf.floor * gain)


def estimate_nlf(encoded: torch.Tensor, tone: ToneCurve, lens: LensPSF | None = None) -> NoiseLevelFunction:
    """The noise-level function of one photo (C, H, W) in [0, 1] (estimate_nlfs of a batch of one).

    lens: the photo's (estimated) blur, which defines the spectral noise band; None skips that measurement.
    """
    return estimate_nlfs(encoded[None], tone, [lens])
