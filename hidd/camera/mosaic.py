"""The colour filter array: a Bayer mosaic keeps one colour per pixel, demosaicing interpolates the rest.

Noise added per pixel before the mosaic becomes, after bilinear demosaicing, spatially correlated and
partly shared between channels: the red and blue planes are interpolated from a quarter of the pixels,
so their noise is low-passed, and a blind noise estimate from the finest detail band reads it too low.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# RGGB: which channel each position of a 2×2 cell samples
BAYER_RGGB = ((0, 1), (1, 2))

# bilinear interpolation kernels: green from its 4 neighbours, red/blue from 2 or 4
_GREEN = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=torch.float64) / 4
_RED_BLUE = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=torch.float64) / 4


def bayer_masks(h: int, w: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(3, H, W) 0/1 masks of the pixels that sample each colour in an RGGB mosaic."""
    masks = torch.zeros(3, h, w, dtype=dtype, device=device)
    for i in range(2):
        for j in range(2):
            masks[BAYER_RGGB[i][j], i::2, j::2] = 1
    return masks


def mosaic_demosaic(x: torch.Tensor) -> torch.Tensor:
    """RGB images (B, 3, H, W) sampled through an RGGB mosaic and bilinearly demosaiced back to RGB."""
    if x.shape[1] != 3:
        raise ValueError(f"a Bayer mosaic needs 3 channels, got {x.shape[1]}")
    masks = bayer_masks(*x.shape[-2:], dtype=x.dtype, device=x.device)
    sampled = x * masks
    kernels = torch.stack([_RED_BLUE, _GREEN, _RED_BLUE]).to(x)[:, None]  # 3, 1, 3, 3
    padded = F.pad(sampled, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernels, groups=3)
