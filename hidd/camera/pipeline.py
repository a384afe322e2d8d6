"""The whole camera: scene → lens blur in linear light → sensor noise → demosaicing → tone curve → file.

    y = C( Γ( D( k ∗ Γ⁻¹(x) + n ) ) + w )

x: the sharp image as encoded values (a sharp photo); Γ: the tone curve; k ∗: the lens PSF (per channel), or
for a scene whose defocus varies with depth either a per-pixel radius map (`blur_depth_varying`, no occlusion)
or depth layers with occlusion (`Layers`, `blur_layered`: hidd.camera.optics has the maths); n: Poisson–Gaussian
noise; D: Bayer mosaic and
bilinear demosaicing (optional); w: white Gaussian noise on the encoded values (how synthetic benchmarks
add noise; 0 by default); C: quantisation and JPEG (optional). With the tone curve 'none',
no demosaicing and no JPEG this is the classic y = k ∗ x + n of synthetic benchmarks. The sampler's
measurement model (hidd.operators) inverts the same pieces: tone curve, PSF, noise level.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hidd.camera.codec import jpeg, quantize
from hidd.camera.mosaic import mosaic_demosaic
from hidd.camera.noise import PoissonGaussian, add_white_noise
from hidd.camera.optics import Layers, blur, blur_depth_varying, blur_layered
from hidd.camera.psf import LensPSF
from hidd.camera.tone import tone_curve


@dataclass(frozen=True)
class Camera:
    """One camera setting: lens PSF, tone curve, noise, demosaicing, bit depth, JPEG quality."""

    psf: LensPSF = field(default_factory=lambda: LensPSF(0.0))
    tone: str = "srgb"  # 'srgb', 'gamma' or 'none'
    gamma: float = 2.2  # exponent of the 'gamma' curve
    noise: PoissonGaussian = field(default_factory=PoissonGaussian)
    white_noise: float = 0.0  # std of white Gaussian noise added after the tone curve, on the encoded values
    demosaic: bool = False  # RGGB mosaic + bilinear demosaicing after the noise
    bits: int | None = 8  # quantisation bit depth; None keeps floats
    jpeg_quality: int | None = None  # JPEG compression at this quality; None: none
    boundary: str = "reflect"  # how the blur treats the image border (hidd.camera.optics.blur)

    def linear_blur(self, linear: torch.Tensor, radius_map: torch.Tensor | None = None, levels: int = 8,
                    layers: Layers | None = None):
        """The lens acting on linear radiance (B, C, H, W): the PSF; with a radius map (B, 1, H, W) or (H, W) the
        gathered depth-varying blur; with `layers` the layered blur with occlusion. At radius r the PSF is this
        lens's PSF scaled to r (its softening and lateral colour kept)."""
        channels = linear.shape[1]

        def psf_of_radius(r: float) -> torch.Tensor:
            return self.psf.with_radius(r).kernels(channels, linear.dtype)

        if radius_map is not None and layers is not None:
            raise ValueError("Camera: give a radius map or layers, not both")
        if layers is not None:
            return blur_layered(linear, layers.alphas, [psf_of_radius(r)[None] for r in layers.radii],
                                boundary=self.boundary)
        if radius_map is None:
            return blur(linear, self.psf.kernels(channels, linear.dtype)[None], boundary=self.boundary)
        return blur_depth_varying(linear, radius_map, psf_of_radius, levels=levels, boundary=self.boundary)

    def render(self, sharp: torch.Tensor, *, radius_map: torch.Tensor | None = None, levels: int = 8,
               layers: Layers | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """The photo (B, C, H, W) this camera takes of a sharp encoded image in [0, 1] (uniform defocus, a radius
        map's, or a layered scene's: `linear_blur`)."""
        tone = tone_curve(self.tone, self.gamma)
        linear = self.linear_blur(tone.decode(sharp), radius_map, levels, layers)
        linear = self.noise.sample(linear, generator)
        if self.demosaic:
            linear = mosaic_demosaic(linear)
        y = tone.encode(linear.clamp(0, 1))
        if self.white_noise > 0:
            y = add_white_noise(y, self.white_noise, generator)
        y = quantize(y, self.bits) if self.bits else y.clamp(0, 1)
        return jpeg(y, self.jpeg_quality) if self.jpeg_quality else y
