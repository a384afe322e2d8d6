"""Whether a colour photo has any colour: a black-and-white photo saved as RGB comes back gray.

A gray scene photographed in colour carries chroma c = y − ȳ (ȳ the mean of the three channels) made of nothing
but noise and what the lens does differently to each channel (lateral colour). Deblurring such a photo colours
it: the data step deconvolves each channel on its own and amplifies whatever differs between them, the noise
first, so the gray trees of an aerial photo came back with blue and green tints (issue 29). The test is

    colourless  ⇔  RMS(c) ≤ σ,

σ the photo's RMS noise level per channel (its weak-texture patches, hidd.no_harm.flat_noise_level). A colourless
photo is deblurred as it is, and its result, and the photo the no-harm guard blends it with, are projected onto
gray: the channel mean (the nearest gray image), written back in the photo's three channels. Deblurring the
gray photo itself would be noisier: its measured noise is lower than the channels' (about √3 for independent
noise), the data step deconvolves harder for it, and on a real JPEG the guard then kept half the result.

The bound is physical rather than tuned: projecting y onto gray moves it by RMS(c) ≤ σ, no more than its noise
already does, so a colour photo taken for gray loses at most a noise level's worth of colour, and a gray one with
independent channel noise reads RMS(c) = √(2/3) σ ≈ 0.82 σ (demosaicing and JPEG's chroma subsampling make it
less). A gray scene whose lateral colour fringes rise above its noise keeps them: its colour is not at its noise
level. Measured in docs/BENCHMARKS.md ("Black-and-white photos").
"""
from __future__ import annotations

import math

import torch

from hidd.camera.tone import ToneCurve
from hidd.blind.spectrum import working
from hidd.no_harm import flat_noise_levels


def chroma_rms(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B,) float64 RMS of the chroma y − ȳ, ȳ each pixel's mean over its channels (measured on the
    images' device, in float32, in float64 for float64 images; 0 exactly where every pixel is gray)."""
    offsets = working(images) - working(images[:, :1])  # y − ȳ = d − d̄ with d = y − y₀: exactly 0 on a gray pixel
    return (offsets - offsets.mean(dim=1, keepdim=True)).square().mean(dim=(1, 2, 3)).sqrt().to(torch.float64)


def colourless(photos: torch.Tensor, tone: ToneCurve) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) photos in [0, 1] → ((B,) bool: its chroma is at most its noise level (see the module
    docstring), (B,) its noise level, float64, NaN where not measured: a photo whose channels are equal already is
    colourless without it), both on the host; the noise levels of the others measured as one batch on the photos'
    device (hidd.no_harm.flat_noise_levels)."""
    chroma = chroma_rms(photos).cpu()
    noise = torch.full_like(chroma, math.nan)
    measured = torch.nonzero(chroma != 0).flatten().tolist()
    if measured:
        noise[measured] = flat_noise_levels(photos[measured], tone).cpu()
    return (chroma == 0) | (chroma <= noise), noise


def gray(images: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """Images (B, C, H, W) projected onto gray (each pixel's channel mean in every channel) where `where` (B,) is
    set (everywhere when None); the others as they are."""
    projected = images.mean(dim=1, keepdim=True).expand_as(images)
    projected = torch.where((images == images[:, :1]).all(dim=1, keepdim=True), images, projected)  # gray stays exact
    if where is None:
        return projected.contiguous()
    return torch.where(where.to(images.device)[:, None, None, None], projected, images)
