"""How well a blind defocus map (hidd.blind.map_estimators: edges or learned) reads a photo's per-pixel blur, and how
often it reads a sharp photo as defocused.

  python scripts/bench_defocus_map.py --benchmark data/camera --output results/defocus_map/camera
  python scripts/bench_defocus_map.py --sharp data/corpus/photos --sizes 256 384 --output results/defocus_map/sharp
  python scripts/bench_defocus_map.py --estimator learned --benchmark data/camera --output results/defocus_map/l_cam
  python scripts/bench_defocus_map.py --estimator learned --sharp data/corpus/photos --held-out --in-focus-camera \
      --sizes 256 384 --output results/defocus_map/l_sharp_cam

--benchmark: every pair with a true radius map (radius_maps/STEM.npy: the camera benchmark's (c) depth and (d)
subject, scripts/make_heldout.py's tilt and subject scenes). Per photo: the correlation of the map with the true
one, the mean absolute error (px) and its two sides, the mean over-reading max(read − true, 0) and under-reading
(px; over-reading is what costs a deblurring most: docs/BENCHMARKS.md), the mean absolute error in the photo's
textured half and in the rest (hidd.blind.texture on its linear grey: the textured half is where the map's error
costs the most, docs/BENCHMARKS.md), the share of the truly in-focus pixels
(true radius < 1 px, hidd.metrics) read as defocused (≥ FOCUS_RADIUS) and of the truly defocused ones (≥ 3 px)
read in focus, and whether the map reads as varying (`reads_varying`: both an in-focus and a defocused region,
REGION_SHARE of the tiles each; a report, no decision of any preset).
--sharp: in-focus photos, cropped as scripts/check_sharp.py crops them (their own target): the share of tiles
holding an edge that read ≥ FOCUS_RADIUS (the tiles' false-alarm rate; for the learned map, whose tiles are its
mean over each tile, of all tiles), the share of pixels the map reads defocused, and whether it reads as varying.
--held-out keeps only the learned map's held-out training photos (hidd.map_train.HELD_OUT);
--in-focus-camera first takes each crop's picture with an in-focus lens camera (hidd.camera.draws.lens_camera at
radius 0: softening 0.3–1 px, noise, demosaicing, JPEG; drawn from a generator seeded by the crop's name).
Writes OUTPUT/map.csv (row by row) and prints the means.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from hidd.blind.defocus_map import FOCUS_RADIUS, TILE, grey_noise_std  # noqa: E402
from hidd.blind.map_estimators import MAP_ESTIMATORS, map_estimator  # noqa: E402
from hidd.map_train import HELD_OUT  # noqa: E402
from hidd.blind.noise import estimate_nlf  # noqa: E402
from hidd.blind.texture import textured  # noqa: E402
from hidd.camera.draws import lens_camera  # noqa: E402
from hidd.camera.tone import tone_curve  # noqa: E402
from hidd.cli import one_line_errors  # noqa: E402
from hidd.imageio import read_image, to_rgb  # noqa: E402
from hidd.metrics import IN_FOCUS_RADIUS  # noqa: E402

DEFOCUSED = 3.0  # px: a true radius from which a pixel must not read in focus
REGION_SHARE = 0.25  # of the tiles read, each of an in-focus and a defocused region for a map to read as varying


def reads_varying(found) -> bool:
    """Whether a DefocusMap holds both an in-focus and a defocused region that no single blur explains: at least
    REGION_SHARE of the tiles read hold an edge in focus, and as many read twice FOCUS_RADIUS or more (a uniform
    blur of r reads r ± a quarter; the sky of a uniformly blurred photo reads in focus)."""
    read = found.tiles[np.isfinite(found.tiles)]
    if not read.size:
        return False
    return bool(np.mean(read < FOCUS_RADIUS) >= REGION_SHARE and np.mean(read >= 2 * FOCUS_RADIUS) >= REGION_SHARE)


def read_map(photo: torch.Tensor, tone, estimator):
    """The defocus map of a photo (C, H, W) in [0, 1], its noise read blindly (hidd.blind.noise)."""
    photo = photo.double()
    noise = estimate_nlf(photo, tone)
    return estimator(photo, tone.decode(photo), float(grey_noise_std(noise, photo[None])[0]), TILE)


def benchmark_rows(root: Path, tone, estimator):
    for path in tqdm(sorted((root / "radius_maps").glob("*.npy")), desc="maps"):
        stem = path.stem
        photo = torch.from_numpy(to_rgb(read_image(root / "blurred" / f"{stem}.png").pixels)).permute(2, 0, 1)
        found = read_map(photo, tone, estimator)
        true, read = np.load(path).astype(np.float64), found.radius.numpy().astype(np.float64)
        sharp, defocused = true < IN_FOCUS_RADIUS, true >= DEFOCUSED
        texture = textured(tone.decode(photo.double()).mean(0)).numpy()
        error = np.abs(read - true)
        yield {"photo": stem, "correlation": float(np.corrcoef(read.ravel(), true.ravel())[0, 1]),
               "mae": float(error.mean()),
               "over": float(np.maximum(read - true, 0).mean()), "under": float(np.maximum(true - read, 0).mean()),
               "mae_textured": float(error[texture].mean()) if texture.any() else float("nan"),
               "mae_flat": float(error[~texture].mean()) if not texture.all() else float("nan"),
               "sharp_read_defocused": float((read[sharp] >= FOCUS_RADIUS).mean()) if sharp.any() else float("nan"),
               "defocused_read_sharp": (float((read[defocused] < FOCUS_RADIUS).mean()) if defocused.any()
                                        else float("nan")),
               "varies": reads_varying(found)}


def sharp_rows(folder: Path, sizes: list[int], tone, estimator, stems=None, in_focus_camera: bool = False):
    from check_sharp import crops  # noqa: E402  (sibling script: the same crops)
    paths = sorted(p for p in folder.iterdir() if p.is_file() and (stems is None or p.stem in stems))
    missing = sorted(set(stems or ()) - {p.stem for p in paths})
    if missing:
        raise ValueError(f"{folder}: no photo named {', '.join(missing)}")
    for path in tqdm(paths, desc="sharp photos"):
        for size, crop in crops(path, sizes):
            if in_focus_camera:
                rng = random.Random(f"{path.stem}@{size}")
                crop = lens_camera(rng, 0.0).render(crop, generator=torch.Generator().manual_seed(rng.randrange(2**63)))
            found = read_map(crop[0], tone, estimator)
            tiles = found.tiles[np.isfinite(found.tiles)]
            yield {"photo": f"{path.stem}@{size}", "tiles": int(tiles.size),
                   "tiles_read_defocused": float((tiles >= FOCUS_RADIUS).mean()) if tiles.size else 0.0,
                   "pixels_read_defocused": float((found.radius >= FOCUS_RADIUS).float().mean()),
                   "varies": reads_varying(found)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--benchmark", type=Path, help="a benchmark folder with radius_maps/ and blurred/")
    source.add_argument("--sharp", type=Path, help="a folder of in-focus photos")
    p.add_argument("--sizes", type=int, nargs="+", help="--sharp: square crop sides (default 256)")
    p.add_argument("--tone-curve", default="srgb", help="the photos' tone curve (hidd.camera.tone)")
    p.add_argument("--estimator", default="edges", choices=MAP_ESTIMATORS.names(), help="which map")
    p.add_argument("--checkpoint", type=Path, default=None, help="learned: the network (default checkpoints/)")
    p.add_argument("--held-out", action="store_true", help="--sharp: only the learned map's held-out photos")
    p.add_argument("--in-focus-camera", action="store_true", help="--sharp: through an in-focus lens camera first")
    p.add_argument("--threads", type=int, help="torch intra-op threads (CPU); default: torch's choice")
    p.add_argument("--output", type=Path, default=Path("results/defocus_map"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tone = tone_curve(args.tone_curve)
    if args.checkpoint and args.estimator != "learned":
        raise ValueError("--checkpoint is the learned map's network: give --estimator learned")
    if args.benchmark and (args.held_out or args.in_focus_camera or args.sizes):
        raise ValueError("--sizes, --held-out and --in-focus-camera crop, choose and take sharp photos: give them "
                         "with --sharp")
    estimator = map_estimator(args.estimator, str(args.checkpoint or ""))
    rows = (benchmark_rows(args.benchmark, tone, estimator) if args.benchmark else
            sharp_rows(args.sharp, args.sizes or [256], tone, estimator, HELD_OUT if args.held_out else None,
                       args.in_focus_camera))
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
