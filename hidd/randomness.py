"""Per-photo random numbers: the noise a photo's sampling draws does not depend on the photos batched with it.

A sampler draws noise (the warm start y + σ z, fresh noise between levels, the prior's sample) for a batch of
network images, of which each photo owns `images_per_photo` consecutive ones (its channels, for a 1-channel prior).
`PhotoGenerators` holds one torch.Generator per photo, each seeded with the run's seed, and draws each photo's
images from its own generator:

    z_p = randn((images_per_photo, C, H, W), generator_p),   z = cat(z_0, z_1, …),

so photo p of a batch draws exactly what it would draw alone with the same seed (for one photo this is the draw of
one generator seeded so), and a sub-batch of photos sampled again (`select`) continues each photo's own stream.
"""
from __future__ import annotations

import torch


class PhotoGenerators:
    """One generator per photo of a batch; `randn` draws each photo's images from its own."""

    def __init__(self, generators: list[torch.Generator], images_per_photo: int = 1):
        if not generators or images_per_photo < 1:
            raise ValueError(f"PhotoGenerators: need at least one generator and images_per_photo ≥ 1, got "
                             f"{len(generators)} and {images_per_photo}")
        self.generators = generators  # generators[p]: photo p's stream (shared with any selection of it)
        self.images_per_photo = images_per_photo  # consecutive network images per photo

    @classmethod
    def seeded(cls, seed: int, photos: int, device, images_per_photo: int = 1) -> "PhotoGenerators":
        """`photos` generators on `device`, each seeded with `seed`."""
        return cls([torch.Generator(device=device).manual_seed(seed) for _ in range(photos)], images_per_photo)

    @property
    def device(self) -> torch.device:
        return self.generators[0].device

    def select(self, photos: list[int]) -> "PhotoGenerators":
        """The generators of photos `photos` (positions in this batch), in that order; their streams go on here too."""
        return PhotoGenerators([self.generators[p] for p in photos], self.images_per_photo)

    def randn(self, shape, device=None, dtype=None) -> torch.Tensor:
        """Standard normal noise of `shape` (images_per_photo × photos, …), each photo's rows from its generator."""
        rows = len(self.generators) * self.images_per_photo
        if shape[0] != rows:
            raise ValueError(f"PhotoGenerators: {len(self.generators)} photos of {self.images_per_photo} image(s) "
                             f"draw {rows} images, not {shape[0]}")
        return torch.cat([torch.randn((self.images_per_photo, *shape[1:]), generator=generator, device=device,
                                      dtype=dtype) for generator in self.generators])


def randn(shape, generator: torch.Generator | PhotoGenerators | None, device=None, dtype=None) -> torch.Tensor:
    """Standard normal noise of `shape` from one generator, or from each photo's (PhotoGenerators)."""
    if isinstance(generator, PhotoGenerators):
        return generator.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def for_photos(generator: torch.Generator | PhotoGenerators | None, photos: list[int]):
    """The generator(s) of a sub-batch of photos: their own where there is one per photo, else the one shared."""
    return generator.select(photos) if isinstance(generator, PhotoGenerators) else generator
