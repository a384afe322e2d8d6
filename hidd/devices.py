"""The torch device a command runs on, from its --device option, refused in one line where it cannot be used."""
from __future__ import annotations

import torch


def resolve_device(name: str | None) -> torch.device:
    """None or 'auto': the first CUDA GPU where torch sees one, else the CPU; otherwise 'cpu', 'cuda' or 'cuda:N',
    checked to exist (ValueError naming --device where not), so that a run never fails at its first tensor."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"--device {name}: hidd runs on cpu or cuda (cuda:N), not {device.type}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"--device {name}: torch sees no CUDA GPU on this machine; use --device cpu (or leave "
                         "--device out: cuda where there is one, else the CPU)")
    if device.index is not None and device.index >= count:
        raise ValueError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return device
