"""`make demo`: deblur the bundled examples with the shipped checkpoint.

examples/blurred + examples/sharp are camera-made defocus pairs from public photos (hidd.camera: lens PSF,
Poisson–Gaussian noise, demosaicing, sRGB, JPEG; metrics are printed), one of them a scene whose defocus
varies with depth (an in-focus subject before a blurred background, its true radius map in
examples/radius_maps: its PSNR is also printed for the in-focus pixels, true radius < 1 px, and the defocused
ones); examples/real holds a real defocused photo with no sharp target. Both use the default `fast` preset.
Results, metrics.csv, side-by-side pictures (input | output [| target]) and a page showing them, index.html,
go to OUTPUT (the real photo's to OUTPUT/real).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from hidd.cli import ArgumentParser, one_line_errors
from hidd.cli.reconstruct import parser as reconstruct_parser
from hidd.imageio import read_image
from hidd.metrics import IN_FOCUS_RADIUS, region_psnr
from hidd.reconstruct import run
from hidd.results import INDEX, is_run_output

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--output", default="results/demo", help="folder for the results")
    p.add_argument("--preset", default="fast", help="sampler preset of the synthetic pairs")
    p.add_argument("--real-preset", default="fast", help="sampler preset of the real photo")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    args = p.parse_args(argv)
    out = Path(args.output)
    device = ["--device", args.device] if args.device else []
    jobs = [["--input", str(EXAMPLES / "blurred"), "--target", str(EXAMPLES / "sharp"), "--output", str(out),
             "--preset", args.preset, "--compare", *device],
            ["--input", str(EXAMPLES / "real"), "--output", str(out / "real"), "--preset", args.real_preset,
             "--compare", *device]]
    failures = []
    with one_line_errors("demo"):
        if is_run_output(out):  # the demo's own earlier results: a new run replaces them
            print(f"demo: replacing the earlier results in {out}")
            shutil.rmtree(out)
        for job in jobs:
            failures += run(reconstruct_parser().parse_args(job))
        print_regions(out)
    print(f"demo: open {out / INDEX} and {out / 'real' / INDEX} in a browser to compare (input | output | target)")
    if failures:
        raise SystemExit(f"demo: {len(failures)} input(s) failed (see the lines above)")


def print_regions(out: Path) -> None:
    """PSNR of each depth-varying example's in-focus and defocused pixels, its photo's → its result's."""
    lines = []
    for path in sorted((EXAMPLES / "radius_maps").glob("*.npy")):
        result = out / f"{path.stem}.png"
        if not result.is_file():
            continue
        radius_map = np.load(path)
        images = [read_image(p).pixels for p in (EXAMPLES / "blurred" / f"{path.stem}.png", result,
                                                  EXAMPLES / "sharp" / f"{path.stem}.png")]
        cells = [f"{region_psnr(images[0], images[2], radius_map, focus):.2f} → "
                 f"{region_psnr(images[1], images[2], radius_map, focus):.2f}" for focus in (True, False)]
        lines.append(f"{path.stem:<28} {cells[0]:>18} {cells[1]:>18}")
    if lines:
        head = f"{'depth-varying image':<28} {'PSNR in focus':>18} {'PSNR defocused':>18}"
        print(f"\nBy region (in focus: true radius < {IN_FOCUS_RADIUS:g} px), photo → result")
        print(f"{head}\n{'-' * len(head)}")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
