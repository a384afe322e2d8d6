"""Random cameras: the settings that the benchmarks and the baselines' training pairs are drawn from.

One place for them, so that a network trained on "the camera model" and the camera benchmark it is tested
on use the same distributions (with different seeds and photos):
- `srgb_disk_camera`: an ideal disk acting on the values as given (tone 'none'), white noise, 8 bits — the
  model of the old public benchmark;
- `linear_disk_camera`: condition (a), a disk in linear light (sRGB), white noise on the encoded values;
- `lens_camera`: condition (b), a random lens (blades, rotation, aberration of either sign, lateral colour,
  softening), Poisson–Gaussian noise, demosaicing, JPEG q 75–95.
"""
from __future__ import annotations

import math
import random

from hidd.camera.noise import PoissonGaussian
from hidd.camera.pipeline import Camera
from hidd.camera.psf import LensPSF


def srgb_disk_camera(radius: float, noise_sigma: float, bits: int = 8) -> Camera:
    """A disk blur on the sRGB values themselves with white noise (the sRGB-disk benchmark's model)."""
    return Camera(psf=LensPSF(radius), tone="none", noise=PoissonGaussian(read=noise_sigma), bits=bits)


def linear_disk_camera(radius: float, white_noise: float, bits: int = 8) -> Camera:
    """Condition (a): a disk in linear light, white noise added to the encoded values."""
    return Camera(psf=LensPSF(radius), white_noise=white_noise, bits=bits)


def lens_camera(rng: random.Random, radius: float) -> Camera:
    """Condition (b): a random lens and sensor (every draw from `rng`, in a fixed order)."""
    lens = LensPSF(radius, blades=rng.choice([0, 5, 6, 7, 8, 9]), rotation=rng.uniform(0, math.pi),
                   aberration=rng.uniform(-0.6, 1.0),
                   channel_scale=(rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.9, 1.1)), softening=rng.uniform(0.3, 1.0))
    noise = PoissonGaussian(float(math.exp(rng.uniform(math.log(2e-5), math.log(4e-4)))), rng.uniform(5e-4, 3e-3))
    return Camera(psf=lens, noise=noise, demosaic=True, jpeg_quality=rng.randint(75, 95))
