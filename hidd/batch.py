"""Some images of a batch, taken as the batch holds them.

A network computes in the memory layout of its input (channels-last strides, as a photo read from HWC pixels
has, or contiguous), and the layouts sum in different orders: the same images in the other layout come out
different in the last bits (1e-5 at the score network's output). `take` keeps the layout, so a photo sampled
in a sub-batch is computed exactly as in its batch.
"""
from __future__ import annotations

import torch


def take(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Rows `rows` of x (B, …) in x's memory layout: x itself where they are all of its rows, in order."""
    if rows == list(range(len(x))):
        return x
    part = x[torch.as_tensor(rows, dtype=torch.long, device=x.device)]
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        part = part.contiguous(memory_format=torch.channels_last)
    return part
