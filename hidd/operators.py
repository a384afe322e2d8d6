"""Defocus measurement operators y = A x + n for blur-aware data consistency.

An operator holds the blur of each image of a batch (one PSF, or a per-pixel radius map) and the
measurement noise level σ_n of each image. Blurring follows hidd.degrade: FFT filtering with reflect
boundaries, y = crop(k ∗ reflect-pad(x)), exactly how the benchmark pairs were made, so borders do
not ring. `UniformBlur` also has the closed-form proximal step of its data term; spatially varying
blur (`DepthVaryingBlur`) has none and is used through gradients (autograd gives the exact adjoint).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hidd.degrade import blur, blur_depth_varying, disk_psf, gaussian_psf, otf

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
    """One PSF per image (the same everywhere in it), reflect boundaries."""

    def __init__(self, psf: torch.Tensor, noise_sigma: torch.Tensor, radius: torch.Tensor):
        super().__init__(noise_sigma, radius)
        self.psf = psf  # (B, K, K) PSFs summing to one, odd K

    def __call__(self, x):
        return blur(x, self.psf)

    def prox(self, x0, y, rho):
        """Closed form in the Fourier domain, X = (K̄ Y + ρ X0) / (|K|² + ρ), solved on the reflect-periodic
        extension of y and x0 (see `reflect_periodic`) and cropped back: no border ringing, and exact for
        the reflect-boundary blur when the PSF is symmetric (disks and Gaussians are)."""
        h, w = x0.shape[-2:]
        y_ext, x0_ext = reflect_periodic(y), reflect_periodic(x0)
        shape = y_ext.shape[-2:]
        k = otf(self.psf.to(device=x0.device, dtype=x0.dtype), shape)[:, None]  # B, 1, H', W'/2+1
        rho = rho.to(x0.dtype).reshape(-1, 1, 1, 1)
        spectrum = (k.conj() * torch.fft.rfft2(y_ext) + rho * torch.fft.rfft2(x0_ext)) / (k.abs() ** 2 + rho)
        return torch.fft.irfft2(spectrum, s=shape)[..., :h, :w]


class DepthVaryingBlur(BlurOperator):
    """Spatially varying disk (or polygon) defocus from a per-pixel radius map (hidd.degrade.blur_depth_varying)."""

    def __init__(self, radius_map: torch.Tensor, noise_sigma: torch.Tensor, *, blades: int = 0, levels: int = 8):
        super().__init__(noise_sigma, radius_map.flatten(1).mean(dim=1))
        self.radius_map = radius_map  # (B, 1, H, W) disk radius in pixels at each pixel
        self.blades = blades  # 0: disk; ≥ 3: polygon aperture
        self.levels = levels  # blur layers spanning the map's range (linear interpolation between them)

    def __call__(self, x):
        return blur_depth_varying(x, self.radius_map, levels=self.levels, blades=self.blades)
