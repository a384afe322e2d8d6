"""Blind defocus PSF estimation: radius and softening of the lens PSF from the blurred image's spectrum.

A defocused photo's power spectrum, in linear light, is |K(f)|² S(f) + N(f): the sharp scene's spectrum
S, which for natural images falls off as a power law A·f^−β, times the squared optical transfer function
of the unknown PSF, plus the noise floor N(f) = N·f^−γ, 0 ≤ γ ≤ MAX_NOISE_SLOPE: white (γ = 0) for
synthetic noise, coloured in real photos (demosaicing, JPEG and in-camera processing tilt it; a flat floor
read OpenCV's defocused `text_defocus` photo as in focus). A disk PSF's OTF is Airy-like,
2·J1(2πfr)/(2πfr), with rings of zeros at f = 3.83/(2πr), 7.02/(2πr), …: their positions and the shape
of the main lobe give r away, even where the noise floor hides the outer rings; a Gaussian softening of
the PSF (diffraction, pixel aperture, demosaicing) damps the outer lobes and shows as a steeper fall.

So the image's radially averaged, Hann-windowed periodogram (hidd.blind.spectrum) is fitted, for every
candidate PSF, by log(A f^−β |K|² + N f^−γ) with (log A, β, log N, γ) found by Levenberg–Marquardt in the
log domain, vectorised over the candidates; the candidate with the smallest mean squared log residual
wins, provided a blur beats the in-focus hypothesis clearly (IN_FOCUS_MARGIN). The candidates are
hidd.camera.psf.LensPSF, sampled on the periodogram's own frequency grid, so pixel integration and
anti-aliasing are part of the model.

Search: radii on a COARSE_STEP grid up to the largest the window resolves (RESOLVED_RADIUS_FRACTION of the
tile), then, for a blur near that top, the same on the image area-downsampled 2×, 4×, … (a disk of radius r
is one of r/s on the s×-downsampled image, whose pixels integrate it the same way), up to `max_radius`.
At the scale where the radius is found, a fine grid of radius × softening refines it.

The spectra at every scale the search may reach are computed first (WelchPyramid), on the image's device, for one
photo or for a batch of same-size photos at once, and so is the first scale's search, vectorised over the photos;
the fits themselves run in float64 on that device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hidd.blind.spectrum import gray_linear, otf_table, tile_spectra
from hidd.camera.psf import LensPSF

MAX_RADIUS = 30.0  # default top of the search, in pixels of the full image
COARSE_STEP = 0.1  # first search grid spacing (pixels at the working scale)
FINE_STEP = 0.02  # refinement spacing, within ± COARSE_STEP of the coarse optimum
SOFTENINGS = (0.0, 0.35, 0.7, 1.05, 1.4)  # Gaussian softening stds tried in the refinement (working-scale pixels)
MAX_LENS_SOFTENING = 0.7  # px of the full image: the most softening the refinement may give a lens. Diffraction,
# pixel aperture and AA filter stay below it; the steeper fall-off the fit would also take for softening is
# JPEG's, demosaicing's or the scene's, and deconvolving it hallucinates and rings (held-out photos made by an
# independent camera simulator read 1.05–2.8 px and fast lost 1–2 dB on them; capped at 0.7: +2.1 and +3.3)
LOWEST_BIN = 2  # periodogram rings below this (in units of 1/tile) are left out: the window's leakage of DC
RESOLVED_RADIUS_FRACTION = 0.05  # the largest radius searched in a window of T pixels is this × T (12.8 at 256):
# beyond it the main lobe of the OTF spans too few rings to be told from the scene's own fall-off
COARSER_WHEN_ABOVE = 0.8  # go to the next coarser scale when the estimate exceeds this fraction of the range
MIN_WINDOW = 64  # the smallest window (pixels) a coarser scale may use
IN_FOCUS_WINDOW = 128  # ... and to decide in focus or not: on 64 px a flat sky fits a blur (rocket read 6 px)
TILE_SLOPE = 2.0  # spectral slope β held fixed in radius maps: natural scenes' power falls as f^−2
IN_FOCUS_RADIUS = 1.2  # px; smaller estimates are reported as 0 (in focus): sharp photos read 0.6–0.9 px
# (their own optical / resampling roll-off), and deconvolving a sharp image rings far worse (46 → 36 dB on
# the sharp astronaut) than leaving a slightly blurred one alone
MAX_NOISE_SLOPE = 1.0  # γ of the noise floor N f^−γ; steeper floors mimic blur (sharp photos then read 2–12 px)
IN_FOCUS_MARGIN = 0.75  # a radius ≥ IN_FOCUS_RADIUS must fit with ≤ this × the best in-focus residual. Sharp
# skimage photos reach 0.85 (rocket, at 2.5 px) with a coloured floor; defocused benchmark pairs ≤ 0.17,
# the real text_defocus photo 0.65
TILE_IN_FOCUS_MARGIN = 0.5  # the same test for the tiles of a radius map, whose fits are noisier: on the
# depth-varying benchmark pair it cuts the pixels whose radius is overestimated by > 1 px from 15 % to 2 %


@dataclass(frozen=True)
class SpectrumFit:
    """The best fit of a candidate PSF to a radial spectrum: its residual and θ = (log A, β, log N, γ)."""

    residual: torch.Tensor  # (…, R) mean squared log residual per candidate
    theta: torch.Tensor  # (…, R, 4)


def fit_spectra(spectra: torch.Tensor, otf_power: torch.Tensor, tile: int, beta: float | None = None,
                iterations: int = 40, max_noise_slope: float = MAX_NOISE_SLOPE) -> SpectrumFit:
    """Fit log(A f^−β |K|² + N f^−γ) to ring powers `spectra` (…, F) for each of R candidate |OTF|², a table
    (R, F) shared by all spectra or one per spectrum (…, R, F).

    beta: a fixed spectral slope, or None to fit it too. Levenberg–Marquardt on θ from several β starts,
    vectorised over (…, R), in float64 on the spectra's device; γ is kept in [0, max_noise_slope]. A candidate
    whose every step met a singular system (flat or pure-noise spectra) gets an infinite residual: it explains
    nothing.
    """
    device = spectra.device
    rings = torch.arange(LOWEST_BIN, spectra.shape[-1], device=device)
    log_p = spectra.to(torch.float64)[..., rings].clamp_min(1e-20).log()[..., None, :]  # …, 1, F
    log_f = (rings.to(torch.float64) / tile).log()
    k2 = otf_power.to(device=device, dtype=torch.float64)[..., rings].clamp_min(1e-12)
    batch = torch.broadcast_shapes(log_p.shape[:-1], k2.shape[:-1])

    def parts(theta):
        signal = torch.exp(theta[..., :1] - theta[..., 1:2] * log_f) * k2
        return signal, torch.exp(theta[..., 2:3] - theta[..., 3:4] * log_f)

    def loss(theta):
        signal, noise = parts(theta)
        return ((torch.log(signal + noise) - log_p) ** 2).mean(-1)

    free = torch.tensor([1.0, float(beta is None), 1.0, 1.0], dtype=torch.float64, device=device)  # 0: held
    best_loss, best_theta = None, None
    for slope in (1.0, 2.0, 3.0, 4.0) if beta is None else (beta,):
        start = [log_p[..., 0] + slope * log_f[0], torch.full_like(log_p[..., 0], slope), log_p[..., -5:].mean(-1),
                 torch.zeros_like(log_p[..., 0])]
        theta = torch.stack([s.expand(batch) for s in start], -1)
        damping = torch.full(batch, 1e-2, dtype=torch.float64, device=device)
        current = loss(theta)
        solvable = torch.zeros(batch, dtype=torch.bool, device=device)  # whether any step's system had a solution
        for _ in range(iterations):
            signal, noise = parts(theta)
            residual = torch.log(signal + noise) - log_p
            w_signal, w_noise = signal / (signal + noise), noise / (signal + noise)
            jac = torch.stack([w_signal, -w_signal * log_f, w_noise, -w_noise * log_f], -1) * free  # …, F, 4
            normal = jac.transpose(-1, -2) @ jac
            diag = torch.diagonal(normal, dim1=-2, dim2=-1) + 1e-9
            step, info = torch.linalg.solve_ex(normal + damping[..., None, None] * torch.diag_embed(diag),
                                               (jac * residual[..., None]).sum(-2))
            solved = info == 0  # a singular system is a rejected step, never an error
            solvable |= solved
            trial = theta - torch.where(solved[..., None], step, torch.nan)
            trial[..., 3].clamp_(0.0, max_noise_slope)  # a projected step: γ stays in its range
            trial_loss = loss(trial)
            better = trial_loss < current  # NaN trials are never better
            theta = torch.where(better[..., None], trial, theta)
            current = torch.where(better, trial_loss, current)
            damping = torch.where(better, damping / 3, damping * 4)
        current = torch.where(solvable, current, torch.inf)
        if best_loss is None:
            best_loss, best_theta = current, theta
        else:
            improved = current < best_loss
            best_loss = torch.where(improved, current, best_loss)
            best_theta = torch.where(improved[..., None], theta, best_theta)
    return SpectrumFit(best_loss, best_theta)


def _table(candidates: list[LensPSF], size: int, device: torch.device) -> torch.Tensor:
    return otf_table(tuple(candidates), size, device)


def _radius_grid(top: float, step: float = COARSE_STEP) -> list[float]:
    return [float(r) for r in np.round(np.arange(0.0, top + 1e-9, step), 6)]


def search_residual(spectra: torch.Tensor, tile: int, top: float, beta: float | None = None,
                    lens: LensPSF = LensPSF(0.0)) -> torch.Tensor:
    """The fit residual (…, R) of `lens`'s shape at each radius of the COARSE_STEP grid in [0, top] to spectra
    (…, F) (fit_spectra)."""
    candidates = [lens.with_radius(r) for r in _radius_grid(top)]
    return fit_spectra(spectra, _table(candidates, tile, spectra.device), tile, beta).residual


def pick_radius(residual: torch.Tensor, top: float,
                in_focus_margin: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The radius of the smallest residual (…, R) of a search over [0, top] (search_residual), and the best blur's
    residual over the best in-focus one (…,). With in_focus_margin, a radius ≥ IN_FOCUS_RADIUS wins only where
    that ratio is at most the margin; elsewhere the result is 0 (in focus)."""
    radii = torch.tensor(_radius_grid(top), dtype=torch.float64, device=residual.device)
    radius = radii[residual.argmin(-1)]
    sharp = radii < IN_FOCUS_RADIUS
    in_focus = torch.where(sharp, residual, torch.inf).amin(-1)
    defocused = torch.where(sharp, torch.inf, residual).amin(-1)
    ratio = defocused / in_focus
    if in_focus_margin is not None:
        radius = torch.where(ratio <= in_focus_margin, radius, torch.zeros_like(radius))
    return radius, ratio


