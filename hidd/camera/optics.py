"""Blurring images with PSFs: the optical transfer function, FFT convolution, depth-varying (layered) blur.

Images are (B, C, H, W). A PSF argument may be
- (K, K): the same PSF for every image and channel;
- (B, K, K): one per image (the same for its channels);
- (B, C, K, K) or (B, 1, K, K): one per image and channel.
K is odd and the PSF's centre is at K // 2. Everything follows the image's device and dtype and is
differentiable, so the same operators make data and serve the sampler's data-consistency steps.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def as_batched_psf(psf: Tensor) -> Tensor:
    """Any accepted PSF layout as (B or 1, C or 1, K, K), broadcastable over images (B, C, H, W)."""
    if psf.ndim == 2:
        return psf[None, None]
    if psf.ndim == 3:
        return psf[:, None]
    if psf.ndim == 4:
        return psf
    raise ValueError(f"expected a PSF (K, K), (B, K, K) or (B, C, K, K), got shape {tuple(psf.shape)}")


def otf(psf: Tensor, shape: tuple[int, int], *, full: bool = False) -> Tensor:
    """Optical transfer function: FFT of the PSF zero-padded to ``shape`` with its centre at (0, 0).

    psf: (…, K, K) with odd sizes. Returns the ``rfft2`` half spectrum (…, H, W // 2 + 1), matching
    :func:`blur`; ``full=True`` returns the ``fft2`` (…, H, W).
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
    """Convolve images (B, C, H, W) with PSFs (layouts in the module docstring), via FFT.

    boundary: ``'reflect'`` pads by the PSF radius with mirrored content, filters and crops back (no
    wrap-around at borders; equals ``F.conv2d`` on a reflect-padded input); ``'circular'`` is the plain
    periodic FFT convolution.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    psf = as_batched_psf(psf.to(device=x.device, dtype=x.dtype))
    ph, pw = psf.shape[-2] // 2, psf.shape[-1] // 2
    if boundary == "reflect":
        mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
        xp = F.pad(x, (pw, pw, ph, ph), mode=mode) if ph or pw else x
    elif boundary == "circular":
        xp = x
    else:
        raise ValueError(f"boundary must be 'reflect' or 'circular', got {boundary!r}")
    shape = xp.shape[-2:]
    y = torch.fft.irfft2(torch.fft.rfft2(xp) * otf(psf, shape), s=shape)
    if boundary == "reflect":
        y = y[..., ph : ph + x.shape[-2], pw : pw + x.shape[-1]]
    return y


def layer_radii(radius_map: Tensor, levels: int | Sequence[float]) -> list[float]:
    """The radii of the blur layers of a radius map: `levels` of them spanning its range, or the radii given."""
    if isinstance(levels, int):
        lo, hi = radius_map.min().item(), radius_map.max().item()
        return torch.linspace(lo, hi, levels if hi > lo else 1, dtype=torch.float64).tolist()
    return sorted(set(float(r) for r in levels))


def layer_weights(radius_map: Tensor, radii: list[float]) -> Tensor:
    """Per-pixel weights (…, L, H, W) of L layers of radii `radii` for a radius map (…, 1, H, W): each pixel
    interpolates linearly between the two layers whose radii bracket its own (weights sum to 1)."""
    if len(radii) == 1:
        return torch.ones_like(radius_map)
    table = torch.tensor(radii, dtype=radius_map.dtype, device=radius_map.device)
    r = radius_map.clamp(radii[0], radii[-1]).contiguous()
    j = torch.searchsorted(table, r).clamp(1, len(radii) - 1)  # upper bracketing layer; the lower is j - 1
    t = (r - table[j - 1]) / (table[j] - table[j - 1])
    return torch.cat([torch.where(j == i, t, 0.0) + torch.where(j - 1 == i, 1 - t, 0.0) for i in range(len(radii))],
                     dim=-3)


def blur_depth_varying(x: Tensor, radius_map: Tensor, psf_of_radius: Callable[[float], Tensor], *,
                       levels: int | Sequence[float] = 8, boundary: str = "reflect") -> Tensor:
    """Spatially varying defocus from a per-pixel radius map (B, 1, H, W) or (H, W).

    psf_of_radius(r) gives the PSF ((K, K) or (C, K, K)) of radius r. The image is blurred with a few
    discrete radii (layers: `levels` of them spanning the map's range, or the radii given) and each output
    pixel interpolates linearly between the two layers whose radii bracket its own (`layer_weights`).
    Occlusion at depth edges is ignored (a blurred foreground does not spill over the background): the usual
    layered-blur simplification.
    """
    if radius_map.ndim == 2:
        radius_map = radius_map[None, None]
    radius_map = radius_map.to(device=x.device, dtype=x.dtype)
    radii = layer_radii(radius_map, levels)
    weights = layer_weights(radius_map, radii)
    out = torch.zeros_like(x)
    for i, radius in enumerate(radii):
        psf = psf_of_radius(radius).to(device=x.device, dtype=x.dtype)
        out = out + weights[:, i:i + 1] * blur(x, psf[None] if psf.ndim == 3 else psf, boundary=boundary)
    return out


def disparity_to_radius(disparity, focus_disparity: float, max_radius: float):
    """Defocus radius map |d − d_focus|, scaled so that its maximum equals ``max_radius``.

    The thin-lens blur radius is proportional to |1/z − 1/z_focus|, i.e. to the disparity difference.
    Works on numpy arrays and torch tensors alike.
    """
    diff = abs(disparity - focus_disparity)
    peak = diff.max()
    return diff * 0 if peak == 0 else diff * (max_radius / peak)
