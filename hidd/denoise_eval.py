"""Judging a score prior without sampling: the PSNR of its denoiser on held-out test photos, across σ.

For a noisy photo x̃ = x + σ z (z ~ N(0, I)) the score gives the posterior mean (Tweedie's formula)

    x̂(x̃, σ) = E[x | x̃] = x̃ + σ² s_θ(x̃, σ),

the best estimate of x in the mean-squared sense; a prior whose x̂ is closer to x at the σ the sampler visits
knows more about photos. PSNR(x̂.clamp(0, 1), x) is reported per photo and σ, with one z per photo shared by every
σ and every model (common random numbers: differences between models are not noise draws).

The photos are scikit-image's bundled ones, the project's public test set, never trained on (docs/DATA.md): each
one's centre square resized to SIZE² with anti-aliasing (the model card's convention), gray replicated to RGB.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from skimage import data, transform
from skimage.color import gray2rgb, rgb2gray

from hidd.metrics import psnr

TEST_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket")  # skimage.data loaders, bundled with skimage
SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.5)  # noise levels of the table (photos in [0, 1])
SIZE = 256  # side of the test images


def public_photos(size: int = SIZE, channels: int = 3, names: Sequence[str] = TEST_PHOTOS) -> torch.Tensor:
    """The test photos (N, channels, size, size) in [0, 1], float32, in the order of `names`."""
    images = []
    for name in names:
        photo = getattr(data, name)()
        photo = gray2rgb(photo) if photo.ndim == 2 else photo[..., :3]
        height, width = photo.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = photo[top:top + side, left:left + side].astype(np.float64) / 255.0
        square = np.clip(transform.resize(square, (size, size), anti_aliasing=True), 0.0, 1.0)
        if channels == 1:
            square = rgb2gray(square)[..., None]
        images.append(torch.from_numpy(square.astype(np.float32)).permute(2, 0, 1))
    return torch.stack(images)


@torch.no_grad()
def denoise_psnr(model, images: torch.Tensor, sigmas: Sequence[float] = SIGMAS, *, seed: int = 0,
                 batch: int = 1, autocast: torch.autocast | None = None) -> np.ndarray:
    """PSNR (dB) of the Tweedie denoiser, shape (len(images), len(sigmas)); `batch` photos per network call."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator, device=images.device)  # one z per photo, for every σ
    table = np.empty((len(images), len(sigmas)))
    for j, sigma in enumerate(sigmas):
        for start in range(0, len(images), batch):
            x, z = images[start:start + batch], noise[start:start + batch]
            noisy = x + sigma * z
            level = torch.full((len(x),), float(sigma), device=images.device)
            if autocast is None:
                score = model(noisy, level)
            else:
                with autocast:
                    score = model(noisy, level)
            denoised = (noisy + sigma**2 * score.float()).clamp(0, 1)
            for i, (d, clean) in enumerate(zip(denoised, x)):
                table[start + i, j] = psnr(d, clean)
    return table


def noisy_psnr(sigma: float) -> float:
    """PSNR of the noisy input itself (before clamping): 20 log10(1 / σ)."""
    return float(-20 * np.log10(sigma))