def best_radius(spectra: torch.Tensor, tile: int, top: float, beta: float | None = None,
                in_focus_margin: float | None = None,
                lens: LensPSF = LensPSF(0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """Radius (on a COARSE_STEP grid in [0, top]) of the best-fitting `lens` shape for each spectrum (…, F), and
    its residual over the best in-focus residual (…,), as pick_radius gives them."""
    return pick_radius(search_residual(spectra, tile, top, beta, lens), top, in_focus_margin)


@dataclass(frozen=True)
class PSFEstimate:
    """A blind estimate of a photo's lens PSF and of its spectrum's noise floor."""

    lens: LensPSF  # radius 0: in focus
    scale: int  # the image was area-downsampled by this factor for the final fit (large radii)
    at_bound: bool  # the radius sits at the top of the search range: the true blur may be larger
    noise_floor: float  # N of the fitted floor N f^−γ at that scale (linear-light power per frequency)
    noise_slope: float  # γ
    fit_ratio: float  # the best blur's residual over the best in-focus residual (small: a clear blur)
    softening_fitted: bool = True  # False: the lens's softening was set by a model, not fitted (hidd.blind.defocus)
    found_scale: int = 1  # the scale whose in-focus test first saw the blur (> 1: the finest scale read in focus)
    max_share: float = 1.0  # the share of its deblurring the no-harm guard may keep (< 1: only the edges saw the blur)


@dataclass(frozen=True)
class WelchPyramid:
    """The spectra a search up to `max_radius` may fit, of one photo (… = ()) or of same-size photos (… = (B,)):
    at each scale s = 1, 2, 4, … the search may reach, the photos area-downsampled s× and their Welch spectrum over
    windows of min(tile, short side) at half that stride; and the search's residuals at scale 1."""

    shape: tuple[int, int]  # (H, W) at full resolution
    max_radius: float
    spectra: dict[int, torch.Tensor]  # scale → ring powers (…, F), float64 on the photos' device
    sizes: dict[int, int]  # scale → window side (F = side//2 + 1)
    first_search: torch.Tensor  # (…, R) search_residual over [0, _top(1, …)] at scale 1

    def photo(self, i: int) -> WelchPyramid:
        """Photo i's pyramid, of a batch's."""
        return WelchPyramid(self.shape, self.max_radius, {s: v[i] for s, v in self.spectra.items()}, self.sizes,
                            self.first_search[i])


def _top(scale: int, size: int, max_radius: float) -> float:
    """The top of the search at `scale` (its pixels): max_radius, or the most a window of `size` resolves, twice
    that at coarser scales, so that their range overlaps the finer scale's."""
    return min(max_radius / scale, RESOLVED_RADIUS_FRACTION * size * (2 if scale > 1 else 1))


def welch_pyramid(gray: torch.Tensor, max_radius: float = MAX_RADIUS, tile: int = 256) -> WelchPyramid:
    """The WelchPyramid of gray linear-light images (…, H, W): scales while the finer one's range stops short of
    max_radius and the coarser image keeps MIN_WINDOW pixels; the scale-1 search runs over all images at once."""
    spectra, sizes, scale = {}, {}, 1
    while True:
        spectra[scale], sizes[scale] = _spectrum(_downsample(gray, scale), tile)
        if (_top(scale, sizes[scale], max_radius) * scale >= max_radius
                or min(gray.shape[-2:]) // (2 * scale) < MIN_WINDOW):
            break
        scale *= 2
    first = search_residual(spectra[1], sizes[1], _top(1, sizes[1], max_radius))
    return WelchPyramid(tuple(gray.shape[-2:]), max_radius, spectra, sizes, first)


def _downsample(gray: torch.Tensor, factor: int) -> torch.Tensor:
    """(…, H, W) area-downsampled factor×."""
    if factor == 1:
        return gray
    pooled = F.avg_pool2d(gray.reshape(-1, 1, *gray.shape[-2:]), factor)
    return pooled.reshape(*gray.shape[:-2], *pooled.shape[-2:])


def _spectrum(gray: torch.Tensor, tile: int) -> tuple[torch.Tensor, int]:
    """The Welch spectrum (…, F) of images (…, H, W) over windows of min(tile, short side), and that side."""
    size = min(tile, *gray.shape[-2:])
    return tile_spectra(gray, size, size // 2).mean(dim=(-3, -2)), size


def _photo_pyramid(linear: torch.Tensor, max_radius: float, tile: int, who: str) -> WelchPyramid:
    return welch_pyramid(gray_linear(linear, who)[None], max_radius, tile).photo(0)


def estimate_psf(linear: torch.Tensor, *, max_radius: float = MAX_RADIUS, tile: int = 256,
                 softenings=SOFTENINGS, in_focus_margin: float = IN_FOCUS_MARGIN,
                 pyramid: WelchPyramid | None = None) -> PSFEstimate:
    """The lens PSF (a disk of some radius and Gaussian softening) of a uniformly defocused image (C, H, W) or
    (H, W) in LINEAR light (decode a photo with its tone curve first: blur acts there).

    tile: periodogram window; larger images average overlapping windows (stride tile/2), smaller ones use one
    window of their short side (at least 16). max_radius: the top of the search, in pixels. softenings: the
    refinement's grid, in pixels of the scale it runs at; only values up to MAX_LENS_SOFTENING full-res pixels.
    in_focus_margin: how much better than in focus a blur must fit to be taken (IN_FOCUS_MARGIN, alone; a looser
    one where other evidence must confirm the blur, hidd.blind.defocus). pyramid: the image's welch_pyramid for
    this max_radius and tile, where it was computed already (for a batch: hidd.blind.defocus).
    """
    if pyramid is None:
        pyramid = _photo_pyramid(linear, max_radius, tile, "estimate_psf")
    elif pyramid.max_radius != max_radius:
        raise ValueError(f"estimate_psf: the pyramid was built for max_radius {pyramid.max_radius}, not {max_radius}")
    spectra, sizes = pyramid.spectra, pyramid.sizes
    # Coarse to fine would miss small blurs, fine only would miss large ones: a blur far beyond the finest
    # window's range leaves it nothing but a noise floor, which fits "in focus". So the in-focus test runs
    # at each scale (area-downsampled 2×, 4×, … while the range does not yet reach max_radius); the first
    # scale that sees a blur keeps it, and coarser scales take over while it sits near the top of the range.
    scale = 1
    while True:
        top = _top(scale, sizes[scale], max_radius)
        residual = pyramid.first_search if scale == 1 else search_residual(spectra[scale], sizes[scale], top)
        radius, ratio = (float(v) for v in pick_radius(residual, top, in_focus_margin))
        if (radius >= IN_FOCUS_RADIUS or top * scale >= max_radius
                or min(pyramid.shape) // (2 * scale) < IN_FOCUS_WINDOW):
            break
        scale *= 2
    if radius < IN_FOCUS_RADIUS:
        return PSFEstimate(LensPSF(0.0), 1, False, *_floor(spectra[1], sizes[1], LensPSF(0.0)), fit_ratio=ratio)
    found_scale = scale
    while radius >= COARSER_WHEN_ABOVE * top and 2 * scale in spectra:  # the pyramid stops where the search must
        scale *= 2
        top = _top(scale, sizes[scale], max_radius)
        radius = float(best_radius(spectra[scale], sizes[scale], top)[0])
    lens = _refine(spectra[scale], sizes[scale], radius, top, _lens_softenings(softenings, scale))
    at_bound = lens.radius >= top - COARSE_STEP
    noise_floor, noise_slope = _floor(spectra[scale], sizes[scale], lens)
    full = LensPSF(lens.radius * scale, softening=lens.softening * scale)
    return PSFEstimate(full, scale, at_bound, noise_floor, noise_slope, ratio, found_scale=found_scale)


def _finest(linear: torch.Tensor, tile: int, pyramid: WelchPyramid | None, who: str) -> tuple[torch.Tensor, int]:
    """The full-resolution Welch spectrum (F,) and window side of an image: its pyramid's, or computed."""
    return (pyramid.spectra[1], pyramid.sizes[1]) if pyramid else _spectrum(gray_linear(linear, who), tile)


def estimate_for_lens(linear: torch.Tensor, lens: LensPSF, *, tile: int = 256,
                      pyramid: WelchPyramid | None = None) -> PSFEstimate:
    """The estimate of an image (C, H, W) or (H, W) in LINEAR light whose lens PSF was chosen elsewhere (from
    its tiles, hidd.blind.defocus): that lens, the noise floor it leaves in the image's spectrum, and how well
    it fits that spectrum (fit_ratio: its residual over the best in-focus residual; > 1: in focus fits better).
    pyramid: the image's welch_pyramid, where it was computed already."""
    spectrum, size = _finest(linear, tile, pyramid, "estimate_for_lens")
    return PSFEstimate(lens, 1, False, *_floor(spectrum, size, lens), fit_ratio=_lens_ratio(spectrum, size, lens),
                       softening_fitted=False)


def lens_fit_ratio(linear: torch.Tensor, lens: LensPSF, *, tile: int = 256, max_noise_slope: float = MAX_NOISE_SLOPE,
                   pyramid: WelchPyramid | None = None) -> float:
    """How well `lens` explains the spectrum of an image (C, H, W) or (H, W) in LINEAR light at full resolution:
    its residual over the best in-focus residual (> 1: in focus fits better), the noise floor N f^−γ allowed
    γ ≤ max_noise_slope under both hypotheses. pyramid: the image's welch_pyramid, where it was computed already."""
    spectrum, size = _finest(linear, tile, pyramid, "lens_fit_ratio")
    return _lens_ratio(spectrum, size, lens, max_noise_slope)


def _lens_ratio(spectrum: torch.Tensor, size: int, lens: LensPSF, max_noise_slope: float = MAX_NOISE_SLOPE) -> float:
    in_focus = [LensPSF(r) for r in _radius_grid(IN_FOCUS_RADIUS - COARSE_STEP)]
    table = _table([lens, *in_focus], size, spectrum.device)
    residual = fit_spectra(spectrum, table, size, max_noise_slope=max_noise_slope).residual
    return float(residual[0] / residual[1:].min())


def _refine(spectrum: torch.Tensor, size: int, radius: float, top: float, softenings) -> LensPSF:
    """The best of radius (± COARSE_STEP around `radius`, FINE_STEP apart) × softening."""
    offsets = np.arange(-COARSE_STEP, COARSE_STEP + 1e-9, FINE_STEP)
    radii = sorted({float(r) for r in np.round(np.clip(radius + offsets, 0.0, top), 6)})
    candidates = [LensPSF(r, softening=s) for s in softenings for r in radii]
    residual = fit_spectra(spectrum, _table(candidates, size, spectrum.device), size).residual
    return candidates[int(residual.argmin())]


def _lens_softenings(softenings, scale: int) -> list[float]:
    """The softenings (working-scale pixels) a lens may have at `scale`: at most MAX_LENS_SOFTENING full-res pixels
    (none at all when the grid offers nothing that small)."""
    return [s for s in softenings if s * scale <= MAX_LENS_SOFTENING + 1e-9] or [0.0]


def _floor(spectrum: torch.Tensor, size: int, lens: LensPSF) -> tuple[float, float]:
    """(N, γ) of the noise floor fitted with `lens`."""
    theta = fit_spectra(spectrum, _table([lens], size, spectrum.device), size).theta[0]
    return float(theta[2].exp()), float(theta[3])
