"""`make demo`: deblur the bundled examples with the shipped checkpoint.

examples/blurred + examples/sharp are camera-made defocus pairs from public photos (hidd.camera: lens PSF,
Poisson–Gaussian noise, demosaicing, sRGB, JPEG; metrics are printed); examples/real holds a real
defocused photo with no sharp target. Both use the default `fast` preset. Results, metrics.csv
and one side-by-side PNG per image (input | output [| target]) go to OUTPUT.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hidd.cli import one_line_errors
from hidd.cli.reconstruct import parser as reconstruct_parser
from hidd.imageio import read_image, write_image
from hidd.reconstruct import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GAP = 4  # white pixels between panels


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    h = panels[0].shape[0]
    gap = np.ones((h, GAP, 3), np.float32)
    row = [p if p.shape[2] == 3 else np.repeat(p, 3, axis=2) for p in panels]
    return np.concatenate([x for p in row for x in (p, gap)][:-1], axis=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="results/demo")
    p.add_argument("--preset", default="fast", help="sampler preset of the synthetic pairs (default: fast)")
    p.add_argument("--real-preset", default="fast", help="sampler preset of the real photo (default: fast)")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    out = Path(args.output)
    device = ["--device", args.device] if args.device else []
    jobs = [(["--input", str(EXAMPLES / "blurred"), "--target", str(EXAMPLES / "sharp"), "--output", str(out),
              "--preset", args.preset, *device], True),
            (["--input", str(EXAMPLES / "real"), "--output", str(out / "real"), "--preset", args.real_preset, *device],
             False)]
    failures = []
    with one_line_errors("demo"):
        for job, paired in jobs:
            failures += run(reconstruct_parser().parse_args(job))
            folder = Path(job[job.index("--output") + 1])
            for blurred in sorted(Path(job[1]).glob("*.png")):
                panels = [read_image(blurred).pixels, read_image(folder / blurred.name).pixels]
                if paired:
                    panels.append(read_image(EXAMPLES / "sharp" / blurred.name).pixels)
                write_image(out / f"compare_{blurred.stem}.png", side_by_side(panels))
    print(f"demo: side-by-side pictures (input | output | target where one exists) in {out}/compare_*.png")
    if failures:
        raise SystemExit(f"demo: {len(failures)} input(s) failed (see the lines above)")


if __name__ == "__main__":
    main()
