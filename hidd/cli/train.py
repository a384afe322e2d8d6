"""hidd-train: learn the score prior from sharp images.

  hidd-train --config tiny --workdir runs/tiny        # a smoke run on examples/train, about 20 s on 2 CPU cores
  hidd-train --config rgb256 --workdir runs/rgb --set training.batch_size=8 --set data.roots=[data/DPDD]
  hidd-train --workdir runs/tiny --resume            # continue after a kill or pre-emption
  hidd-train --config prior_s --workdir runs/s2 --init checkpoints/hidd-default.pt   # a new run from its weights
  torchrun --nproc_per_node=4 scripts/train.py --config rgb256 --workdir runs/rgb   # DDP
"""
from __future__ import annotations

import argparse
from pathlib import Path

from hidd.cli import ArgumentParser, one_line_errors
from hidd.config import ConfigError, load_config, resolve_config_path


def training_parser(prog: str, description: str, config_help: str) -> argparse.ArgumentParser:
    """The options every training command shares (hidd-train, hidd-train-baseline)."""
    p = ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", help=config_help)
    p.add_argument("--workdir", required=True, help="run folder: config, checkpoints, TensorBoard events")
    p.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoints/latest.pt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set training.steps=500")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start a new run from this checkpoint's weights (a training or an exported one of the same "
                        "network) and its step, with fresh optimisers: how a run continues from a checkpoint that "
                        "travelled (--resume needs the run's folder)")
    return p


def parser() -> argparse.ArgumentParser:
    return training_parser("hidd-train", __doc__, "YAML file or a name from configs/ (e.g. tiny, prior_s, rgb256)")


def stored_config(args, what: str) -> Path | None:
    """The config of the run in --workdir on --resume without --config; None when --config is given. ValueError in
    one line for a --workdir that cannot hold a run, or holds none to resume."""
    workdir = Path(args.workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"--workdir {args.workdir}: is a file, not a folder; give a folder for the run")
    from hidd.checkpoint import latest_path  # (torch: loaded inside one_line_errors, so Ctrl-C is one line)

    if args.resume and not latest_path(workdir).is_file():
        raise ValueError(f"--workdir {args.workdir}: no run to resume there (no checkpoints/latest.pt); start one "
                         f"with --config and without --resume")
    if args.config is not None:
        return None
    if args.resume:
        stored = workdir / "config.yaml"
        if not stored.is_file():
            raise ConfigError(f"--workdir {args.workdir}: its config.yaml is missing; give the run's --config")
        return stored
    raise ConfigError(f"--config is required to start a run ({what}); --resume continues the run in --workdir")


def check_start(args) -> None:
    """ValueError in one line where --init and --resume are both given."""
    if args.init is not None and args.resume:
        raise ValueError("--init starts a new run from a checkpoint's weights, --resume continues the run in "
                         "--workdir: give one of them")


def resolve(args):
    """The config of this run: on --resume without --config, the one stored in the work directory."""
    from hidd.settings import check_values  # (imports the samplers and networks whose names it checks)

    path = stored_config(args, "a YAML file or a name from configs/") or resolve_config_path(args.config)
    cfg = load_config(path, args.overrides)
    check_values(cfg)
    return cfg


def main(argv=None):
    args = parser().parse_args(argv)
    with one_line_errors("hidd-train", interrupted=f"continue the run with --workdir {args.workdir} --resume, from "
                                                   "its last checkpoint (saved every training.latest_every steps)"):
        cfg = resolve(args)
        if args.dry_run:
            print(cfg.to_yaml(), end="")
            return
        from hidd.devices import resolve_device

        device = resolve_device(args.device)
        from hidd.train import train  # heavy imports only when training

        check_start(args)
        result = train(cfg, args.workdir, resume=args.resume, device=str(device), init=args.init)
        print(f"hidd-train: done; latest checkpoint {result.latest}")


if __name__ == "__main__":
    main()
