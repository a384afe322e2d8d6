"""hidd-train-baseline: train one of the paper's comparison networks (DnCNN, FFDNet, CycleGAN).

  hidd-train-baseline --config dncnn --workdir runs/dncnn
  hidd-train-baseline --config ffdnet --workdir runs/ffdnet --set training.time_limit_minutes=60
  hidd-train-baseline --config cyclegan --workdir runs/cyclegan --set degradation.model=srgb-disk
  hidd-train-baseline --workdir runs/dncnn --resume          # continue after a kill
  python scripts/export_checkpoint.py runs/dncnn/checkpoints/latest.pt checkpoints/dncnn.pt   # ship it

Configs by name from configs/baselines/ (or a YAML path); pairs are synthesised on the fly from the sharp
images of data.roots with the camera model (degradation section). TensorBoard events under WORKDIR/tb.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from hidd.cli import one_line_errors
from hidd.config import ConfigError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hidd-train-baseline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="dncnn, ffdnet, cyclegan (configs/baselines/) or a YAML file")
    p.add_argument("--workdir", required=True, help="run folder: config, checkpoints, TensorBoard events")
    p.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoints/latest.pt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set training.steps=500")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    with one_line_errors("hidd-train-baseline"):
        from hidd.baselines.config import load_baseline_config

        config = args.config
        if config is None:
            stored = Path(args.workdir) / "config.yaml"
            if not (args.resume and stored.is_file()):
                raise ConfigError("--config is required (dncnn, ffdnet, cyclegan or a YAML file)")
            config = stored
        cfg = load_baseline_config(config, args.overrides)
        if args.dry_run:
            print(cfg.to_yaml(), end="")
            return
        from hidd.baselines.train import train_baseline  # heavy imports only when training

        latest = train_baseline(cfg, args.workdir, resume=args.resume, device=args.device)
        print(f"hidd-train-baseline: done; latest checkpoint {latest}")


if __name__ == "__main__":
    main()
