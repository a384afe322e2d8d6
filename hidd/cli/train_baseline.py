"""hidd-train-baseline: train one of the paper's comparison networks (DnCNN, FFDNet, CycleGAN).

  hidd-train-baseline --config dncnn --workdir runs/dncnn
  hidd-train-baseline --config ffdnet --workdir runs/ffdnet --set training.time_limit_minutes=60
  hidd-train-baseline --config cyclegan --workdir runs/cyclegan --set degradation.model=srgb-disk
  hidd-train-baseline --workdir runs/dncnn --resume          # continue after a kill
  hidd-train-baseline --config dncnn --workdir runs/dncnn2 --init checkpoints/dncnn.pt   # from its weights
  python scripts/export_checkpoint.py runs/dncnn/checkpoints/latest.pt checkpoints/dncnn.pt   # ship it

Configs by name from configs/baselines/ (or a YAML path); pairs are synthesised on the fly from the sharp
images of data.roots with the camera model (degradation section). TensorBoard events under WORKDIR/tb.
"""
from __future__ import annotations

import argparse

from hidd.cli import one_line_errors
from hidd.cli.train import check_start, stored_config, training_parser


def parser() -> argparse.ArgumentParser:
    return training_parser("hidd-train-baseline", __doc__, "dncnn, ffdnet, cyclegan (configs/baselines/) or a YAML file")


def main(argv=None):
    args = parser().parse_args(argv)
    with one_line_errors("hidd-train-baseline", interrupted=f"continue the run with --workdir {args.workdir} "
                                                            "--resume, from its last checkpoint"):
        from hidd.baselines.config import load_baseline_config
        from hidd.devices import resolve_device
        from hidd.settings import check_values

        config = stored_config(args, "dncnn, ffdnet, cyclegan or a YAML file") or args.config
        cfg = load_baseline_config(config, args.overrides)
        check_values(cfg)
        if args.dry_run:
            print(cfg.to_yaml(), end="")
            return
        device = resolve_device(args.device)
        from hidd.baselines.train import train_baseline  # heavy imports only when training

        check_start(args)
        latest = train_baseline(cfg, args.workdir, resume=args.resume, device=str(device), init=args.init)
        print(f"hidd-train-baseline: done; latest checkpoint {latest}")


if __name__ == "__main__":
    main()
