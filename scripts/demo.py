"""`make demo`: deblur the bundled examples with the shipped checkpoint.

examples/blurred + examples/sharp are camera-made defocus pairs from public photos (hidd.camera: lens PSF,
Poisson–Gaussian noise, demosaicing, sRGB, JPEG; metrics are printed); examples/real holds a real
defocused photo with no sharp target. Both use the default `fast` preset. Results, metrics.csv,
side-by-side pictures (input | output [| target]) and a page showing them, index.html, go to OUTPUT
(the real photo's to OUTPUT/real).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from hidd.cli import ArgumentParser, one_line_errors
from hidd.cli.reconstruct import parser as reconstruct_parser
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
    print(f"demo: open {out / INDEX} and {out / 'real' / INDEX} in a browser to compare (input | output | target)")
    if failures:
        raise SystemExit(f"demo: {len(failures)} input(s) failed (see the lines above)")


if __name__ == "__main__":
    main()
