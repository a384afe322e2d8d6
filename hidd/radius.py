"""Blind defocus estimation: the PSF radius (or a per-tile radius map) from the blurred image alone.

A defocused photo's power spectrum is |K_r(f)|² S(f) + N(f): the sharp scene's spectrum S, which for
natural images falls off as a power law A·f^−β, times the squared optical transfer function of the
unknown PSF, plus the noise floor N(f) = N·f^−γ, 0 ≤ γ ≤ MAX_NOISE_SLOPE: white (γ = 0) for synthetic
noise, coloured in real photos (demosaicing, JPEG and in-camera processing tilt it; a flat floor read
OpenCV's defocused `text_defocus` photo as in focus). A disk PSF's OTF is Airy-like,
2·J1(2πfr)/(2πfr), with rings of zeros at f = 3.83/(2πr), 7.02/(2πr), …: their positions and the
shape of the main lobe give r away, even where the noise floor hides the outer rings.

So the image's radially averaged, Hann-windowed periodogram (a Welch average over tiles for images
larger than `tile`) is fitted, for every candidate radius, by log(A f^−β |K_r|² + N f^−γ) with
(log A, β, log N, γ) found by Levenberg–Marquardt in the log domain, vectorised over the radii; the
radius with the smallest residual wins (a coarse grid, then a fine one around its best), provided it
beats the in-focus hypothesis clearly (IN_FOCUS_MARGIN). The candidate
OTFs are the discrete ones of hidd.degrade sampled on the periodogram's own frequency grid, so pixel
integration and anti-aliasing of the PSF are part of the model; any PSF family of
`hidd.operators.make_psf` can be fitted (for 'gaussian' the "radius" is its standard deviation).

On the public benchmark (18 uniform pairs) and 72 skimage photos defocused at r = 1.5–8 with noise 0.005
and 8-bit quantisation, the mean error was 0.04 px and the worst 0.3 px (see tests/test_radius.py).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from hidd.degrade import otf
from hidd.operators import make_psf

MAX_RADIUS = 12.0  # largest radius searched, in pixels
COARSE_STEP = 0.1  # first search grid spacing
FINE_STEP = 0.02  # refinement spacing, within ± COARSE_STEP of the coarse optimum
LOWEST_BIN = 2  # periodogram bins below this (in units of 1/tile) are left out: the window's leakage of DC
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
# (an overestimate rings; an underestimate only leaves blur), 24.02 → 24.99 dB with sampler.radius_map


def _radial_bins(size: int) -> torch.Tensor:
    """Index of each frequency of a size×size FFT in rings of width 1/size (size//2 + 1 rings; corners dropped)."""
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    return torch.round(torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2) * size).long()


