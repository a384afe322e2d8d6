"""The misfit whiteness test's error rates (hidd.misfit): how often a photo the sampler's model explains exactly reads
correlated (a false alarm), and how often a camera photo reads white (a miss).

The data step calls its calibration misfit y − A x̂₀ white noise where its lag-1 autocorrelation c is at or below
WHITE_CORRELATION, and correlated error (demosaicing, JPEG, a lens the PSF family cannot fit) at or above
CORRELATED_MISFIT (WHITE_PSF_CORRELATION for the blind PSF's softening), trusting the data more, and the result
wholly, the whiter it is. As a test of "the model explains this photo up to white noise":

- exact: sharp photos blurred by a disk in linear light with white noise on the encoded values, 8-bit (the camera
  benchmark's condition (a), `linear_disk_camera`): the model `fast` inverts, up to its blind estimates. Each
  threshold's false-alarm rate is the share of these photos whose c exceeds it;
- camera: the same photos through a random lens camera (`lens_camera`: lens shape, Poisson–Gaussian noise,
  demosaicing, JPEG 75–95; condition (b)): the share whose c stays at or below it is the threshold's miss rate.

Each photo is `square`-cropped to --size (as check_sharp.py), blurred at a radius drawn uniformly from --radii, and
deblurred with the default preset (`fast`) alone, its c read from the sampling (DeblurResult.misfit_correlation).
The same runs give the no-harm guard's false alarms: exact-model photos whose result had more than
sampler.max_noise_gain × the input's flat-patch noise, so that the guard backed off a deblurring whose model was
right.
Photos read in focus are not sampled (no c) and are counted apart. Rates come with their one-sided 95 %
Clopper–Pearson upper bound.

  python scripts/misfit_alarms.py --photos data/corpus/photos --output results/misfit_alarms
Writes OUTPUT/takes.csv (one row per take) and OUTPUT/summary.md.
"""
from __future__ import annotations

import argparse
import csv
import math
import random
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from check_sharp import crops, false_alarm_bound  # noqa: E402  (sibling script: the same crops and bound)
from hidd.camera.draws import lens_camera, linear_disk_camera  # noqa: E402
from hidd.cli import one_line_errors  # noqa: E402
from hidd.config import DEFAULT_PRESET  # noqa: E402
from hidd.deblur import Deblurrer  # noqa: E402
from hidd.misfit import CORRELATED_MISFIT, WHITE_CORRELATION, WHITE_PSF_CORRELATION  # noqa: E402
from hidd.prior import load_prior  # noqa: E402

THRESHOLDS = {"WHITE_CORRELATION": WHITE_CORRELATION, "WHITE_PSF_CORRELATION": WHITE_PSF_CORRELATION,
              "CORRELATED_MISFIT": CORRELATED_MISFIT}
EXACT_NOISE = 0.005  # the camera benchmark's condition (a): white noise std on the encoded values


def takes(photos: list[Path], size: int, radii: tuple[float, float], seed: int):
    """(photo, condition, radius, blurred (1, 3, S, S)) for each photo: its exact-model take, then its camera take,
    every draw from one seeded generator in photo order."""
    rng = random.Random(seed)
    for index, path in enumerate(photos):
        for _, crop in crops(path, [size]):
            for condition in ("exact", "camera"):
                radius = round(rng.uniform(*radii), 2)
                camera = linear_disk_camera(radius, EXACT_NOISE) if condition == "exact" else lens_camera(rng, radius)
                generator = torch.Generator().manual_seed(seed * 100_003 + 2 * index + (condition == "camera"))
                yield path.stem, condition, radius, camera.render(crop, generator=generator).float()


def summary(rows: list[dict]) -> list[dict]:
    """Per threshold: the exact photos' false alarms (c above it) and the camera photos' misses (c at or below)."""
    measured = {kind: [float(r["c"]) for r in rows if r["condition"] == kind and not math.isnan(float(r["c"]))]
                for kind in ("exact", "camera")}
    out = []
    for name, value in THRESHOLDS.items():
        alarms = sum(c > value for c in measured["exact"])
        misses = sum(c <= value for c in measured["camera"])
        n_exact, n_camera = len(measured["exact"]), len(measured["camera"])
        out.append({"threshold": name, "value": value,
                    "false_alarms": f"{alarms} of {n_exact}",
                    "false_alarm_bound": round(false_alarm_bound(alarms, n_exact), 3) if n_exact else math.nan,
                    "misses": f"{misses} of {n_camera}",
                    "miss_bound": round(false_alarm_bound(misses, n_camera), 3) if n_camera else math.nan})
    return out


