"""Judge score priors without sampling: denoising PSNR across σ on the public test photos (hidd.denoise_eval).

  python scripts/eval_denoise.py checkpoints/hidd-default.pt
  python scripts/eval_denoise.py shipped=checkpoints/hidd-default.pt m=runs/prior_m/checkpoints/latest.pt \
      --device cuda --output results/denoise

Each CHECKPOINT is a path (a training checkpoint's EMA weights or an exported one) or LABEL=PATH. Prints a
markdown table (mean PSNR over the photos per σ, one row per checkpoint, the noisy input first) and, with
--per-photo, one table per checkpoint; with --output writes per_photo.csv, summary.csv, table.md and run.yaml.
"""
from __future__ import annotations

import argparse
import csv
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from hidd import checkpoint
from hidd.config import ConfigError
from hidd.denoise_eval import SIGMAS, SIZE, TEST_PHOTOS, denoise_psnr, noisy_psnr, public_photos
from hidd.prior import load_prior


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", metavar="[LABEL=]CHECKPOINT")
    p.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS), help="noise levels (photos in [0, 1])")
    p.add_argument("--size", type=int, default=SIZE, help="side of the test images (centre square, resized)")
    p.add_argument("--photos", nargs="+", default=list(TEST_PHOTOS), choices=TEST_PHOTOS, help="skimage.data photos")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (one draw per photo, shared by every σ)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast (CUDA)")
    p.add_argument("--batch", type=int, default=1, help="photos per network call")
    p.add_argument("--threads", type=int, help="torch CPU threads; default: torch's choice")
    p.add_argument("--per-photo", action="store_true", help="also print each checkpoint's per-photo table")
    p.add_argument("--output", type=Path, help="folder for per_photo.csv, summary.csv, table.md, run.yaml")
    args = p.parse_args(argv)
    if min(args.sigmas) <= 0:
        p.error("--sigmas must be positive")
    if args.size < 8 or args.batch < 1:
        p.error("--size must be >= 8 and --batch >= 1")
    return args


def labelled(spec: str) -> tuple[str, Path]:
    label, sep, path = spec.partition("=")
    return (label, Path(path)) if sep and label else (Path(spec).stem, Path(spec))


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sigma_cols = [f"σ = {s:g}" for s in args.sigmas]
    header = ["checkpoint", "parameters", "step", *sigma_cols]
    rows = [["noisy input", "–", "–", *(f"{noisy_psnr(s):.2f}" for s in args.sigmas)]]
    per_photo, summary, photo_tables = [], [], []
    images_by_channels = {}
    for spec in args.checkpoints:
        label, path = labelled(spec)
        prior = load_prior(path, device=device)
        channels = prior.config.model.channels
        if channels not in images_by_channels:
            images_by_channels[channels] = public_photos(args.size, channels, args.photos).to(device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16" else None
        table = denoise_psnr(prior.model, images_by_channels[channels], args.sigmas, seed=args.seed,
                             batch=args.batch, autocast=autocast)
        step = checkpoint.load(path).get("step", "–")
        params = sum(p.numel() for p in prior.model.parameters())  # (frozen for sampling: all of them)
        mean = table.mean(axis=0)
        rows.append([label, f"{params:,}", str(step), *(f"{v:.2f}" for v in mean)])
        summary.append({"checkpoint": label, "path": str(path), "parameters": params, "step": step,
                        **{f"sigma_{s:g}": round(float(v), 4) for s, v in zip(args.sigmas, mean)}})
        for name, values in zip(args.photos, table):
            per_photo.append({"checkpoint": label, "photo": name,
                              **{f"sigma_{s:g}": round(float(v), 4) for s, v in zip(args.sigmas, values)}})
        photo_rows = [[name, *(f"{v:.2f}" for v in values)] for name, values in zip(args.photos, table)]
        photo_tables.append((label, markdown(["photo", *sigma_cols], photo_rows)))
    text = markdown(header, rows)
    print(f"Denoising PSNR (dB), mean of {len(args.photos)} test photos ({', '.join(args.photos)}), "
          f"{args.size}², noise seed {args.seed}, {args.precision}:\n")
    print(text)
    if args.per_photo:
        for label, table in photo_tables:
            print(f"\n{label}:\n\n{table}")
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        for name, records in (("per_photo.csv", per_photo), ("summary.csv", summary)):
            with open(args.output / name, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(records[0]))
                writer.writeheader()
                writer.writerows(records)
        photo_text = "".join(f"\n{label}:\n\n{table}\n" for label, table in photo_tables)
        (args.output / "table.md").write_text(text + "\n" + photo_text)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
        run = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        run.update(machine=name, torch=str(torch.__version__),
                   date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        (args.output / "run.yaml").write_text(yaml.safe_dump(run, sort_keys=False, allow_unicode=True))


if __name__ == "__main__":
    try:
        main()
    except (checkpoint.CheckpointError, ConfigError, OSError, ValueError) as err:
        sys.exit(f"eval_denoise: error: {err}")
