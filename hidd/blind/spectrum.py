"""Radially averaged power spectra of images and PSFs: what the blind estimates are fitted to.

An image's periodogram is averaged over Hann-windowed tiles (Welch) and over rings of frequency
|f| ∈ [(i − ½)/T, (i + ½)/T), T the tile side: a defocus PSF is (nearly) rotationally symmetric, so its
|OTF|² is a function of |f|, and averaging over a ring beats down the periodogram's scatter.

The per-pixel work runs on the image's device, over any leading batch dimensions, in float32 unless the image is
float64 (the reference path). A real image's periodogram is even, P(−f) = P(f), so only the half plane of the real
FFT is computed: a ring's mean over the full plane is the half plane's mean with every column that stands for
itself and its mirror (0 < j < T − j) counted twice. The ring means are returned in float64: the fits that follow
(hidd.blind.psf_fit) are small and keep float64.
"""
from __future__ import annotations

import functools

import torch

from hidd.camera.optics import otf
from hidd.camera.psf import LensPSF


def working_dtype(image: torch.Tensor) -> torch.dtype:
    """The dtype of an image's per-pixel estimation work: float64 for a float64 image, else float32."""
    return torch.float64 if image.dtype == torch.float64 else torch.float32


def working(images: torch.Tensor) -> torch.Tensor:
    """Images detached, on their device, in their working dtype (working_dtype)."""
    return images.detach().to(working_dtype(images))


def as_batch(image: torch.Tensor, who: str) -> torch.Tensor:
    """An image (C, H, W) or (H, W) as a batch of one (1, C, H, W) (the batched estimates' single-image form); `who`
    names the caller in the error for any other shape."""
    if image.ndim not in (2, 3):
        raise ValueError(f"{who}: an image must be (C, H, W) or (H, W), got shape {tuple(image.shape)}")
    return image.reshape(1, -1, *image.shape[-2:])


def _ring_index(size: int) -> torch.Tensor:
    """Index of each frequency of a size×size FFT in rings of width 1/size (size//2 + 1 rings; corners dropped)."""
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    return torch.round(torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2) * size).long()


