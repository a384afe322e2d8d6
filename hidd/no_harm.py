"""The last line of defence of a blind deblur: detect a result that amplified noise, and keep the photo instead.

A deconvolution that trusts its data too much (noise under-estimated, a PSF that does not match, JPEG
error read as detail) turns noise and compression artefacts into grain and ringing. Those show where the
scene is flat: the weak-texture noise level (hidd.blind.noise, the flattest patches of each intensity)
of the result rises above the photo's. On the camera benchmark's deblurred photos that ratio stays below
~1.5 where the result is better than the input and reached 1.9–2.8 where it was worse, so a result whose
flat-patch noise exceeds `limit` × the photo's is replaced by the photo itself: unchanged, never worse.
So is a photo that the blind PSF estimate finds in focus: there the sampler would only denoise, which on
the benchmark's camera photos cost 0.2–0.4 dB of detail.
"""
from __future__ import annotations

import torch

from hidd.blind.noise import estimate_nlf
from hidd.camera.tone import ToneCurve


def flat_noise_level(image: torch.Tensor, tone: ToneCurve) -> float:
    """RMS weak-texture noise level of one image (C, H, W) in [0, 1]."""
    image = image.detach().cpu().double()
    return float(estimate_nlf(image, tone).level(image[None]))


def noise_gain(y: torch.Tensor, result: torch.Tensor, tone: ToneCurve) -> torch.Tensor:
    """Per image (B,): the result's flat-patch noise level over the photo's."""
    return torch.tensor([flat_noise_level(r, tone) / flat_noise_level(p, tone) for p, r in zip(y, result)])


def keep_unharmed(y: torch.Tensor, result: torch.Tensor, tone: ToneCurve, limit: float,
                  in_focus: torch.Tensor | None = None):
    """(images, gain, kept): the result, with every image whose noise gain exceeds `limit` (or that is marked
    in_focus (B,) bool) replaced by its input y; gain (B,) the measured ratios, kept (B,) bool which inputs
    were returned unchanged."""
    gain = noise_gain(y, result, tone)
    kept = gain > limit
    if in_focus is not None:
        kept = kept | in_focus.cpu()
    mask = kept.to(result.device).reshape(-1, *([1] * (result.ndim - 1)))
    return torch.where(mask, y.to(result), result), gain, kept
