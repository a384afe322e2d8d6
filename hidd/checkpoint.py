"""Checkpoints: atomic writes, strict loads with a one-line explanation of any mismatch."""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from hidd.config import Config, ConfigError, from_dict


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, reported as one line."""


def save_atomic(obj, path: str | Path) -> None:
    """torch.save to a temp file in the same folder, then rename: a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # corrupt or not a torch file: say so in one line
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or "config" not in state or not ({"ema", "model"} & state.keys()):
        raise CheckpointError(f"{path}: not a hidd checkpoint (no config or weights inside)")
    return state


def config_of(state: dict, path="checkpoint") -> Config:
    try:
        return from_dict(state["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: its stored config is invalid: {e}") from None


def _describe(names, limit=4) -> str:
    names = sorted(names)
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_weights_strict(module: torch.nn.Module, weights: dict, source: str) -> None:
    """load_state_dict(strict=True), but a mismatch is one line naming the keys and shapes that differ."""
    own = module.state_dict()
    missing = own.keys() - weights.keys()
    unexpected = weights.keys() - own.keys()
    shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
              for k in own.keys() & weights.keys() if weights[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe(unexpected)}")
        if shapes:
            parts.append(f"shape mismatch (checkpoint vs model): {_describe(shapes, 3)}")
        raise CheckpointError(f"{source}: does not match the model config; " + "; ".join(parts))
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in weights.items()}, strict=True)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
