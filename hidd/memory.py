"""Memory of sampling: the score network's activations per pixel, the default budget, peak RSS.

The estimate is a per-pixel constant derived from the model config, so it costs nothing to
evaluate and needs no trial run. In inference (no autograd graph) the peak of an NCSN++ forward
pass is the U-Net's skip stack plus the working tensors of one block, both proportional to the
feature volume Σ_l nf · ch_mult[l] / 4^l per input pixel (level l runs at 1/2^l resolution).
`FLOATS_PER_FEATURE` converts that volume into bytes; it was calibrated on CPU (torch 2.14,
fp32, peak-RSS growth of one forward pass at 256²–512², batch 1–4): the tiny config measured
1.0 kB/px and the default config 2.0–3.7 kB/px (small inputs carry fixed overheads), where the
constant gives 1.7 and 3.7 kB/px. A whole 1680x1120 run with 872² tiles (estimate 2.8 GB) peaked
at 2.4 GiB of process RSS, weights and sampler state included.
The attention blocks add nothing quadratic as long as SDPA runs a fused kernel (see AttnBlock).
"""
from __future__ import annotations

import resource
import sys

import torch

FLOATS_PER_FEATURE = 16  # fp32 values alive per unit of feature volume at the peak (calibrated, with margin)
CPU_BUDGET_BYTES = 4 * 2**30  # default activation budget on CPU
CUDA_FREE_FRACTION = 0.8  # of the free GPU memory: the rest is for the sampler state and fragmentation


def activation_bytes_per_pixel(model_cfg) -> float:
    """Peak activation bytes of one fp32 forward pass, per pixel of one network input image."""
    volume = sum(model_cfg.nf * mult / 4 ** level for level, mult in enumerate(model_cfg.ch_mult))
    return 4.0 * FLOATS_PER_FEATURE * volume


def default_budget_bytes(device: str | torch.device) -> int:
    """4 GiB on CPU; on CUDA a fraction of what is free on the card right now."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(CUDA_FREE_FRACTION * free)
    return CPU_BUDGET_BYTES


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (getrusage reports kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
