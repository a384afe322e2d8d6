"""Radially averaged power spectra of images and PSFs: what the blind estimates are fitted to.

An image's periodogram is averaged over Hann-windowed tiles (Welch) and over rings of frequency
|f| ∈ [(i − ½)/T, (i + ½)/T), T the tile side: a defocus PSF is (nearly) rotationally symmetric, so its
|OTF|² is a function of |f|, and averaging over a ring beats down the periodogram's scatter.
"""
from __future__ import annotations

import functools

import torch

from hidd.camera.optics import otf
from hidd.camera.psf import LensPSF


def _ring_index(size: int) -> torch.Tensor:
    """Index of each frequency of a size×size FFT in rings of width 1/size (size//2 + 1 rings; corners dropped)."""
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    return torch.round(torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2) * size).long()


def radial_mean(power: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of (…, size, size) spectra over each ring, shape (…, size//2 + 1)."""
    rings = _ring_index(size).flatten()
    keep = rings <= size // 2
    values = power.flatten(-2)[..., keep]
    sums = torch.zeros(*values.shape[:-1], size // 2 + 1, dtype=values.dtype).index_add_(-1, rings[keep], values)
    counts = torch.bincount(rings[keep], minlength=size // 2 + 1).to(values.dtype)
    return sums / counts


def ring_counts(size: int) -> torch.Tensor:
    """How many frequencies of a size×size grid fall in each ring (to integrate a radial spectrum over the plane)."""
    rings = _ring_index(size).flatten()
    return torch.bincount(rings[rings <= size // 2], minlength=size // 2 + 1).to(torch.float64)


def tile_spectra(gray: torch.Tensor, tile: int, stride: int) -> torch.Tensor:
    """Radially averaged Hann-windowed periodograms of tile×tile windows of a (H, W) image, (n_i, n_j, tile//2 + 1).

    Normalised by the window's energy, so that white noise of variance σ² reads σ² in every ring.
    """
    windows = gray.to(torch.float64).unfold(0, tile, stride).unfold(1, tile, stride)  # n_i, n_j, tile, tile
    windows = windows - windows.mean(dim=(-2, -1), keepdim=True)
    hann = torch.hann_window(tile, periodic=False, dtype=torch.float64)
    window = hann[:, None] * hann[None, :]
    power = torch.fft.fft2(windows * window).abs() ** 2 / (window**2).sum()
    return radial_mean(power, tile)


def gray_linear(linear: torch.Tensor, who: str) -> torch.Tensor:
    """The channel mean (H, W), in float64 on the CPU, of an image (C, H, W) or (H, W) in linear light; `who`
    names the caller in the error for images under 16×16 pixels (too few frequency rings to fit)."""
    gray = linear.detach().cpu().to(torch.float64)
    gray = gray.mean(dim=0) if gray.ndim == 3 else gray
    if min(gray.shape) < 16:
        raise ValueError(f"{who}: the image is {gray.shape[1]}x{gray.shape[0]}; need at least 16x16 pixels")
    return gray


@functools.lru_cache(maxsize=16384)
def otf_power(lens: LensPSF, size: int) -> torch.Tensor:
    """Radially averaged |OTF|² of a (gray) lens PSF on a size×size grid (size//2 + 1 rings)."""
    psf = lens.channel(1.0, dtype=torch.float64)
    return radial_mean(otf(psf, (size, size), full=True).abs() ** 2, size)
