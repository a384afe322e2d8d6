"""PSNR and SSIM of deblurred results against their sharp targets (the DPDD leaderboard convention).

  python scripts/evaluate.py results/dpdd --target data/DPDD/test_c/target
  python scripts/evaluate.py results/run1 --target sharp/ --error-maps results/run1-errors --profile y=120

Results and targets are matched by file stem (sub-folders included), so every image in
RESULT needs a target; keep other images (e.g. hidd-reconstruct's --save-every iterates)
out of it. Metrics are hidd.metrics: skimage's PSNR and SSIM on RGB, data_range 1, no
border crop.

Writes a per-image CSV (name, psnr, ssim) ending in a `mean` row (default
RESULT/evaluation.csv), the settings used beside it (same name, .yaml) and prints a table.
  --error-maps DIR   |result − target| per pixel (mean over channels), divided by
                     --error-max and clipped, as DIR/NAME.png (paper Fig. 3). Coloured with
                     matplotlib's --colormap when matplotlib is installed (it is not a hidd
                     dependency); otherwise, or with --colormap gray, grayscale: white is an
                     error of --error-max or more.
  --profile LINE     the pixel values of result and target along row y=ROW (a bare number is
                     a row) or column x=COL, as profiles/NAME_yROW.csv beside the CSV (paper's
                     pixel profiles).
A bad or mismatched pair is reported in one line and skipped; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from hidd.cli import ArgumentParser, one_line_errors
from hidd.imageio import ImageError, read_image, write_image
from hidd.metrics import psnr, ssim
from hidd.paired import Pair, find_pairs
from hidd.results import COMPARE, ITERATES, TB, is_run_output

PROGRAM = "evaluate"


@dataclass(frozen=True)
class Line:
    """A row (axis 'y') or column (axis 'x') of an image."""

    axis: str
    index: int

    def __str__(self) -> str:  # as in the profile file names: 'y120'
        return f"{self.axis}{self.index}"


def parse_line(text: str) -> Line:
    """'120' or 'y=120' → row 120; 'x=64' → column 64 (argparse type)."""
    axis, _, number = text.rpartition("=")
    axis = axis.strip().lower() or "y"
    if axis not in ("x", "y") or not number.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROW, y=ROW or x=COL with a non-negative integer")
    return Line(axis, int(number))


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="evaluate.py", description=__doc__)
    p.add_argument("result", type=Path, help="folder (or file) of deblurred images")
    p.add_argument("--target", type=Path, required=True, help="folder (or file) of sharp images, matched by stem")
    p.add_argument("--csv", type=Path, help="per-image CSV to write (default: RESULT/evaluation.csv)")
    p.add_argument("--error-maps", type=Path, metavar="DIR", help="write |result − target| heat maps here")
    p.add_argument("--error-max", type=float, default=0.25,
                   help="error shown at full scale in the heat maps (default 0.25; larger errors saturate)")
    p.add_argument("--colormap", default="jet",
                   help="matplotlib colormap of the heat maps (default jet); 'gray' for grayscale")
    p.add_argument("--profile", type=parse_line, metavar="LINE",
                   help="write pixel profiles along row ROW / y=ROW or column x=COL")
    return p


def error_colours(colormap: str):
    """A function from errors scaled to [0, 1] (H×W) to an H×W×C image, and the colormap it uses.

    matplotlib is optional, so without it the maps fall back to grayscale.
    """
    gray = (lambda scaled: scaled), "gray"
    if colormap == "gray":
        return gray
    try:
        import matplotlib
    except ImportError:
        tqdm.write(f"{PROGRAM}: matplotlib is not installed; writing grayscale error maps")
        return gray
    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(f"--colormap {colormap}: not a matplotlib colormap") from None
    return (lambda scaled: cmap(scaled)[..., :3]), colormap


def error_map(result: np.ndarray, target: np.ndarray, error_max: float) -> np.ndarray:
    """Mean absolute error over channels (H×W), scaled so that error_max is 1, clipped to [0, 1]."""
    return np.clip(np.abs(result - target).mean(axis=2) / error_max, 0.0, 1.0)


def write_profile(path: Path, line: Line, result: np.ndarray, target: np.ndarray) -> None:
    """CSV of result and target values along `line`: position, then one column per image and channel."""
    result_line = result[line.index] if line.axis == "y" else result[:, line.index]
    target_line = target[line.index] if line.axis == "y" else target[:, line.index]
    channels = ["r", "g", "b"] if result.shape[2] == 3 else ["gray"]
    position = "x" if line.axis == "y" else "y"  # along a row the position is the column, and vice versa
    header = [position] + [f"{image}_{c}" for image in ("result", "target") for c in channels]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, (r, t) in enumerate(zip(result_line, target_line)):
            writer.writerow([i] + [f"{v:.6f}" for v in (*r, *t)])


def not_results(result_folder: Path, error_maps: Path | None) -> list[Path]:
    """The folders under RESULT that hold no results: --error-maps and the error maps of an earlier evaluation of it
    (its evaluation.yaml names them), and hidd-reconstruct's side folders."""
    folders = [error_maps] if error_maps else []
    earlier = result_folder / "evaluation.yaml"
    if earlier.is_file():
        try:
            named = (yaml.safe_load(earlier.read_text(encoding="utf-8")) or {}).get("error_maps")
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
            named = None
        folders += [Path(named)] if named else []
    if is_run_output(result_folder):  # a hidd-reconstruct output folder
        folders += [result_folder / name for name in (COMPARE, ITERATES, TB)]
    return folders


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Result and target pixels; ImageError (one line, naming the file) if unreadable or of different sizes."""
    # find_pairs names the side being scored 'blurred': here it is the deblurred result.
    result = read_image(pair.blurred).pixels
    target = read_image(pair.sharp).pixels
    if result.shape != target.shape:
        h, w, c = result.shape
        th, tw, tc = target.shape
        raise ImageError(pair.blurred, f"is {w}x{h}x{c} but its target {pair.sharp} is {tw}x{th}x{tc}")
    return result, target


def check_line(pair: Pair, line: Line, shape: tuple[int, ...]) -> None:
    """ImageError naming the result if `line` lies outside an image of this shape."""
    size = shape[0] if line.axis == "y" else shape[1]
    if line.index >= size:
        dimension = "high" if line.axis == "y" else "wide"
        raise ImageError(pair.blurred,
                         f"--profile {line.axis}={line.index} is outside the {size}-pixel-{dimension} image")


def table(rows: list[dict]) -> str:
    """The per-image rows, then the mean row (the last one) under a rule."""
    def line(row):
        return f"{row['name'][:32]:<32} {row['psnr']:>8.2f} {row['ssim']:>7.4f}"

    rule = "-" * 49
    return "\n".join([f"{'image':<32} {'PSNR':>8} {'SSIM':>7}", rule, *map(line, rows[:-1]), rule, line(rows[-1])])


def evaluate(args) -> list[str]:
    """Score every pair, write the outputs; returns the failures, one line each."""
    if args.error_max <= 0:
        raise ValueError(f"--error-max {args.error_max}: must be positive")
    result_folder = args.result if args.result.is_dir() else args.result.parent
    if args.error_maps and args.error_maps.resolve() == result_folder.resolve():
        raise ValueError(f"--error-maps {args.error_maps}: is the result folder itself, where the maps would mix "
                         "with the results; choose a folder inside it or elsewhere")
    left_out = {folder.resolve() for folder in not_results(result_folder, args.error_maps)}
    pairs = find_pairs(args.result, target=args.target, exclude=lambda folder: folder.resolve() in left_out)
    csv_path = args.csv or result_folder / "evaluation.csv"
    colour, colormap_used = error_colours(args.colormap) if args.error_maps else (None, None)

    rows, failures = [], []
    for pair in tqdm(pairs, desc="evaluate", unit="img", dynamic_ncols=True):
        try:
            result, target = read_pair(pair)
            if args.profile:
                check_line(pair, args.profile, result.shape)
        except ImageError as e:
            failures.append(str(e))
            tqdm.write(f"{PROGRAM}: skipped {e}")
            continue
        with np.errstate(divide="ignore"):  # identical images: PSNR is inf, which is the right answer
            rows.append({"name": pair.name, "psnr": psnr(result, target), "ssim": ssim(result, target)})
        if args.error_maps:
            write_image(args.error_maps / f"{pair.name}.png", colour(error_map(result, target, args.error_max)))
        if args.profile:
            write_profile(csv_path.parent / "profiles" / f"{pair.name}_{args.profile}.csv", args.profile,
                          result, target)

    scored = len(rows)
    if rows:
        rows.append({"name": "mean", **{k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim")}})
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "psnr", "ssim"])
        writer.writerows([r["name"], f"{r['psnr']:.6f}", f"{r['ssim']:.6f}"] for r in rows)
    settings = {
        "result": str(args.result), "target": str(args.target), "csv": str(csv_path),
        "metrics": "hidd.metrics (skimage PSNR/SSIM, RGB, data_range 1, no border crop)",
        "error_maps": str(args.error_maps.resolve()) if args.error_maps else None,  # (not read as results next time)
        "error_max": args.error_max, "colormap": colormap_used,
        "profile": str(args.profile) if args.profile else None,
        "images": scored, "failed": len(failures),
    }
    csv_path.with_suffix(".yaml").write_text(yaml.safe_dump(settings, sort_keys=False))

    if rows:
        print(table(rows))
    print(f"{PROGRAM}: {scored} image(s) scored; {csv_path}")
    return failures


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    with one_line_errors(PROGRAM):
        failures = evaluate(args)
    if failures:
        print(f"{PROGRAM}: {len(failures)} pair(s) failed:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