def guard_alarms(rows: list[dict], limit: float) -> dict:
    """The no-harm guard on exact-model photos: those whose full result had more than `limit` × the input's
    flat-patch noise (sampler.max_noise_gain), so that the guard backed off a deblurring whose model was right."""
    gains = [float(r["noise_gain"]) for r in rows
             if r["condition"] == "exact" and not math.isnan(float(r["noise_gain"]))]
    alarms = sum(g > limit for g in gains)
    return {"limit": limit, "alarms": f"{alarms} of {len(gains)}",
            "bound": round(false_alarm_bound(alarms, len(gains)), 3) if gains else math.nan,
            "range": f"{min(gains):.2f}–{max(gains):.2f}" if gains else ""}


def markdown(rows: list[dict], table: list[dict], command: str, guard: dict | None = None) -> str:
    def spread(kind):
        values = sorted(float(r["c"]) for r in rows if r["condition"] == kind and not math.isnan(float(r["c"])))
        unsampled = sum(math.isnan(float(r["c"])) for r in rows if r["condition"] == kind)
        return (f"{len(values)} sampled, c {values[0]:.2f}–{values[-1]:.2f} (median {values[len(values) // 2]:.2f})"
                if values else "none sampled") + f", {unsampled} read in focus"
    lines = [f"    {command}", "", f"- exact-model photos: {spread('exact')}",
             f"- camera photos: {spread('camera')}", "",
             "| threshold | value | exact photos above (false alarms) | 95 % bound "
             "| camera photos at or below (misses) | 95 % bound |", "|---|---|---|---|---|---|"]
    lines += [f"| `{t['threshold']}` | {t['value']} | {t['false_alarms']} | {t['false_alarm_bound']} | {t['misses']} "
              f"| {t['miss_bound']} |" for t in table]
    if guard is not None:
        lines += ["", f"No-harm guard (`sampler.max_noise_gain` {guard['limit']:g}): exact-model photos whose "
                      f"result had more noise than that × the input's: {guard['alarms']} (95 % bound "
                      f"{guard['bound']}; noise gains {guard['range']})"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=Path, default=Path("data/corpus/photos"), help="a folder of in-focus photos")
    p.add_argument("--size", type=int, default=256, help="square crop side")
    p.add_argument("--radii", type=float, nargs=2, default=[2.0, 8.0], metavar=("LOW", "HIGH"),
                   help="the blur radius of each take, drawn uniformly from [LOW, HIGH] px")
    p.add_argument("--checkpoint", help="the prior (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (radius, camera, noise)")
    p.add_argument("--limit", type=int, help="only the first N photos (a quick look)")
    p.add_argument("--threads", type=int, help="torch intra-op threads; default: torch's choice")
    p.add_argument("--output", type=Path, default=Path("results/misfit_alarms"))
    args = p.parse_args(argv)
    with one_line_errors("misfit_alarms.py"):
        if not args.photos.is_dir():
            raise FileNotFoundError(f"--photos {args.photos}: no such folder")
        if not 0 < args.radii[0] <= args.radii[1]:
            raise ValueError(f"--radii {args.radii[0]:g} {args.radii[1]:g}: need 0 < LOW ≤ HIGH")
        if args.threads:
            torch.set_num_threads(args.threads)
        photos = sorted(q for q in args.photos.iterdir() if q.suffix.lower() == ".png")[:args.limit]
        if not photos:
            raise ValueError(f"--photos {args.photos}: no PNG photos")
        deblur = Deblurrer(load_prior(args.checkpoint, preset=DEFAULT_PRESET))
        rows = []
        for stem, condition, radius, blurred in tqdm(list(takes(photos, args.size, tuple(args.radii), args.seed)),
                                                     desc="takes"):
            result = deblur(blurred, seed=args.seed)
            c, gain = result.misfit_correlation, result.noise_gain
            rows.append({"photo": stem, "condition": condition, "radius": radius,
                         "c": float(c[0]) if c is not None else math.nan, "nfe": int(result.photo_nfe[0]),
                         "noise_gain": float(gain[0]) if gain is not None else math.nan,
                         "share": float(result.share[0]) if result.share is not None else math.nan,
                         "reason": result.reasons[0] if result.reasons else ""})
        args.output.mkdir(parents=True, exist_ok=True)
        with open(args.output / "takes.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        table = summary(rows)
        guard = guard_alarms(rows, deblur.prior.config.sampler.max_noise_gain)
        command = "python scripts/misfit_alarms.py " + " ".join(argv if argv is not None else sys.argv[1:])
        (args.output / "summary.md").write_text(markdown(rows, table, command, guard))
        print(markdown(rows, table, command, guard))


if __name__ == "__main__":
    main()
