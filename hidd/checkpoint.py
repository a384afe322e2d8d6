"""Checkpoints: atomic writes, weights-only loads, strict loads with a one-line explanation of any mismatch.

A checkpoint is loaded with torch.load(weights_only=True): the unpickler builds tensors and plain
data (dicts, lists, tuples, strings, numbers) and nothing else, so a file from someone else cannot
run code. Everything hidd stores (weights, optimizer state, RNG states, the config) is of those
types; a file that needs anything more is refused in one line that names what it asked for.

Safetensors would close the same hole for exported weights, but hidd's files also carry the config
and training state, which safetensors holds only as string metadata: a second format and loader for
no gain in safety over weights_only, and one more dependency.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import time
from pathlib import Path

import numpy as np
import torch

from hidd.atomic import atomic_write
from hidd.config import Config, ConfigError, from_dict


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, reported as one line."""


# Fault injection for the resume tests: a training run stops right after this step's checkpoint.
KILL_AT_STEP_ENV = "HIDD_FAULT_KILL_AT_STEP"


class RunExistsError(ValueError):
    """The work directory holds a run already (and --resume was not given), or holds none to resume."""


def latest_path(workdir: str | Path) -> Path:
    """A training run's rolling checkpoint, the one --resume continues from."""
    return Path(workdir) / "checkpoints" / "latest.pt"


def run_checkpoint(workdir: str | Path, resume: bool, init: str | Path | None = None) -> Path:
    """The rolling checkpoint of the run a training starts (resume false: none there yet) or continues (resume:
    there); RunExistsError otherwise, ValueError for a resume that is also given weights to start from (init)."""
    latest = latest_path(workdir)
    if latest.exists() and not resume:
        raise RunExistsError(f"{workdir}: holds a run already; pass --resume to continue it or pick another --workdir")
    if resume and not latest.exists():
        raise RunExistsError(f"{latest}: nothing to resume")
    if resume and init is not None:
        raise ValueError("init starts a new run from a checkpoint's weights; --resume continues this run: give one")
    return latest


def warm_start_record(init: str | Path, step: int, steps: int) -> dict:
    """The record a run started from checkpoint `init` (at its `step`) keeps in its checkpoints and TensorBoard
    ("warm_start"); ValueError in one line where that step is not below the run's training.steps."""
    if step >= steps:
        raise ValueError(f"{init}: is at step {step} already, training.steps is {steps}; raise it")
    return {"init": str(init), "step": int(step)}


def warm_start_text(record: dict) -> str:
    return f"weights of {record['init']} (step {record['step']})"


def run_limits(minutes: float) -> tuple[int, float]:
    """A training run's limits: the step after whose checkpoint a resume test stops it (KILL_AT_STEP_ENV; -1: none)
    and the time.monotonic() deadline `minutes` from now (inf for 0: none)."""
    kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "-1"))
    return kill_at, time.monotonic() + minutes * 60 if minutes > 0 else float("inf")


def save_atomic(obj, path: str | Path) -> None:
    """torch.save to a temp file in the same folder, then rename: a kill never leaves half a file."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def load(path: str | Path, map_location="cpu") -> dict:
    """A hidd checkpoint's contents, loaded weights-only: nothing in the file is ever executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # the weights-only unpickler met something that is not data
        raise CheckpointError(_refusal(path, str(e))) from None
    except Exception as e:  # corrupt or not a torch file: say so in one line
        detail = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {detail})") from None
    _check_layout(state, path)
    return state


def _refusal(path: Path, error: str) -> str:
    found = re.search(r"GLOBAL (\S+)", error)
    what = f"a Python object ({found.group(1)})" if found else "Python objects"
    line = (f"{path}: refused: it needs {what} beyond tensors and plain data, and loading that could run code; "
            "hidd loads weights-only checkpoints")
    if found and found.group(1).startswith("numpy"):  # RNG states as hidd stored them before weights-only loads
        line += (f" (an older hidd training checkpoint? if so, convert it: "
                 f"python scripts/upgrade_checkpoint.py {path} NEW.pt)")
    return line


def _is_weights(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _check_layout(state, path: Path) -> None:
    """The keys hidd reads: a config dict, and model weights or EMA weights (name → tensor)."""
    if not isinstance(state, dict) or "config" not in state or not ({"ema", "model"} & state.keys()):
        raise CheckpointError(f"{path}: not a hidd checkpoint (no config or weights inside)")
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"{path}: not a hidd checkpoint (its config is a {type(state['config']).__name__})")
    if "ema" in state and not (isinstance(state["ema"], dict) and _is_weights(state["ema"].get("weights"))):
        raise CheckpointError(f"{path}: not a hidd checkpoint (its 'ema' entry holds no weights)")
    if "model" in state and not _is_weights(state["model"]):
        raise CheckpointError(f"{path}: not a hidd checkpoint (its 'model' entry is not a set of weights)")


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
    """The global RNG states of torch, numpy and python, as tensors and plain types (weights-only loadable)."""
    numpy_state = np.random.get_state(legacy=False)  # a dict, rather than the legacy tuple
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]), "has_gauss": int(numpy_state["has_gauss"]),
                  "gauss": float(numpy_state["gauss"])},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() returned."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"].tolist()), python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