def _radial_mean(power: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of (..., size, size) spectra over each ring, shape (..., size//2 + 1)."""
    rings = _radial_bins(size).flatten()
    keep = rings <= size // 2
    values = power.flatten(-2)[..., keep]
    sums = torch.zeros(*values.shape[:-1], size // 2 + 1, dtype=values.dtype).index_add_(-1, rings[keep], values)
    counts = torch.bincount(rings[keep], minlength=size // 2 + 1).to(values.dtype)
    return sums / counts


@functools.lru_cache(maxsize=8192)
def _otf_power(psf_shape: str, blades: int, radius: float, size: int) -> torch.Tensor:
    """Radially averaged |OTF|² of one candidate PSF on a size×size grid (size//2 + 1 rings)."""
    psf = make_psf(psf_shape, radius, blades=blades, dtype=torch.float64)
    return _radial_mean(otf(psf, (size, size), full=True).abs() ** 2, size)


def tile_spectra(gray: torch.Tensor, tile: int, stride: int) -> torch.Tensor:
    """Radially averaged Hann-windowed periodograms of tile×tile windows of a (H, W) image, (n_i, n_j, tile//2 + 1)."""
    windows = gray.to(torch.float64).unfold(0, tile, stride).unfold(1, tile, stride)  # n_i, n_j, tile, tile
    windows = windows - windows.mean(dim=(-2, -1), keepdim=True)
    hann = torch.hann_window(tile, periodic=False, dtype=torch.float64)
    window = hann[:, None] * hann[None, :]
    power = torch.fft.fft2(windows * window).abs() ** 2 / (window**2).sum()
    return _radial_mean(power, tile)


def _fit_residuals(spectra: torch.Tensor, otf_power: torch.Tensor, tile: int, beta: float | None = None,
                   iterations: int = 40) -> torch.Tensor:
    """Mean squared log residual of the best fit A f^−β |K|² + N f^−γ, shape (..., R).

    spectra (..., F) ring powers of the images; otf_power (R, F) those of the R candidate PSFs.
    beta: a fixed spectral slope, or None to fit it too.
    Levenberg–Marquardt on θ = (log A, β, log N, γ), from several β starts, vectorised over (..., R);
    γ is kept in [0, MAX_NOISE_SLOPE].
    """
    rings = torch.arange(LOWEST_BIN, spectra.shape[-1])
    log_p = spectra[..., rings].clamp_min(1e-20).log()[..., None, :]  # ..., 1, F
    log_f = (rings.to(torch.float64) / tile).log()
    k2 = otf_power[:, rings].clamp_min(1e-12)
    batch = log_p.shape[:-2] + (k2.shape[0],)

    def parts(theta):
        signal = torch.exp(theta[..., :1] - theta[..., 1:2] * log_f) * k2
        return signal, torch.exp(theta[..., 2:3] - theta[..., 3:4] * log_f)

    def loss(theta):
        signal, noise = parts(theta)
        return ((torch.log(signal + noise) - log_p) ** 2).mean(-1)

    free = torch.tensor([1.0, float(beta is None), 1.0, 1.0], dtype=torch.float64)  # 0: that parameter stays put
    best = None
    for slope in (1.0, 2.0, 3.0, 4.0) if beta is None else (beta,):
        start = [log_p[..., 0] + slope * log_f[0], torch.full_like(log_p[..., 0], slope), log_p[..., -5:].mean(-1),
                 torch.zeros_like(log_p[..., 0])]
        theta = torch.stack([s.expand(batch) for s in start], -1)
        damping = torch.full(batch, 1e-2, dtype=torch.float64)
        current = loss(theta)
        solvable = torch.zeros(batch, dtype=torch.bool)  # whether any step's system had a solution
        for _ in range(iterations):
            signal, noise = parts(theta)
            residual = torch.log(signal + noise) - log_p
            w_signal, w_noise = signal / (signal + noise), noise / (signal + noise)
            jac = torch.stack([w_signal, -w_signal * log_f, w_noise, -w_noise * log_f], -1) * free  # ..., F, 4
            normal = jac.transpose(-1, -2) @ jac
            diag = torch.diagonal(normal, dim1=-2, dim2=-1) + 1e-9
            step, info = torch.linalg.solve_ex(normal + damping[..., None, None] * torch.diag_embed(diag),
                                               (jac * residual[..., None]).sum(-2))
            solved = info == 0  # a singular system (flat or pure-noise spectra) is a rejected step, never an error
            solvable |= solved
            step = torch.where(solved[..., None], step, torch.nan)
            trial = theta - step
            trial[..., 3].clamp_(0.0, MAX_NOISE_SLOPE)  # a projected step: γ stays in its range
            trial_loss = loss(trial)
            better = trial_loss < current  # NaN trials are never better
            theta = torch.where(better[..., None], trial, theta)
            current = torch.where(better, trial_loss, current)
            damping = torch.where(better, damping / 3, damping * 4)
        current = torch.where(solvable, current, torch.inf)  # no fit at all: this radius explains nothing
        best = current if best is None else torch.minimum(best, current)
    return best


def _best_radius(spectra: torch.Tensor, tile: int, psf_shape: str, blades: int, max_radius: float,
                 beta: float | None = None, in_focus_margin: float | None = None) -> torch.Tensor:
    """Radius minimising the fit residual for each spectrum (..., F): a coarse grid, then a fine one.

    in_focus_margin: if given, a radius ≥ IN_FOCUS_RADIUS wins only where its residual is at most this
    fraction of the best residual below IN_FOCUS_RADIUS; elsewhere the result is 0 (in focus).
    """
    coarse = np.round(np.arange(0.0, max_radius + 1e-9, COARSE_STEP), 6)
    table = torch.stack([_otf_power(psf_shape, blades, float(r), tile) for r in coarse])
    residuals = _fit_residuals(spectra, table, tile, beta)
    first = torch.as_tensor(coarse)[residuals.argmin(-1)]
    if in_focus_margin is not None:
        sharp = torch.as_tensor(coarse < IN_FOCUS_RADIUS)
        in_focus = torch.where(sharp, residuals, torch.inf).amin(-1)
        defocused = torch.where(sharp, torch.inf, residuals).amin(-1)
        first = torch.where(defocused <= in_focus_margin * in_focus, first, torch.zeros_like(first))
    offsets = np.round(np.arange(-COARSE_STEP, COARSE_STEP + 1e-9, FINE_STEP), 6)
    flat_spectra, flat_first = spectra.reshape(-1, spectra.shape[-1]), first.reshape(-1)
    refined = []
    for spectrum, centre in zip(flat_spectra, flat_first.tolist()):
        if in_focus_margin is not None and centre == 0.0:
            refined.append(0.0)
            continue
        fine = np.round(np.clip(centre + offsets, 0.0, max_radius), 6)
        table = torch.stack([_otf_power(psf_shape, blades, float(r), tile) for r in fine])
        refined.append(float(fine[int(_fit_residuals(spectrum, table, tile, beta).argmin())]))
    return torch.tensor(refined, dtype=torch.float64).reshape(first.shape)


def _gray(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) or (H, W) → (H, W) channel mean on the CPU."""
    image = image.detach().cpu()
    return image.mean(dim=0) if image.ndim == 3 else image


def estimate_radius(image: torch.Tensor, *, psf_shape: str = "disk", blades: int = 6, tile: int = 256,
                    max_radius: float = MAX_RADIUS) -> float:
    """PSF radius (pixels) of a uniformly defocused image (C, H, W) or (H, W) in [0, 1].

    psf_shape, blades: the PSF family fitted (see hidd.operators.make_psf).
    tile: periodogram window; larger images average overlapping windows (stride tile/2), smaller ones
    use one window of their short side.
    max_radius: the search range is [0, max_radius].
    Estimates under IN_FOCUS_RADIUS, or whose fit is not clearly better than an in-focus one
    (IN_FOCUS_MARGIN), are returned as 0: the image is taken to be in focus.
    """
    gray = _gray(image)
    h, w = gray.shape
    size = min(tile, h, w)
    if size < 16:
        raise ValueError(f"estimate_radius: the image is {w}x{h}; need at least 16x16 pixels")
    spectra = tile_spectra(gray, size, size // 2).mean(dim=(0, 1))
    radius = float(_best_radius(spectra, size, psf_shape, blades, min(max_radius, (size - 1) / 2 - 1),
                                in_focus_margin=IN_FOCUS_MARGIN))
    return radius if radius >= IN_FOCUS_RADIUS else 0.0


def estimate_radius_map(image: torch.Tensor, *, tile: int = 64, psf_shape: str = "disk", blades: int = 6,
                        max_radius: float = MAX_RADIUS, smooth: int = 3) -> torch.Tensor:
    """Per-pixel defocus radius (H, W) of a spatially varying blur, from per-tile estimates.

    Tiles of tile×tile pixels at a stride of tile/4 each get `estimate_radius`'s fit, but with the
    natural-image slope β = TILE_SLOPE held fixed: a small tile has too few frequency rings to tell a
    steeper scene spectrum from more blur (with β free, the map's correlation with the true one on the
    benchmark's depth-varying pair falls from 0.77 to 0.56), and a tile is in focus unless a blur fits it
    clearly better (TILE_IN_FOCUS_MARGIN). The tile grid is median-filtered over
    smooth×smooth tiles (flat tiles give unreliable radii), set to 0 under IN_FOCUS_RADIUS and
    interpolated bilinearly between tile centres (constant beyond the outer centres).
    """
    gray = _gray(image)
    h, w = gray.shape
    tile = min(tile, h, w)
    stride = max(1, tile // 4)
    spectra = tile_spectra(gray, tile, stride)
    radii = _best_radius(spectra, tile, psf_shape, blades, min(max_radius, (tile - 1) / 2 - 1), TILE_SLOPE,
                         in_focus_margin=TILE_IN_FOCUS_MARGIN).numpy()
    radii = ndimage.median_filter(radii, size=smooth, mode="nearest")
    radii = torch.from_numpy(np.where(radii < IN_FOCUS_RADIUS, 0.0, radii))
    n_i, n_j = radii.shape
    first = tile // 2  # centre of the first tile; the last is at first + (n - 1) * stride
    inner = F.interpolate(radii[None, None], size=((n_i - 1) * stride + 1, (n_j - 1) * stride + 1),
                          mode="bilinear", align_corners=True)
    pad = (first, w - first - inner.shape[-1], first, h - first - inner.shape[-2])
    return F.pad(inner, pad, mode="replicate")[0, 0].float()
