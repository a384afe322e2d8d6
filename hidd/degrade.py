"""Defocus forward model in torch: PSFs, FFT blur, depth-varying blur, noise, quantisation.

Everything is differentiable, batched over (B, C, H, W) images and follows the input's
device and dtype, so the same operators serve data synthesis, benchmarks and a
blur-aware sampler (data-consistency / proximal steps via :func:`otf`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "disk_psf",
    "gaussian_psf",
    "otf",
    "blur",
    "blur_depth_varying",
    "add_noise",
    "quantize",
    "defocus",
    "disparity_to_radius",
]


def _delta(dtype, device) -> Tensor:
    return torch.ones(1, 1, dtype=dtype, device=device)


def disk_psf(
    radius: float,
    *,
    blades: int = 0,  # 0: circular aperture; >= 3: regular polygon with that many blades
    rotation: float = 0.0,  # polygon rotation in radians (first vertex angle)
    supersample: int = 8,  # sub-samples per pixel side for the area coverage
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Anti-aliased defocus PSF of a given radius in pixels, shape (K, K), summing to 1.

    Each pixel's value is the fraction of its area inside the aperture, estimated on a
    ``supersample`` x ``supersample`` grid, so non-integer radii give distinct PSFs.
    K = 2 * ceil(radius) + 1: a pixel further out has its nearest point beyond the radius.
    ``radius <= 0`` gives the 1x1 delta. With ``blades >= 3`` the aperture is the regular
    polygon inscribed in the disk.
    """
    if radius <= 0:
        return _delta(dtype, device)
    if blades and blades < 3:
        raise ValueError(f"blades must be 0 or >= 3, got {blades}")
    half = math.ceil(radius)
    # sampled in float64 on the CPU (tiny, and not every device has float64), then moved
    sub = (torch.arange(supersample, dtype=torch.float64) + 0.5) / supersample - 0.5
    centres = torch.arange(-half, half + 1, dtype=torch.float64)
    coords = (centres[:, None] + sub[None, :]).reshape(-1)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    if blades:
        # inside a convex polygon <=> projection on every edge normal <= apothem
        normals = rotation + (2 * torch.arange(blades, dtype=torch.float64) + 1) * math.pi / blades
        proj = x[..., None] * torch.cos(normals) + y[..., None] * torch.sin(normals)
        inside = proj.amax(-1) <= radius * math.cos(math.pi / blades)
    else:
        inside = x**2 + y**2 <= radius**2
    k = 2 * half + 1
    cover = inside.to(torch.float64).reshape(k, supersample, k, supersample).mean(dim=(1, 3))
    if cover.sum() == 0:  # aperture smaller than one sub-sample: it is a point
        return _delta(dtype, device)
    return (cover / cover.sum()).to(dtype=dtype, device=device)


