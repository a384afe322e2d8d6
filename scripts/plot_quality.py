"""PSNR and SSIM against network evaluations (NFE) from bench_quality.py runs, as one PNG.

  python scripts/plot_quality.py \
      --series "fast=results/bq_fast3,results/bq_fast6,results/bq_fast" \
      --series "paper sampler=results/bq_paper25,results/bq_paper100" \
      --baselines results/bq_baselines --images astronaut_r2 coffee_r5 --output docs/figures/quality_vs_nfe.png

Each --series is a curve: one point per bench_quality output folder (its per_image.csv averaged over
the selected images). --baselines folders give horizontal lines, one per method in them (NFE 0:
blurry input, oracle Wiener / Richardson–Lucy). Needs matplotlib (`pip install -e '.[plot]'`).
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from hidd.cli import one_line_errors


def read_rows(folder: Path, images: set[str] | None) -> list[dict]:
    path = folder / "per_image.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (a bench_quality.py --output folder was expected)")
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if not images or r["image"] in images]
    if not rows:
        raise ValueError(f"{path}: none of the selected images")
    if images and {r["image"] for r in rows} != images:
        raise ValueError(f"{path}: lacks image(s) {', '.join(sorted(images - {r['image'] for r in rows}))}")
    return rows


def mean_point(rows: list[dict]) -> tuple[float, float, float]:
    """(NFE, PSNR, SSIM) averaged over rows."""
    return tuple(float(np.mean([float(r[k]) for r in rows])) for k in ("nfe", "psnr", "ssim"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", action="append", default=[], metavar="LABEL=DIR[,DIR...]",
                   help="a curve: bench_quality output folders, one point each")
    p.add_argument("--baselines", nargs="*", type=Path, default=[], help="folders whose methods become horizontal lines")
    p.add_argument("--images", nargs="+", help="average over these images only (default: all)")
    p.add_argument("--title", default="Public defocus benchmark")
    p.add_argument("--output", type=Path, default=Path("docs/figures/quality_vs_nfe.png"))
    args = p.parse_args(argv)
    with one_line_errors("plot_quality"):
        images = set(args.images) if args.images else None
        curves, seen = {}, set()
        for spec in args.series:
            label, _, folders = spec.partition("=")
            if not folders:
                raise ValueError(f"--series {spec!r}: expected LABEL=DIR[,DIR...]")
            runs = [read_rows(Path(d), images) for d in folders.split(",")]
            for folder, rows in zip(folders.split(","), runs):
                if len({r["method"] for r in rows}) > 1:
                    raise ValueError(f"{folder}: holds several methods; a point of a series must be a run of one")
            seen.update(r["image"] for rows in runs for r in rows)
            curves[label] = np.array(sorted(mean_point(rows) for rows in runs))
        lines = defaultdict(list)
        for folder in args.baselines:
            for row in read_rows(folder, images):
                lines[row["method"]].append(row)
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.ticker import NullFormatter
        except ImportError:
            raise ImportError("matplotlib is needed for plots: pip install -e '.[plot]'") from None
        ticks = sorted({float(n) for points in curves.values() for n in points[:, 0]})
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for ax, column, name in ((axes[0], 1, "PSNR (dB)"), (axes[1], 2, "SSIM")):
            for label, points in curves.items():
                ax.plot(points[:, 0], points[:, column], "o-", label=label)
            for i, (label, rows) in enumerate(lines.items()):
                ax.axhline(mean_point(rows)[column], color=f"C{len(curves) + i}", ls="--", lw=1, label=label)
            ax.set_xscale("log")
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])  # the NFE actually run, not powers of ten
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("network evaluations per image (NFE)")
            ax.set_ylabel(name)
            ax.grid(True, which="both", alpha=0.3)
        fig.suptitle(f"{args.title} ({len(seen)} images)")
        axes[1].legend(fontsize=8, loc="lower right")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.output, dpi=110)
        print(f"plot_quality: {args.output}")


if __name__ == "__main__":
    main()
