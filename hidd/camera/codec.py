"""What a camera writes: quantisation to a bit depth, and JPEG compression (torchvision's libjpeg, 4:2:0)."""
from __future__ import annotations

import warnings

import torch
from torchvision.io import decode_jpeg, encode_jpeg


def quantize(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Clamp to [0, 1] and round to 2**bits − 1 levels.

    The rounding gradient is passed straight through (identity) so that a pipeline containing
    quantisation stays usable for gradient-based sampling.
    """
    levels = 2**bits - 1
    x = x.clamp(0, 1)
    q = torch.round(x * levels) / levels
    return q + (x - x.detach())  # exactly q in value, identity in gradient


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Images (B, C, H, W) in [0, 1], C = 1 or 3, compressed to JPEG at `quality` (1–100) and decoded back."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1–100, got {quality}")
    pixels = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs for torchcodec, not a hidd dependency;
        warnings.simplefilter("ignore", DeprecationWarning)  # its libjpeg is what the benchmarks were made with
        decoded = [decode_jpeg(encode_jpeg(image, quality=int(quality))) for image in pixels]
    return torch.stack(decoded).to(device=x.device, dtype=x.dtype) / 255
