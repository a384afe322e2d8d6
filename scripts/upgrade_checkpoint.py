"""Convert a training checkpoint written before hidd loaded checkpoints weights-only.

  python scripts/upgrade_checkpoint.py runs/x/checkpoints/latest.pt runs/x/checkpoints/latest-new.pt

Such files hold numpy's RNG state as a pickled numpy array, which hidd's weights-only loader refuses.
This script allows exactly numpy's array and dtype constructors (data, no code) on top of the
weights-only unpickler, stores the RNG states as tensors and plain types as hidd does now, and
writes a new file (the source is never touched). Move it over latest.pt to --resume the run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from hidd import checkpoint

# What a pickled numpy array needs: the array and dtype constructors, nothing that can call code.
NUMPY_ARRAY_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def upgraded_rng(rng: dict) -> dict:
    """RNG states in the current layout from the legacy one (numpy and python states as tuples)."""
    _, key, pos, has_gauss, gauss = rng["numpy"]
    version, internal, gauss_next = rng["python"]
    return {**rng,
            "numpy": {"key": torch.from_numpy(np.asarray(key).astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                       "gauss_next": gauss_next}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="the old training checkpoint")
    p.add_argument("dest", help="where to write the converted one (must not exist yet)")
    args = p.parse_args(argv)
    source, dest = Path(args.source), Path(args.dest)
    if not source.is_file():
        sys.exit(f"upgrade_checkpoint: error: {source}: checkpoint not found")
    if dest.exists():
        sys.exit(f"upgrade_checkpoint: error: {dest}: exists already; give a new file name")
    try:
        with torch.serialization.safe_globals(NUMPY_ARRAY_GLOBALS):
            state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:
        detail = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line), type(e).__name__)
        sys.exit(f"upgrade_checkpoint: error: {source}: cannot be converted safely ({detail[:200]})")
    if isinstance(state, dict) and isinstance(state.get("rng"), dict) and isinstance(state["rng"].get("numpy"), tuple):
        state["rng"] = upgraded_rng(state["rng"])
    checkpoint.save_atomic(state, dest)
    try:
        checkpoint.load(dest)  # the point of the exercise: it now loads weights-only
    except checkpoint.CheckpointError as e:
        dest.unlink()
        sys.exit(f"upgrade_checkpoint: error: {e}")
    print(f"upgrade_checkpoint: {dest} written; it loads weights-only")


if __name__ == "__main__":
    main()
