"""hidd-train: learn the score prior from sharp images.

  hidd-train --config tiny --workdir runs/tiny
  hidd-train --config rgb256 --workdir runs/rgb --set training.batch_size=8 --set data.roots=[data/DPDD]
  hidd-train --workdir runs/tiny --resume            # continue after a kill or pre-emption
  torchrun --nproc_per_node=4 scripts/train.py --config rgb256 --workdir runs/rgb   # DDP
"""
from __future__ import annotations

import argparse
from pathlib import Path

from hidd.cli import one_line_errors
from hidd.config import ConfigError, load_config, resolve_config_path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hidd-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file or a name from configs/ (e.g. tiny, rgb256, paper_gray256)")
    p.add_argument("--workdir", required=True, help="run folder: config, checkpoints, TensorBoard events")
    p.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoints/latest.pt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set training.steps=500")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    return p


def resolve(args):
    """The config of this run: on --resume without --config, the one stored in the work directory."""
    path = args.config
    if path is None:
        stored = Path(args.workdir) / "config.yaml"
        if args.resume and stored.is_file():
            path = stored
        else:
            raise ConfigError("--config is required (a YAML file or a name from configs/)")
    else:
        path = resolve_config_path(path)
    return load_config(path, args.overrides)


def main(argv=None):
    args = parser().parse_args(argv)
    with one_line_errors("hidd-train"):
        cfg = resolve(args)
        if args.dry_run:
            print(cfg.to_yaml(), end="")
            return
        from hidd.train import train  # heavy imports only when training

        result = train(cfg, args.workdir, resume=args.resume, device=args.device)
        print(f"hidd-train: done; latest checkpoint {result.latest}")


if __name__ == "__main__":
    main()
