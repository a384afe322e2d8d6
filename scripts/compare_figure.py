"""A comparison grid like the paper's Figs. 2–3: every method's result, a zoomed crop and |x − gt| error map.

  python scripts/bench_quality.py --benchmark data/camera --methods blurred dncnn ffdnet cyclegan fast \
      --save-images --output results/compare
  python scripts/compare_figure.py results/compare --benchmark data/camera --images lens_coffee_1 \
      --methods dncnn ffdnet cyclegan fast --output docs/figures/comparison.png

Columns: the blurry input, each method (a sub-folder of RESULTS/images, written by bench_quality.py
--save-images) and the sharp target; per image three rows: the whole picture with the crop marked, the crop
enlarged, and the mean absolute error over channels (white: --error-max or more). Titles give each result's
PSNR / SSIM (hidd.metrics). Needs matplotlib (`pip install -e '.[plot]'`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hidd.cli import one_line_errors
from hidd.imageio import read_image
from hidd.metrics import psnr, ssim

TITLES = {"dncnn": "DnCNN", "ffdnet": "FFDNet", "cyclegan": "CycleGAN", "fast": "hidd fast", "paper": "hidd paper",
          "wiener": "Wiener (oracle)", "rl": "RL (oracle)"}


def parse_crop(text: str) -> tuple[float, float, float]:
    """'x,y,size' as fractions of the image (the crop's top-left corner and side)."""
    try:
        x, y, size = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: expected x,y,size, three numbers") from None
    if not (0 <= x and 0 <= y and 0 < size and x + size <= 1 and y + size <= 1):
        raise argparse.ArgumentTypeError(f"{text}: the box x,y,size must lie inside the image (fractions, x + size ≤ 1)")
    return x, y, size


def panels(results: Path, benchmark: Path, name: str, methods: list[str]) -> list[tuple[str, np.ndarray]]:
    """(title, image) per column for one benchmark image: input, methods, target."""
    sharp = read_image(benchmark / "sharp" / f"{name}.png").pixels
    columns = [("input", read_image(benchmark / "blurred" / f"{name}.png").pixels)]
    for method in methods:
        path = results / "images" / method / f"{name}.png"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (run bench_quality.py --save-images with method {method})")
        columns.append((TITLES.get(method, method), read_image(path).pixels))
    titled = [(f"{title}\n{psnr(image, sharp):.2f} dB / {ssim(image, sharp):.3f}", image) for title, image in columns]
    return titled + [("ground truth", sharp)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="a bench_quality.py --output folder written with --save-images")
    p.add_argument("--benchmark", type=Path, required=True, help="the benchmark it ran on (blurred/, sharp/)")
    p.add_argument("--images", nargs="+", required=True, help="benchmark image names, one block of rows each")
    p.add_argument("--methods", nargs="+", required=True, help="sub-folders of RESULTS/images, in column order")
    p.add_argument("--crop", type=parse_crop, default=(0.35, 0.3, 0.3), help="zoom box x,y,size as fractions")
    p.add_argument("--error-max", type=float, default=0.15, help="error shown white")
    p.add_argument("--dpi", type=int, default=80, help="resolution of the PNG")
    p.add_argument("--output", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    with one_line_errors("compare_figure"):
        try:
            import matplotlib
        except ImportError:
            raise ValueError("needs matplotlib: pip install -e '.[plot]'") from None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        blocks = [panels(args.results, args.benchmark, name, args.methods) for name in args.images]
        cols, rows = len(blocks[0]), 3 * len(blocks)
        fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows), squeeze=False)
        x, y, size = args.crop
        for b, columns in enumerate(blocks):
            sharp = columns[-1][1]
            h, w = sharp.shape[:2]
            top, left, side = int(y * h), int(x * w), max(8, int(size * min(h, w)))
            for c, (title, image) in enumerate(columns):
                whole, zoom, error = axes[3 * b, c], axes[3 * b + 1, c], axes[3 * b + 2, c]
                whole.imshow(np.clip(image, 0, 1))
                whole.add_patch(Rectangle((left, top), side, side, fill=False, edgecolor="yellow", linewidth=1))
                whole.set_title(title, fontsize=7)
                zoom.imshow(np.clip(image[top:top + side, left:left + side], 0, 1), interpolation="nearest")
                error.imshow(np.abs(image - sharp).mean(axis=2), cmap="gray", vmin=0, vmax=args.error_max)
            axes[3 * b, 0].set_ylabel(args.images[b], fontsize=7)
            axes[3 * b + 2, 0].set_ylabel(f"|x − gt| (white ≥ {args.error_max:g})", fontsize=6)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        args.output.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.output, dpi=args.dpi)
        print(f"compare_figure: {args.output}")


if __name__ == "__main__":
    main()
