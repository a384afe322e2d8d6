"""Deblur batches of images with a score prior: colour handling, padding, NFE accounting.

The sampler itself (hidd.sampling) sees network-shaped tensors only. This layer
- applies a 1-channel model (the paper's) to each colour channel, batched;
- pads every image (reflect) to a multiple of the network's size and crops the result back;
- counts network evaluations (NFE) per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hidd.prior import Prior
from hidd.sampling.pc import sample


@dataclass
class DeblurResult:
    images: torch.Tensor  # (B, C, H, W) in [0, 1]
    nfe: int  # network evaluations per image


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad right/bottom to multiples of `multiple`: reflect where the image is big enough, else replicate."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class Deblurrer:
    """Runs the configured sampler of a prior on defocused images y (B, C, H, W) in [0, 1]."""

    def __init__(self, prior: Prior):
        self.prior = prior
        self.model_channels = prior.config.model.channels
        self.multiple = prior.model.size_multiple

    @torch.no_grad()
    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.prior.model(x, sigma).float()

    def _to_network(self, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = y.shape
        if c == self.model_channels:
            return y
        if self.model_channels == 1:  # grayscale prior on a colour photo: each channel is an image
            return y.reshape(b * c, 1, h, w)
        raise ValueError(f"the model expects {self.model_channels}-channel images, got {c} channels")

    def __call__(self, y: torch.Tensor, *, seed: int = 0, callback=None) -> DeblurResult:
        """callback(iteration, images) receives the current iterate, cropped and in the input's layout."""
        b, c, h, w = y.shape
        y_net, _ = pad_to_multiple(self._to_network(y.to(self.prior.device)), self.multiple)

        def restore_layout(x):
            return x[..., :h, :w].reshape(b, c, h, w)

        step_callback = None if callback is None else (lambda i, x: callback(i, restore_layout(x)))
        generator = torch.Generator(device=self.prior.device).manual_seed(seed)
        result = sample(self.prior.sde, self.score, self.prior.config.sampler, y=y_net, generator=generator,
                        callback=step_callback)
        return DeblurResult(images=restore_layout(result.x).clamp(0, 1), nfe=result.nfe)
