"""Image quality metrics (skimage.metrics) and the denoising check of a score network."""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _hwc(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
        if x.ndim == 3:  # C, H, W -> H, W, C
            x = x.transpose(1, 2, 0)
    return np.asarray(x, dtype=np.float64)


def psnr(result, target) -> float:
    """PSNR in dB for images in [0, 1] (data_range 1, no border crop: the DPDD leaderboard convention);
    identical images give inf (skimage would divide by zero and warn)."""
    target, result = _hwc(target), _hwc(result)
    if target.shape == result.shape and np.array_equal(target, result):
        return float("inf")
    return float(peak_signal_noise_ratio(target, result, data_range=1.0))


IN_FOCUS_RADIUS = 1.0  # px: a pixel whose true defocus radius is below this (the pixel pitch) counts as in focus


def region_psnr(result, target, radius_map, in_focus: bool) -> float:
    """PSNR over the in-focus pixels (true radius < IN_FOCUS_RADIUS) or the defocused ones (the rest) of a
    depth-varying image, every channel; radius_map (H, W). nan where the region has no pixel."""
    target, result = _hwc(target), _hwc(result)
    radius_map = np.asarray(radius_map)
    mask = radius_map < IN_FOCUS_RADIUS if in_focus else radius_map >= IN_FOCUS_RADIUS
    if not mask.any():
        return float("nan")
    return psnr(result[mask], target[mask])


def ssim(result, target) -> float:
    """SSIM (skimage defaults, RGB over channels, data_range 1)."""
    a, b = _hwc(target), _hwc(result)
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[..., 0], b[..., 0]
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=2 if a.ndim == 3 else None))


@torch.no_grad()
def denoising_psnr(model, images: torch.Tensor, sigmas, seed: int = 0) -> dict[float, float]:
    """Mean PSNR of the Tweedie denoiser x̂ = x̃ + σ² s_θ(x̃, σ) on images noised at each σ."""
    g = torch.Generator(device=images.device).manual_seed(seed)
    out = {}
    for sigma in sigmas:
        noise = torch.randn(images.shape, generator=g, device=images.device)
        noisy = images + sigma * noise
        s = torch.full((images.shape[0],), sigma, device=images.device)
        denoised = (noisy + sigma**2 * model(noisy, s).float()).clamp(0, 1)
        out[sigma] = float(np.mean([psnr(d, x) for d, x in zip(denoised, images)]))
    return out
