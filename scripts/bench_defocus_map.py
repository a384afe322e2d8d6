"""How well the blind defocus map (hidd.blind.defocus_map) reads a photo's per-pixel blur, and how often it reads a
sharp photo as defocused.

  python scripts/bench_defocus_map.py --benchmark data/camera --output results/defocus_map/camera
  python scripts/bench_defocus_map.py --sharp data/corpus/photos --sizes 256 384 --output results/defocus_map/sharp

--benchmark: every pair with a true radius map (radius_maps/STEM.npy: the camera benchmark's (c) depth and (d)
subject, scripts/make_heldout.py's tilt and subject scenes). Per photo: the correlation of the map with the true
one, the mean absolute error (px), the share of the truly in-focus pixels (true radius < 1 px, hidd.metrics) read
as defocused (≥ FOCUS_RADIUS) and of the truly defocused ones (≥ 3 px) read in focus, and whether the map reads
as varying (DefocusMap.varies: both an in-focus and a defocused region, REGION_SHARE of the tiles each).
--sharp: in-focus photos, cropped as scripts/check_sharp.py crops them (their own target): the share of tiles
holding an edge that read ≥ FOCUS_RADIUS (the tiles' false-alarm rate), the share of pixels the map reads
defocused, and whether it reads as varying.
Writes OUTPUT/map.csv (row by row) and prints the means.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from hidd.blind.defocus_map import FOCUS_RADIUS, estimate_defocus_map, grey_noise_std  # noqa: E402
from hidd.blind.noise import estimate_nlf  # noqa: E402
from hidd.camera.tone import tone_curve  # noqa: E402
from hidd.cli import one_line_errors  # noqa: E402
from hidd.imageio import read_image, to_rgb  # noqa: E402
from hidd.metrics import IN_FOCUS_RADIUS  # noqa: E402

DEFOCUSED = 3.0  # px: a true radius from which a pixel must not read in focus


def read_map(photo: torch.Tensor, tone):
    """The defocus map of a photo (C, H, W) in [0, 1], its noise read blindly (hidd.blind.noise)."""
    photo = photo.double()
    noise = estimate_nlf(photo, tone)
    return estimate_defocus_map(tone.decode(photo), float(grey_noise_std(noise, photo[None])[0]))


def benchmark_rows(root: Path, tone):
    for path in tqdm(sorted((root / "radius_maps").glob("*.npy")), desc="maps"):
        stem = path.stem
        photo = torch.from_numpy(to_rgb(read_image(root / "blurred" / f"{stem}.png").pixels)).permute(2, 0, 1)
        found = read_map(photo, tone)
        true, read = np.load(path).astype(np.float64), found.radius.numpy().astype(np.float64)
        sharp, defocused = true < IN_FOCUS_RADIUS, true >= DEFOCUSED
        yield {"photo": stem, "correlation": float(np.corrcoef(read.ravel(), true.ravel())[0, 1]),
               "mae": float(np.abs(read - true).mean()),
               "sharp_read_defocused": float((read[sharp] >= FOCUS_RADIUS).mean()) if sharp.any() else float("nan"),
               "defocused_read_sharp": (float((read[defocused] < FOCUS_RADIUS).mean()) if defocused.any()
                                        else float("nan")),
               "varies": found.varies}


def sharp_rows(folder: Path, sizes: list[int], tone):
    from check_sharp import crops  # noqa: E402  (sibling script: the same crops)
    for path in tqdm(sorted(p for p in folder.iterdir() if p.is_file()), desc="sharp photos"):
        for size, crop in crops(path, sizes):
            found = read_map(crop[0], tone)
            tiles = found.tiles[np.isfinite(found.tiles)]
            yield {"photo": f"{path.stem}@{size}", "tiles": int(tiles.size),
                   "tiles_read_defocused": float((tiles >= FOCUS_RADIUS).mean()) if tiles.size else 0.0,
                   "pixels_read_defocused": float((found.radius >= FOCUS_RADIUS).float().mean()),
                   "varies": found.varies}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--benchmark", type=Path, help="a benchmark folder with radius_maps/ and blurred/")
    source.add_argument("--sharp", type=Path, help="a folder of in-focus photos")
    p.add_argument("--sizes", type=int, nargs="+", default=[256], help="--sharp: square crop sides")
    p.add_argument("--tone-curve", default="srgb", help="the photos' tone curve (hidd.camera.tone)")
    p.add_argument("--output", type=Path, default=Path("results/defocus_map"))
    args = p.parse_args(argv)
    tone = tone_curve(args.tone_curve)
    rows = benchmark_rows(args.benchmark, tone) if args.benchmark else sharp_rows(args.sharp, args.sizes, tone)
    args.output.mkdir(parents=True, exist_ok=True)
    kept = []
    with open(args.output / "map.csv", "w", newline="") as f:
        writer = None
        for row in rows:
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            f.flush()
            kept.append(row)
    for key in (kept[0] if kept else {}):
        if key != "photo":
            values = np.array([float(r[key]) for r in kept])
            print(f"{key}: mean {np.nanmean(values):.3f} (min {np.nanmin(values):.3f}, max {np.nanmax(values):.3f})")
    print(f"{len(kept)} photos; rows in {args.output / 'map.csv'}")


if __name__ == "__main__":
    with one_line_errors("bench_defocus_map.py"):
        main()