def gaussian_psf(
    sigma: float,
    *,
    truncate: float = 3.0,  # half-size in standard deviations
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Isotropic Gaussian PSF, shape (K, K) with K = 2 * ceil(truncate * sigma) + 1, summing to 1."""
    if sigma <= 0:
        return _delta(dtype, device)
    half = math.ceil(truncate * sigma)
    r = torch.arange(-half, half + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    psf = g[:, None] * g[None, :]
    return (psf / psf.sum()).to(dtype=dtype, device=device)


def otf(psf: Tensor, shape: tuple[int, int], *, full: bool = False) -> Tensor:
    """Optical transfer function: FFT of the PSF zero-padded to ``shape`` with its centre at (0, 0).

    psf: (K, K) or (B, K, K) with odd sizes. Returns the ``rfft2`` half spectrum
    (..., H, W // 2 + 1), matching :func:`blur`; ``full=True`` returns the ``fft2`` (..., H, W).
    """
    kh, kw = psf.shape[-2:]
    h, w = shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"PSF sizes must be odd, got {tuple(psf.shape[-2:])}")
    if kh > h or kw > w:
        raise ValueError(f"PSF {kh}x{kw} larger than the image {h}x{w}")
    padded = F.pad(psf, (0, w - kw, 0, h - kh))
    # move the PSF centre to the origin so the filter introduces no shift
    padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.fft2(padded) if full else torch.fft.rfft2(padded)


def blur(x: Tensor, psf: Tensor, *, boundary: str = "reflect") -> Tensor:
    """Convolve images (B, C, H, W) with a PSF (K, K) or per-image PSFs (B, K, K), via FFT.

    boundary: ``'reflect'`` pads by the PSF radius with mirrored content, filters and crops
    back (no wrap-around ringing at borders; equals ``F.conv2d`` on a reflect-padded input);
    ``'circular'`` is the plain periodic FFT convolution.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    psf = psf.to(device=x.device, dtype=x.dtype)
    if psf.ndim == 3:
        psf = psf[:, None]  # (B, 1, K, K) broadcasts over channels
    elif psf.ndim != 2:
        raise ValueError(f"expected a PSF (K, K) or (B, K, K), got shape {tuple(psf.shape)}")
    ph, pw = psf.shape[-2] // 2, psf.shape[-1] // 2
    if boundary == "reflect":
        xp = F.pad(x, (pw, pw, ph, ph), mode="reflect") if ph or pw else x
    elif boundary == "circular":
        xp = x
    else:
        raise ValueError(f"boundary must be 'reflect' or 'circular', got {boundary!r}")
    shape = xp.shape[-2:]
    y = torch.fft.irfft2(torch.fft.rfft2(xp) * otf(psf, shape), s=shape)
    if boundary == "reflect":
        y = y[..., ph : ph + x.shape[-2], pw : pw + x.shape[-1]]
    return y


def blur_depth_varying(
    x: Tensor,
    radius_map: Tensor,
    *,
    levels: int | Sequence[float] = 8,  # number of layers spanning the map's range, or explicit radii
    blades: int = 0,  # aperture shape, as in disk_psf
    boundary: str = "reflect",
) -> Tensor:
    """Spatially varying defocus from a per-pixel disk radius map (B, 1, H, W) or (H, W).

    Approximation: the image is blurred with a few discrete radii (layers) and each output
    pixel linearly interpolates between the two layers whose radii bracket its own radius.
    It ignores occlusion at depth edges (a blurred foreground does not spill over the
    background), which is the usual layered-blur simplification.
    """
    if radius_map.ndim == 2:
        radius_map = radius_map[None, None]
    radius_map = radius_map.to(device=x.device, dtype=x.dtype)
    if isinstance(levels, int):
        lo, hi = radius_map.min().item(), radius_map.max().item()
        radii = torch.linspace(lo, hi, levels if hi > lo else 1, dtype=torch.float64).tolist()
    else:
        radii = sorted(set(float(r) for r in levels))
    if len(radii) == 1:
        return blur(x, disk_psf(radii[0], blades=blades, dtype=x.dtype, device=x.device), boundary=boundary)
    table = torch.tensor(radii, dtype=x.dtype, device=x.device)
    r = radius_map.clamp(radii[0], radii[-1]).contiguous()
    # bracketing layers (upper index j, lower j - 1) and the position t in [0, 1] between them
    j = torch.searchsorted(table, r).clamp(1, len(radii) - 1)
    t = (r - table[j - 1]) / (table[j] - table[j - 1])
    out = torch.zeros_like(x)
    for i, ri in enumerate(radii):
        w = torch.where(j == i, t, 0.0) + torch.where(j - 1 == i, 1 - t, 0.0)
        psf = disk_psf(ri, blades=blades, dtype=x.dtype, device=x.device)
        out = out + w * blur(x, psf, boundary=boundary)
    return out


def add_noise(x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """Add white Gaussian noise of standard deviation ``sigma`` (generator on x's device)."""
    if sigma <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + sigma * noise


def quantize(x: Tensor, bits: int = 8) -> Tensor:
    """Clamp to [0, 1] and round to ``2**bits - 1`` levels.

    The rounding gradient is passed straight through (identity) so that a pipeline
    containing quantisation stays usable for gradient-based sampling.
    """
    levels = 2**bits - 1
    x = x.clamp(0, 1)
    q = torch.round(x * levels) / levels
    return q + (x - x.detach())  # exactly q in value, identity in gradient


def defocus(
    x: Tensor,
    radius: float | Tensor,
    *,
    noise_sigma: float = 0.0,  # Gaussian read noise std on the [0, 1] scale
    bits: int | None = 8,  # quantisation bit depth; None keeps floats
    blades: int = 0,  # aperture shape, as in disk_psf
    generator: torch.Generator | None = None,
    boundary: str = "reflect",
) -> Tensor:
    """Uniform defocus: disk blur, Gaussian noise, quantisation, clamped to [0, 1].

    radius: one radius for the batch, or a (B,) tensor with one radius per image.
    """
    if isinstance(radius, Tensor) and radius.ndim == 1:
        psfs = [disk_psf(float(r), blades=blades, dtype=x.dtype, device=x.device) for r in radius]
        k = max(p.shape[-1] for p in psfs)
        # centre-pad the smaller PSFs so they stack into one (B, K, K) tensor
        psf = torch.stack([F.pad(p, [(k - p.shape[-1]) // 2] * 4) for p in psfs])
    else:
        psf = disk_psf(float(radius), blades=blades, dtype=x.dtype, device=x.device)
    y = add_noise(blur(x, psf, boundary=boundary), noise_sigma, generator)
    return quantize(y, bits) if bits else y.clamp(0, 1)


def disparity_to_radius(disparity, focus_disparity: float, max_radius: float):
    """Defocus radius map |d - d_focus|, scaled so its maximum equals ``max_radius``.

    The thin-lens blur radius is proportional to |1/z - 1/z_focus|, i.e. to the disparity
    difference. Works on numpy arrays and torch tensors alike.
    """
    diff = abs(disparity - focus_disparity)
    peak = diff.max()
    return diff * 0 if peak == 0 else diff * (max_radius / peak)
