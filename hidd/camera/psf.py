"""Lens point-spread functions of defocus: the aperture's shape, its brightness profile, colour, softening.

A defocused point images to the lens aperture scaled to the circle of confusion of radius r:
- the aperture is a disk, or a regular polygon of `blades` sides turned by `rotation` (an iris);
- spherical aberration redistributes light across it, modelled by the radial weight 1 + a·(ρ/r)²
  (ρ the distance from the centre): a > 0 gives a bright rim, −1 ≤ a < 0 a soft edge (bright centre),
  the two sides of focus of the same lens;
- axial and lateral colour give each colour channel its own radius, r·s_c (`channel_scale`);
- diffraction, the sensor's pixel aperture and its anti-alias filter soften it further: a Gaussian of
  std `softening` px, convolved in.
Each pixel's value is the integral of the weighted aperture over the pixel's area, estimated on a
supersample × supersample grid, so non-integer radii give distinct PSFs. Every PSF sums to 1 and has an
odd size K with its centre at K // 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

SUPERSAMPLE = 8  # sub-samples per pixel side for the aperture's area coverage
PSF_FAMILIES = ("disk", "polygon", "gaussian")  # sampler.psf: the shape of a given PSF (gaussian: radius is its std)


def delta_psf(dtype=torch.float32, device=None) -> torch.Tensor:
    """The 1×1 PSF of a sharp image."""
    return torch.ones(1, 1, dtype=dtype, device=device)


def aperture_psf(radius: float, *, blades: int = 0, rotation: float = 0.0, aberration: float = 0.0,
                 supersample: int = SUPERSAMPLE, dtype=torch.float32, device=None) -> torch.Tensor:
    """Anti-aliased defocus PSF (K, K), K = 2·ceil(radius) + 1, of a disk or polygon aperture of that radius.

    blades: 0 for a circular aperture, ≥ 3 for the regular polygon inscribed in the circle;
    rotation: the polygon's angle in radians; aberration: a of the radial weight 1 + a (ρ/r)², ≥ −1.
    radius ≤ 0 gives the 1×1 delta.
    """
    if radius <= 0:
        return delta_psf(dtype, device)
    if blades and blades < 3:
        raise ValueError(f"blades must be 0 or >= 3, got {blades}")
    if aberration < -1:
        raise ValueError(f"aberration must be >= -1 (the weight 1 + a (ρ/r)² would turn negative), got {aberration}")
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
    weight = inside.to(torch.float64) * (1 + aberration * (x**2 + y**2) / radius**2).clamp_min(0)
    k = 2 * half + 1
    cover = weight.reshape(k, supersample, k, supersample).mean(dim=(1, 3))
    if cover.sum() == 0:  # aperture smaller than one sub-sample: it is a point
        return delta_psf(dtype, device)
    return (cover / cover.sum()).to(dtype=dtype, device=device)


def gaussian_psf(sigma: float, *, truncate: float = 3.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """Isotropic Gaussian PSF, shape (K, K) with K = 2·ceil(truncate·sigma) + 1, summing to 1."""
    if sigma <= 0:
        return delta_psf(dtype, device)
    half = math.ceil(truncate * sigma)
    r = torch.arange(-half, half + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    psf = g[:, None] * g[None, :]
    return (psf / psf.sum()).to(dtype=dtype, device=device)


def convolve_psfs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The full 2-D convolution of two PSFs (K1, K1) and (K2, K2): size K1 + K2 − 1, still summing to 1."""
    if b.shape[-1] == 1:
        return a * b[0, 0]
    out = F.conv2d(a[None, None], b.flip(-2, -1)[None, None].to(a), padding=b.shape[-1] - 1)[0, 0]
    return out / out.sum()


def centre_pad(psf: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a PSF (…, K, K) to (…, size, size) about its centre (both odd)."""
    pad = (size - psf.shape[-1]) // 2
    return F.pad(psf, [pad] * 4) if pad else psf


def stack_psfs(psfs: list[torch.Tensor]) -> torch.Tensor:
    """Centre-pad PSFs (…, K, K) of different odd sizes to the largest and stack them on a new first dim."""
    k = max(p.shape[-1] for p in psfs)
    return torch.stack([centre_pad(p, k) for p in psfs])


@dataclass(frozen=True)
class LensPSF:
    """A parametric defocus PSF (see the module docstring); `kernels` draws it for each colour channel."""

    radius: float  # circle-of-confusion radius in pixels (of a channel whose scale is 1)
    blades: int = 0  # 0: circular aperture; ≥ 3: polygon of that many blades
    rotation: float = 0.0  # polygon angle in radians
    aberration: float = 0.0  # a of the radial weight 1 + a (ρ/r)²: > 0 bright rim, < 0 soft edge
    channel_scale: tuple[float, ...] = (1.0,)  # radius factor per colour channel (one value: all channels)
    softening: float = 0.0  # std in pixels of a Gaussian convolved in (diffraction, pixel aperture, AA filter)

    def with_radius(self, radius: float) -> "LensPSF":
        """The same lens at another circle-of-confusion radius (another depth)."""
        return replace(self, radius=radius)

    def channel(self, scale: float, dtype=torch.float32, device=None) -> torch.Tensor:
        """The PSF (K, K) at radius·scale."""
        psf = aperture_psf(self.radius * scale, blades=self.blades, rotation=self.rotation,
                           aberration=self.aberration, dtype=torch.float64)
        psf = convolve_psfs(psf, gaussian_psf(self.softening, dtype=torch.float64))
        return psf.to(dtype=dtype, device=device)

    def kernels(self, channels: int = 1, dtype=torch.float32, device=None) -> torch.Tensor:
        """PSFs (C, K, K), one per channel, centre-padded to one size; C = 1 when every channel is the same."""
        scales = self.channel_scale
        if len(scales) not in (1, channels):
            raise ValueError(f"channel_scale has {len(scales)} values for {channels} channels")
        if len(set(scales)) == 1:
            return self.channel(scales[0], dtype, device)[None]
        return stack_psfs([self.channel(s, dtype, device) for s in scales])