def radial_mean(power: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of (…, size, size) spectra over each ring, shape (…, size//2 + 1), float64 on the spectra's device."""
    rings = _ring_index(size).flatten().to(power.device)
    keep = torch.nonzero(rings <= size // 2).flatten()
    order, bounds = _ring_runs(rings[keep], size // 2 + 1)
    counts = ring_counts(size).to(power.device)
    return _ring_sums(power.flatten(-2)[..., keep], order, bounds) / counts


def _ring_runs(rings: torch.Tensor, n_rings: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The order that sorts values by ring, outermost ring first, and each ring's (start, end) in it (n_rings, 2)."""
    order = torch.argsort(rings, descending=True, stable=True)
    counts = torch.bincount(rings, minlength=n_rings).flip(0)  # outermost first
    ends = counts.cumsum(0)
    return order, torch.stack([ends - counts, ends], dim=1).flip(0)


def _ring_sums(values: torch.Tensor, order: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Σ of values (…, N) over each ring (`_ring_runs`), float64: a running sum over the values sorted by ring,
    outermost first, differenced at the rings' bounds. Deterministic on every device (an index_add_ on a GPU adds
    atomically, in no fixed order), and accurate: a ring's partial sums hold only fainter, outer rings."""
    partial = torch.nn.functional.pad(values[..., order].double().cumsum(-1), (1, 0))
    return partial[..., bounds[:, 1]] - partial[..., bounds[:, 0]]


def ring_counts(size: int) -> torch.Tensor:
    """How many frequencies of a size×size grid fall in each ring (to integrate a radial spectrum over the plane)."""
    rings = _ring_index(size).flatten()
    return torch.bincount(rings[rings <= size // 2], minlength=size // 2 + 1).to(torch.float64)


@functools.lru_cache(maxsize=32)
def _half_plane_rings(size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """For the rfft2 half plane of a size×size grid: the kept frequencies' flat positions, the order and bounds of
    their rings (`_ring_runs`), each one's weight (2 where it stands for its mirror too, else 1), and the full plane's
    count per ring."""
    rings = _ring_index(size)[:, :size // 2 + 1]
    columns = torch.arange(size // 2 + 1)
    weight = torch.where((columns > 0) & (columns < size - columns), 2.0, 1.0).expand_as(rings)
    rings, weight = rings.flatten(), weight.flatten()
    keep = torch.nonzero(rings <= size // 2).flatten()
    order, bounds = _ring_runs(rings[keep], size // 2 + 1)
    return (keep.to(device), order.to(device), bounds.to(device), weight[keep].to(device=device, dtype=dtype),
            ring_counts(size).to(device=device))


@functools.lru_cache(maxsize=32)
def _hann2d(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    hann = torch.hann_window(size, periodic=False, dtype=torch.float64)
    return (hann[:, None] * hann[None, :]).to(device=device, dtype=dtype)


def tile_spectra(gray: torch.Tensor, tile: int, stride: int) -> torch.Tensor:
    """Radially averaged Hann-windowed periodograms of tile×tile windows of (…, H, W) images, (…, n_i, n_j,
    tile//2 + 1) in float64 on the images' device (the FFT in their working dtype).

    Normalised by the window's energy, so that white noise of variance σ² reads σ² in every ring.
    """
    dtype = working_dtype(gray)
    windows = gray.to(dtype).unfold(-2, tile, stride).unfold(-2, tile, stride)  # …, n_i, n_j, tile, tile
    windows = windows - windows.mean(dim=(-2, -1), keepdim=True)
    window = _hann2d(tile, gray.device, dtype)
    # each image's FFTs run on their own: a batched FFT rounds by batch size, and a photo must not depend on its batch
    images = (windows * window).reshape(-1, *windows.shape[-4:])
    power = torch.stack([torch.fft.rfft2(image) for image in images]).reshape(*windows.shape[:-2], -1)
    power = power.abs().square() / window.square().sum()
    keep, order, bounds, weight, counts = _half_plane_rings(tile, gray.device, dtype)
    return _ring_sums(power[..., keep] * weight, order, bounds) / counts


def gray_linear(linear: torch.Tensor, who: str) -> torch.Tensor:
    """The channel mean (H, W), on the image's device in its working dtype (float32 unless float64), of an image
    (C, H, W) or (H, W) in linear light; `who` names the caller in the error for images under 16×16 pixels (too
    few frequency rings to fit)."""
    gray = linear.detach().to(working_dtype(linear))
    gray = gray.mean(dim=0) if gray.ndim == 3 else gray
    return _checked(gray, who)


def gray_batch(linear: torch.Tensor, who: str) -> torch.Tensor:
    """The channel means (B, H, W) of images (B, C, H, W) in linear light, as gray_linear does each."""
    if linear.ndim != 4:
        raise ValueError(f"{who}: expected images (B, C, H, W), got shape {tuple(linear.shape)}")
    return _checked(linear.detach().to(working_dtype(linear)).mean(dim=1), who)


def _checked(gray: torch.Tensor, who: str) -> torch.Tensor:
    if min(gray.shape[-2:]) < 16:
        raise ValueError(f"{who}: the image is {gray.shape[-1]}x{gray.shape[-2]}; need at least 16x16 pixels")
    return gray


@functools.lru_cache(maxsize=16384)
def _host_otf_power(lens: LensPSF, size: int) -> torch.Tensor:
    psf = lens.channel(1.0, dtype=torch.float64)
    return radial_mean(otf(psf, (size, size), full=True).abs() ** 2, size)


def otf_power(lens: LensPSF, size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Radially averaged |OTF|² of a (gray) lens PSF on a size×size grid (size//2 + 1 rings), float64 on `device`
    (default the CPU; computed there once per lens and size)."""
    return _host_otf_power(lens, size).to(device or "cpu")


@functools.lru_cache(maxsize=256)
def otf_table(lenses: tuple[LensPSF, ...], size: int, device: torch.device) -> torch.Tensor:
    """otf_power of each of the lenses, stacked (R, size//2 + 1), on `device` (one copy per table and device)."""
    return torch.stack([_host_otf_power(lens, size) for lens in lenses]).to(device)
