"""Training pairs for the learned baselines, drawn on the fly from sharp crops through the camera model.

Each sharp crop gets its own camera from hidd.camera.draws (the distributions the camera benchmark uses; other
seeds, other photos) and a defocus radius from [radius_min, radius_max]:
- degradation.model 'camera': condition (a) (disk in linear light, white noise) or (b) (random lens,
  Poisson–Gaussian noise, demosaicing, JPEG), half and half;
- 'srgb-disk': an ideal disk on the sRGB values with white noise (the old public benchmark's model).
The pair's noise level is the RMS of everything the camera adds after the blur (noise, demosaicing, rounding,
JPEG): the photo minus the same camera's noise-free, uncompressed render. FFDNet is given it as its noise map.
"""
from __future__ import annotations

import dataclasses
import random

import torch

from hidd.camera.draws import lens_camera, linear_disk_camera, srgb_disk_camera
from hidd.camera.noise import PoissonGaussian
from hidd.camera.pipeline import Camera

DEGRADATIONS = ("camera", "srgb-disk")


def draw_camera(cfg, rng: random.Random) -> Camera:
    """One camera of the `degradation` config `cfg`, every draw from `rng`."""
    if cfg.model not in DEGRADATIONS:
        raise ValueError(f"degradation.model: unknown model '{cfg.model}' (choose from {', '.join(DEGRADATIONS)})")
    if not 0 < cfg.radius_min <= cfg.radius_max or not 0 <= cfg.noise_min <= cfg.noise_max:
        raise ValueError("degradation: need 0 < radius_min ≤ radius_max and 0 ≤ noise_min ≤ noise_max")
    radius = rng.uniform(cfg.radius_min, cfg.radius_max)
    if cfg.model == "srgb-disk":
        return srgb_disk_camera(radius, rng.uniform(cfg.noise_min, cfg.noise_max))
    if rng.random() < 0.5:
        return linear_disk_camera(radius, rng.uniform(cfg.noise_min, cfg.noise_max))
    return lens_camera(rng, radius)


def noise_free(camera: Camera) -> Camera:
    """The same optics and tone curve without noise, mosaic, rounding or compression."""
    return dataclasses.replace(camera, noise=PoissonGaussian(0.0, 0.0), white_noise=0.0, demosaic=False, bits=None,
                               jpeg_quality=None)


def synthesize(sharp: torch.Tensor, cfg, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Defocused photos (B, C, H, W) of sharp crops in [0, 1] and their noise levels (B,); a function of `seed`."""
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    blurred, levels = [], []
    for image in sharp.cpu().split(1):
        camera = draw_camera(cfg, rng)
        photo = camera.render(image, generator=generator)
        levels.append((photo - noise_free(camera).render(image)).square().mean().sqrt())
        blurred.append(photo)
    return torch.cat(blurred).to(sharp), torch.stack(levels).to(sharp)
