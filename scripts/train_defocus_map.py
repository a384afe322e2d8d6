"""Train the learned blind defocus map (hidd.blind.map_net; the loop: hidd.map_train).

  python scripts/train_defocus_map.py --config defocus_map --workdir runs/defocus_map
  python scripts/train_defocus_map.py --workdir runs/defocus_map --resume        # continue after a kill
  python scripts/train_defocus_map.py --config defocus_map --workdir runs/m --set training.time_limit_minutes=40
  python scripts/train_defocus_map.py --config defocus_map --workdir runs/g --device cuda --set training.workers=14
  python scripts/train_defocus_map.py --config defocus_map --workdir runs/f --init checkpoints/defocus_map.pt \
      --set training.steps=8000 --set training.quantile=0.3   # go on from the shipped network (its quantile)
  cp runs/defocus_map/defocus_map.pt checkpoints/defocus_map.pt                    # ship it

Configs by name from configs/maps/ (or a YAML path). Scenes are rendered on the fly from data.photos minus
data.held_out. TensorBoard events under WORKDIR/tb; the exported network (weights and config, under 1 MB) is
WORKDIR/defocus_map.pt.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from hidd.cli import one_line_errors  # noqa: E402
from hidd.cli.train import stored_config, training_parser  # noqa: E402


def main(argv=None):
    p = training_parser("train_defocus_map.py", __doc__, "defocus_map (configs/maps/) or a YAML file")
    args = p.parse_args(argv)
    with one_line_errors("train_defocus_map.py", interrupted=f"continue the run with --workdir {args.workdir} "
                                                             "--resume, from its last checkpoint"):
        from hidd.devices import resolve_device
        from hidd.map_train import load_map_config, train_map

        stored = stored_config(args, "defocus_map or a YAML file")
        cfg = load_map_config(stored or args.config, args.overrides)
        if args.dry_run:
            print(cfg.to_yaml(), end="")
            return
        out = train_map(cfg, args.workdir, resume=args.resume, device=resolve_device(args.device), init=args.init)
        print(f"train_defocus_map.py: done; exported network {out}")


if __name__ == "__main__":
    main()
