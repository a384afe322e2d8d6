"""Strip a training checkpoint down to what sampling needs: EMA weights (optionally fp16) and the config.

  python scripts/export_checkpoint.py runs/default/checkpoints/latest.pt checkpoints/hidd-default.pt --half
  python scripts/export_checkpoint.py runs/dncnn/checkpoints/latest.pt checkpoints/dncnn.pt

A learned baseline's checkpoint (hidd-train-baseline) keeps the weights of its restoring network only
(CycleGAN: the blurred → sharp generator), with its config and step.
"""
from __future__ import annotations

import argparse
import sys

from hidd import checkpoint


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="training checkpoint (latest.pt or ckpt_*.pt)")
    p.add_argument("dest", help="where to write the sampling checkpoint")
    p.add_argument("--half", action="store_true", help="store weights as float16 (half the size)")
    args = p.parse_args(argv)
    try:
        state = checkpoint.load(args.source)
    except checkpoint.CheckpointError as e:
        sys.exit(f"export_checkpoint: error: {e}")
    if "baseline" in state:
        from hidd.baselines.restore import export_state
        from hidd.config import ConfigError

        if state.get("restorer_only"):
            sys.exit(f"export_checkpoint: error: {args.source}: exported already (restorer weights only)")
        try:
            slim = export_state(state)
        except (checkpoint.CheckpointError, ConfigError, KeyError) as e:
            sys.exit(f"export_checkpoint: error: {args.source}: cannot be exported ({e})")
        checkpoint.save_atomic(slim, args.dest)
        print(f"export_checkpoint: {args.dest} ({state['baseline']}, step {state['step']}, "
              f"{sum(v.numel() for v in slim['model'].values()):,} values)")
        return
    weights = {k: (v.half() if args.half and v.is_floating_point() else v)
               for k, v in state["ema"]["weights"].items()}
    slim = {"ema": {"num_updates": state["ema"]["num_updates"], "weights": weights},
            "step": state["step"], "config": state["config"]}
    checkpoint.save_atomic(slim, args.dest)
    print(f"export_checkpoint: {args.dest} (step {state['step']}, {sum(v.numel() for v in weights.values()):,} values)")


if __name__ == "__main__":
    main()
