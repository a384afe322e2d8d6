"""Photos as a score network sees them, and back.

A network of `channels` channels whose sizes must be multiples of `multiple` sees photos (B, C, H, W) padded
right and bottom to those multiples (`pad_to_multiple`: reflect where the photo is big enough, else replicate)
and, for a 1-channel network (the paper's) and colour photos, each channel as an image of its own: photo p is the
`images_per_photo` consecutive network images p·C … p·C + C − 1 (`rows`). `to_photos` crops and regroups them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad right/bottom to multiples of `multiple`: reflect where the image is big enough, else replicate."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


@dataclass(frozen=True)
class Layout:
    """How photos of one shape (C, H, W) are laid out for a network."""

    channels: int  # the network's
    multiple: int  # the network's size multiple
    photo_shape: tuple[int, int, int]  # (C, H, W) of the photos

    @classmethod
    def of(cls, photos: torch.Tensor, channels: int, multiple: int) -> "Layout":
        """The layout of photos (B, C, H, W) for a network; ValueError where it cannot see them."""
        c = photos.shape[1]
        if c != channels and channels != 1:
            raise ValueError(f"the model expects {channels}-channel images, got {c} channels")
        return cls(channels, multiple, tuple(photos.shape[1:]))

    @property
    def images_per_photo(self) -> int:
        """Network images per photo: its C channels for a 1-channel network, else 1."""
        return self.photo_shape[0] if self.channels == 1 else 1

    def rows(self, photos: list[int]) -> list[int]:
        """The network images of photos `photos` (positions in a batch), in order."""
        n = self.images_per_photo
        return [photo * n + j for photo in photos for j in range(n)]

    def to_network(self, photos: torch.Tensor) -> torch.Tensor:
        """Photos (B, C, H, W) → network images (B · images_per_photo, channels, H', W')."""
        b, c, h, w = photos.shape
        x = photos.reshape(b * c, 1, h, w) if self.images_per_photo > 1 else photos
        return pad_to_multiple(x, self.multiple)[0]

    def to_photos(self, x: torch.Tensor) -> torch.Tensor:
        """Network images (N · images_per_photo, …) → photos (N, C, H, W), the padding cropped."""
        c, h, w = self.photo_shape
        return x[..., :h, :w].reshape(-1, c, h, w)
