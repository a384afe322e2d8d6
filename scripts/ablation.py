"""Table 1 ablation: predictor only (P), + corrector (P+C), + data consistency (P+DC), and both (P+C+DC).

  python scripts/ablation.py --input blurred/ --target sharp/ --output results/ablation --checkpoint ckpt.pt
  python scripts/ablation.py --input data/DPDD --dataset dpdd --output results/ablation-dpdd --set sampler.num_steps=200

Runs hidd-reconstruct once per preset (ablation-p, ablation-pc, ablation-pdc, ablation-pcdc)
into OUTPUT/<preset>/, with the same seed and every other hidd-reconstruct option passed
through (--checkpoint, --set, --device, --seed, --batch-size, ...). Then prints the mean
PSNR, SSIM, NFE and seconds per image of each variant beside the paper's Table 1, and
writes them to OUTPUT/ablation.csv.

The paper's numbers were measured on the authors' self-captured set with their trained
model, so they show the expected ordering, not values to match on other data.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from hidd.cli import one_line_errors
from hidd.cli import reconstruct as reconstruct_cli

PROGRAM = "ablation"
# (Table 1 row, preset, paper PSNR, paper SSIM), in the paper's order.
VARIANTS = [
    ("P", "ablation-p", 11.17, 0.211),
    ("P+C", "ablation-pc", 13.37, 0.282),
    ("P+DC", "ablation-pdc", 26.79, 0.844),
    ("P+C+DC", "ablation-pcdc", 26.95, 0.865),
]
CSV_FIELDS = ["variant", "preset", "images", "psnr", "ssim", "nfe", "seconds", "paper_psnr", "paper_ssim"]


def parser() -> argparse.ArgumentParser:
    """hidd-reconstruct's options, with --output meaning the parent of the per-preset folders and no --preset."""
    p = argparse.ArgumentParser(prog="ablation.py", description=__doc__, parents=[reconstruct_cli.parser()],
                                conflict_handler="resolve", add_help=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, type=Path,
                   help="folder for one sub-folder per preset and ablation.csv (never the input folder)")
    p.add_argument("--preset", help=argparse.SUPPRESS)  # the presets are the point of the script
    return p


def summarise(metrics_csv: Path) -> dict:
    """Mean PSNR, SSIM and seconds per image, and the NFE, of one hidd-reconstruct run."""
    with open(metrics_csv, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["psnr"] != ""]
    if not rows:
        return {"images": 0, "psnr": float("nan"), "ssim": float("nan"), "nfe": 0, "seconds": float("nan")}
    mean = {key: float(np.mean([float(row[key]) for row in rows])) for key in ("psnr", "ssim", "seconds")}
    return {"images": len(rows), **mean, "nfe": int(rows[0]["nfe"])}


def table(results: list[dict]) -> str:
    head = (f"{'variant':<8} {'PSNR':>7} {'SSIM':>7} {'NFE':>7} {'sec/img':>9}   "
            f"{'paper PSNR':>10} {'paper SSIM':>10}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['variant']:<8} {r['psnr']:>7.2f} {r['ssim']:>7.3f} {r['nfe']:>7} {r['seconds']:>9.2f}   "
                     f"{r['paper_psnr']:>10.2f} {r['paper_ssim']:>10.3f}")
    lines.append("Paper values: the authors' self-captured set and trained model; "
                 "compare the ordering, not the numbers.")
    return "\n".join(lines)


def run_ablation(args) -> list[str]:
    """Reconstruct with each preset, write OUTPUT/ablation.csv, print the table; returns failed inputs."""
    from hidd.reconstruct import run  # heavy imports only when needed

    if args.target is None and args.dataset is None:
        raise ValueError("the ablation needs ground truth: give --target or --dataset")
    failures, results = [], []
    for variant, preset, paper_psnr, paper_ssim in VARIANTS:
        print(f"{PROGRAM}: {variant} ({preset})")
        preset_args = argparse.Namespace(**{**vars(args), "preset": preset, "output": args.output / preset})
        failures += [f"{preset}: {line}" for line in run(preset_args)]
        results.append({"variant": variant, "preset": preset, **summarise(args.output / preset / "metrics.csv"),
                        "paper_psnr": paper_psnr, "paper_ssim": paper_ssim})

    with open(args.output / "ablation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(results)
    print()
    print(table(results))
    print(f"{PROGRAM}: {args.output / 'ablation.csv'}")
    return failures


def main(argv=None) -> None:
    p = parser()
    args = p.parse_args(argv)
    if args.preset is not None:
        p.error("--preset: the ablation runs its four presets itself; use --config or --set for other settings")
    with one_line_errors(PROGRAM):
        failures = run_ablation(args)
    if failures:  # hidd-reconstruct printed each as it happened
        print(f"{PROGRAM}: {len(failures)} input(s) failed (see the lines above)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
