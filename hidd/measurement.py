"""The measurement model of each input: its blur (given, or estimated blindly) and its noise level."""
from __future__ import annotations

import torch

from hidd.operators import BlurOperator, DepthVaryingBlur, UniformBlur, make_psf, stack_psfs
from hidd.radius import MAX_RADIUS, estimate_radius, estimate_radius_map

MAD_TO_STD = 0.6745  # median(|z|) of a standard normal
ROUNDING_NOISE = 1 / (255 * 12**0.5)  # std of 8-bit rounding: the least noise an estimate reports


def estimate_noise_sigma(y: torch.Tensor) -> torch.Tensor:
    """Std of white noise in images (B, C, H, W), per image: the median absolute finest diagonal Haar
    detail over 0.6745 (Donoho's MAD estimate; defocus leaves almost no signal in that band).

    8-bit rounding makes the median coarse (σ 0.005 reads as 0.0058); the estimate is floored at
    ROUNDING_NOISE so that noise-free inputs keep a finite proximal weight. Written out because
    skimage's estimate_sigma needs PyWavelets, which hidd does not depend on.
    """
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    q = y[..., :h, :w]
    diagonal = (q[..., 0::2, 0::2] - q[..., 1::2, 0::2] - q[..., 0::2, 1::2] + q[..., 1::2, 1::2]) / 2
    return (diagonal.abs().flatten(1).median(dim=1).values / MAD_TO_STD).clamp_min(ROUNDING_NOISE)


def measurement_model(y: torch.Tensor, cfg, radius_map: torch.Tensor | None = None) -> BlurOperator:
    """Blur operator of measurements y (B, C, H, W) in [0, 1] under a SamplerConfig.

    radius_map: a known per-pixel disk radius (B, H, W) (e.g. from depth, or a benchmark's ground truth):
    spatially varying blur without estimation; it needs cfg.radius_map.
    cfg.radius > 0 is taken as known (one PSF for every image); otherwise each image's radius is estimated
    from its spectrum (hidd.radius), or, with cfg.radius_map, a per-tile radius map (spatially varying blur).
    cfg.noise_sigma > 0 is taken as known; otherwise it is estimated from each image, at least cfg.noise_sigma_min.
    """
    b = y.shape[0]
    noise = (torch.full((b,), cfg.noise_sigma, device=y.device) if cfg.noise_sigma > 0
             else estimate_noise_sigma(y).clamp_min(cfg.noise_sigma_min).to(y.device))
    fit = dict(psf_shape=cfg.psf, blades=cfg.blades)
    if radius_map is not None and not cfg.radius_map:
        raise ValueError("a known radius map needs sampler.radius_map: true (and consistency 'gradient')")
    if cfg.radius_map and (cfg.radius <= 0 or radius_map is not None):
        if cfg.psf == "gaussian":
            raise ValueError("sampler.radius_map: spatially varying blur supports psf disk or polygon, not gaussian")
        maps = (radius_map.to(y) if radius_map is not None
                else torch.stack([estimate_radius_map(image, tile=cfg.radius_tile, **fit) for image in y]))
        if maps.shape != (y.shape[0], *y.shape[-2:]):
            raise ValueError(f"radius map of shape {tuple(maps.shape)} for images {tuple(y.shape)}")
        return DepthVaryingBlur(maps[:, None].to(y.device), noise, blades=cfg.blades if cfg.psf == "polygon" else 0)
    radii = [cfg.radius if cfg.radius > 0 else estimate_radius(image, **fit) for image in y]
    psf = stack_psfs([make_psf(cfg.psf, r, blades=cfg.blades, device=y.device) for r in radii])
    return UniformBlur(psf, noise, torch.tensor(radii, device=y.device), boundary=cfg.boundary)


def at_radius_bound(radius: float) -> bool:
    """Whether a blind radius estimate sits at the top of its search range (hidd.radius.MAX_RADIUS), where
    it is capped: the true blur may be larger."""
    return radius >= MAX_RADIUS - 1e-6
