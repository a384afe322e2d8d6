"""Defocus measurement operators y = A x + n for blur-aware data consistency.

An operator holds the blur of each image of a batch (one PSF, or a per-pixel radius map) and the
measurement noise level σ_n of each image. Blurring follows hidd.degrade: FFT filtering with reflect
boundaries, y = crop(k ∗ reflect-pad(x)), how the benchmark pairs were made. `UniformBlur` also has
the closed-form proximal step of its data term, with a choice of border model (the unknown scene
beyond a real photo's frame, or reflection); spatially varying blur (`DepthVaryingBlur`) has none
and is used through gradients (autograd gives the exact adjoint).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hidd.degrade import blur, blur_depth_varying, disk_psf, gaussian_psf, otf

FREE_BOUNDARY_ITERATIONS = 15  # fill-in rounds of the 'free' boundary (3 left visible ringing on 64–128 px crops)

PSF_SHAPES = {
    "disk": lambda radius, blades, **kw: disk_psf(radius, **kw),  # circular aperture
    "polygon": lambda radius, blades, **kw: disk_psf(radius, blades=blades, **kw),  # bladed aperture
    "gaussian": lambda radius, blades, **kw: gaussian_psf(radius, **kw),  # radius is the standard deviation
}


def make_psf(shape: str, radius: float, *, blades: int = 6, dtype=torch.float32, device=None) -> torch.Tensor:
    """PSF (K, K) of a named family ('disk', 'polygon' with `blades` sides, 'gaussian') and size parameter."""
    if shape not in PSF_SHAPES:
        raise ValueError(f"sampler.psf: unknown PSF '{shape}' (choose from {', '.join(PSF_SHAPES)})")
    return PSF_SHAPES[shape](radius, blades, dtype=dtype, device=device)


def stack_psfs(psfs: list[torch.Tensor]) -> torch.Tensor:
    """Centre-pad PSFs of different odd sizes to the largest and stack them, (B, K, K)."""
    k = max(p.shape[-1] for p in psfs)
    return torch.stack([F.pad(p, [(k - p.shape[-1]) // 2] * 4) for p in psfs])


def reflect_periodic(x: torch.Tensor) -> torch.Tensor:
    """(…, H, W) → (…, 2H−2, 2W−2): x followed by its mirror image without the edge rows, in both axes.

    The result is periodic and continuous, and its circular convolution with a symmetric PSF, cropped
    to H×W, equals hidd.degrade.blur's reflect-boundary convolution: FFT solves on it are exact for
    that forward model and have no wrap-around discontinuity to ring at.
    """
    x = torch.cat([x, x.flip(-2)[..., 1:-1, :]], dim=-2)
    return torch.cat([x, x.flip(-1)[..., 1:-1]], dim=-1)


class BlurOperator:
    """A defocus measurement model of a batch; subclasses define the blur."""

    def __init__(self, noise_sigma: torch.Tensor, radius: torch.Tensor):
        self.noise_sigma = noise_sigma  # (B,) std of the measurement noise on the [0, 1] scale
        self.radius = radius  # (B,) PSF radius per image (the mean radius for spatially varying blur), for reports

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A x for images (B, C, H, W)."""
        raise NotImplementedError

    def prox(self, x0: torch.Tensor, y: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        """argmin_x ‖A x − y‖² + ρ ‖x − x0‖² with ρ (B,) per image; only where a closed form exists."""
        raise ValueError(f"{type(self).__name__} has no closed-form proximal step; use sampler.consistency gradient")

    def data_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇ ½‖A x − y‖² = Aᵀ(A x − y), the adjoint taken by autograd (exact, boundaries included)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            residual = self(x) - y
            (grad,) = torch.autograd.grad(0.5 * residual.square().sum(), x)
        return grad


class UniformBlur(BlurOperator):
    """One PSF per image (the same everywhere in it), reflect boundaries for the forward blur.

    The proximal step can model the image border two ways (`boundary`):
    - 'free': the scene beyond the frame is unknown, as in any real photo: x is solved on the frame
      padded by the PSF's half-width, where y is the valid part of a circular blur (exact: no pixel of
      y wraps around), and the unobserved ring of the blurred image is filled in from the current
      solution, FREE_BOUNDARY_ITERATIONS times (an EM for the missing border data; cf. Reeves 2005,
      "Fast image restoration without boundary artifacts"). The estimate x0, reflect-padded, anchors the ring.
    - 'reflect': y is assumed to be the reflect-boundary blur of x (how hidd.degrade and the synthetic
      benchmark make it): one exact solve on the reflect-periodic extension (see `reflect_periodic`).
      On crops of real scenes the mismatch at the borders rings into the image.
    """

    def __init__(self, psf: torch.Tensor, noise_sigma: torch.Tensor, radius: torch.Tensor, boundary: str = "free"):
        super().__init__(noise_sigma, radius)
        if boundary not in ("free", "reflect"):
            raise ValueError(f"sampler.boundary must be 'free' or 'reflect', got {boundary!r}")
        self.psf = psf  # (B, K, K) PSFs summing to one, odd K
        self.boundary = boundary  # how the proximal step treats the image border (see the class docstring)

    def __call__(self, x):
        return blur(x, self.psf)

    def prox(self, x0, y, rho):
        """Closed form in the Fourier domain, X = (K̄ Y + ρ X0) / (|K|² + ρ), on a padded or mirrored frame."""
        rho = rho.to(x0.dtype).reshape(-1, 1, 1, 1)
        return self._prox_free(x0, y, rho) if self.boundary == "free" else self._prox_reflect(x0, y, rho)

    def _solve(self, y, x0, rho):
        """The periodic Fourier-domain solve on frames y, x0 of the same size."""
        shape = y.shape[-2:]
        k = otf(self.psf.to(device=x0.device, dtype=x0.dtype), shape)[:, None]  # B, 1, H, W/2+1
        spectrum = (k.conj() * torch.fft.rfft2(y) + rho * torch.fft.rfft2(x0)) / (k.abs() ** 2 + rho)
        return torch.fft.irfft2(spectrum, s=shape)

    def _prox_reflect(self, x0, y, rho):
        h, w = x0.shape[-2:]
        return self._solve(reflect_periodic(y), reflect_periodic(x0), rho)[..., :h, :w]

    def _prox_free(self, x0, y, rho):
        p = self.psf.shape[-1] // 2
        if p == 0:
            return self._solve(y, x0, rho)
        x0_padded = F.pad(x0, (p, p, p, p), mode="reflect" if p < min(x0.shape[-2:]) else "replicate")
        observed = torch.zeros_like(x0_padded, dtype=torch.bool)
        observed[..., p:-p, p:-p] = True
        y_padded = F.pad(y, (p, p, p, p))
        x = x0_padded
        for _ in range(FREE_BOUNDARY_ITERATIONS):
            filled = torch.where(observed, y_padded, blur(x, self.psf, boundary="circular"))
            x = self._solve(filled, x0_padded, rho)
        return x[..., p:-p, p:-p]


class DepthVaryingBlur(BlurOperator):
    """Spatially varying disk (or polygon) defocus from a per-pixel radius map (hidd.degrade.blur_depth_varying)."""

    def __init__(self, radius_map: torch.Tensor, noise_sigma: torch.Tensor, *, blades: int = 0, levels: int = 8):
        super().__init__(noise_sigma, radius_map.flatten(1).mean(dim=1))
        self.radius_map = radius_map  # (B, 1, H, W) disk radius in pixels at each pixel
        self.blades = blades  # 0: disk; ≥ 3: polygon aperture
        self.levels = levels  # blur layers spanning the map's range (linear interpolation between them)

    def __call__(self, x):
        return blur_depth_varying(x, self.radius_map, levels=self.levels, blades=self.blades)
