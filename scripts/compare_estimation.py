"""Do the blind estimate's decisions move? Record them for folders of photos, and compare two records.

  python scripts/compare_estimation.py record data/camera/blurred data/benchmark/blurred --output now.json
  python scripts/compare_estimation.py record ... --deblur-every 6 --output now.json  # the guard every 6th
  python scripts/compare_estimation.py compare before.json now.json
  python scripts/compare_estimation.py time --device cuda --sizes 256x256:64 1680x1120:1

`record` runs stage 1 of a deblur (hidd.stages.estimate: colour test, blind PSF, noise level) with the given preset
on each photo alone and writes, per photo, its radius, softening, whether the radius sits at the top of the search
(at_bound), the share a half-trusted blur allows (max_share), the in-focus verdict, the colour verdict, the photo's
flat-patch noise and the operator's noise level. With --deblur-every K it also deblurs every K-th photo (of a sorted
list over the folders, the first included) and records what the no-harm guard decided: share, reason, noise gain,
ringing. It uses only the Deblurrer's public API, so it runs on any checkout: `PYTHONPATH=<old checkout> python
scripts/...` records the code before a change.

`compare` prints, in Markdown, how many photos moved: radii that differ by more than --radius-tolerance (relative,
default 2 %; a radius of 0 must stay 0), verdicts (in focus, at bound, gray, max_share, the guard's reason) that
differ, and the largest relative change of the noise levels and of the guard's share, each over the photos both
records measured.

`time` measures stage 1 alone (Deblurrer.estimate: colour test, blind PSFs and noise levels of a batch) on
bench_speed's synthetic camera photo (a 4 px disk), for each SIZE:BATCH: seconds per batch (the best of
--repeats, after one untimed call) and photos per second.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

VERDICTS = ("in_focus", "at_bound", "gray", "max_share", "reason")
LEVELS = ("photo_noise", "noise_sigma", "share", "noise_gain", "notch_excess")
SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def photos_in(folders: list[str]) -> list[Path]:
    paths = sorted(p for folder in folders for p in Path(folder).iterdir() if p.suffix.lower() in SUFFIXES)
    if not paths:
        raise SystemExit(f"compare_estimation: no photos in {', '.join(folders)}")
    return paths


def _value(tensor, i: int):
    if tensor is None:
        return None
    value = tensor[i].item()
    return None if isinstance(value, float) and math.isnan(value) else value


def record(args) -> None:
    from hidd.deblur import Deblurrer
    from hidd.imageio import read_image
    from hidd.prior import load_prior

    torch.set_num_threads(args.threads)
    prior = load_prior(args.checkpoint, preset=args.preset, device=args.device)
    deblurrer = Deblurrer(prior)
    rows, start = {}, time.perf_counter()
    for n, path in enumerate(tqdm(photos_in(args.folders), desc="photos", unit="photo")):
        y = torch.from_numpy(read_image(path, channels=3).pixels).permute(2, 0, 1)[None].contiguous()
        _, model, evidence = deblurrer.estimate(y.to(args.device))
        lens = model.operator.lenses[0] if model.operator is not None and model.operator.lenses else None
        row = {"radius": _value(evidence.radius, 0), "softening": None if lens is None else lens.softening,
               "at_bound": _value(evidence.at_bound, 0), "max_share": _value(evidence.max_share, 0),
               "in_focus": _value(evidence.in_focus, 0), "gray": _value(evidence.gray, 0),
               "photo_noise": _value(evidence.photo_noise, 0),
               "noise_sigma": None if model.operator is None else float(model.operator.noise_sigma.double().mean())}
        if args.deblur_every and n % args.deblur_every == 0:
            result = deblurrer(y.to(args.device), seed=0)
            row.update(share=_value(result.share, 0), reason=result.reasons[0] if result.reasons else None,
                       noise_gain=_value(result.noise_gain, 0), notch_excess=_value(result.notch_excess, 0))
        rows[f"{path.parent.parent.name}/{path.name}"] = row
    Path(args.output).write_text(json.dumps({"command": " ".join(sys.argv), "seconds": time.perf_counter() - start,
                                             "photos": rows}, indent=1))
    print(f"{len(rows)} photos recorded in {args.output}")


def timing(args) -> None:
    from bench_speed import blurred_scene, machine_name, synchronize
    from hidd.deblur import Deblurrer
    from hidd.prior import load_prior

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    deblurrer = Deblurrer(load_prior(args.checkpoint, preset=args.preset, device=device))
    print(f"Stage 1 (estimate), preset {args.preset}, {machine_name(device)}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| size | batch | s / batch | photos / s |\n|---|---|---|---|")
    for spec in args.sizes:
        size, _, batch = spec.partition(":")
        width, height = (int(v) for v in size.split("x"))
        y = blurred_scene(height, width, int(batch or 1)).to(device)
        deblurrer.estimate(y)  # untimed: caches, kernels
        best = math.inf
        for _ in range(args.repeats):
            synchronize(device)
            start = time.perf_counter()
            deblurrer.estimate(y)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
        print(f"| {width}x{height} | {y.shape[0]} | {best:.3f} | {y.shape[0] / best:.1f} |", flush=True)


def _load(path: str) -> dict:
    """The photos of a record, or a one-line exit naming the file and what is wrong with it."""
    try:
        return json.loads(Path(path).read_text())["photos"]
    except FileNotFoundError:
        raise SystemExit(f"compare_estimation: {path}: no such record") from None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise SystemExit(f"compare_estimation: {path}: not a record written by compare_estimation.py record") from None


def _relative(a, b) -> float:
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def compare(args) -> None:
    before, after = _load(args.before), _load(args.after)
    common = sorted(set(before) & set(after))
    if not common:
        raise SystemExit("compare_estimation: the two records share no photo")
    moved_radius = [k for k in common if not _radius_agrees(before[k]["radius"], after[k]["radius"],
                                                             args.radius_tolerance)]
    print(f"| photos | radius moved > {100 * args.radius_tolerance:g} % | " + " | ".join(VERDICTS) + " | "
          + " | ".join(f"max Δ {name}" for name in LEVELS) + " |")
    print("|" + "---|" * (2 + len(VERDICTS) + len(LEVELS)))
    both = {name: [k for k in common if name in before[k] and name in after[k]] for name in VERDICTS + LEVELS}
    verdicts = {name: [k for k in both[name] if before[k][name] != after[k][name]] for name in VERDICTS}
    levels = {name: max((_relative(before[k][name], after[k][name]) for k in both[name]), default=math.nan)
              for name in LEVELS}
    print(f"| {len(common)} | {len(moved_radius)} | " + " | ".join(str(len(v)) for v in verdicts.values()) + " | "
          + " | ".join(f"{100 * v:.2g} %" for v in levels.values()) + " |")
    for k in moved_radius:
        print(f"- radius moved: {k}: {before[k]['radius']} → {after[k]['radius']}")
    for name, keys in verdicts.items():
        for k in keys:
            print(f"- {name} moved: {k}: {before[k].get(name)} → {after[k].get(name)}")


def _radius_agrees(a, b, tolerance: float) -> bool:
    if a is None or b is None:
        return a is b
    return a == b if a == 0 or b == 0 else _relative(a, b) <= tolerance


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record the estimate's decisions for folders of photos")
    rec.add_argument("folders", nargs="+")
    rec.add_argument("--output", required=True)
    rec.add_argument("--checkpoint", default=None)
    rec.add_argument("--preset", default="fast")
    rec.add_argument("--device", default="cpu")
    rec.add_argument("--threads", type=int, default=1)
    rec.add_argument("--deblur-every", type=int, default=0, metavar="K",
                     help="also deblur every K-th photo and record the guard (0: none)")
    cmp = sub.add_parser("compare", help="how many decisions moved between two records")
    cmp.add_argument("before")
    cmp.add_argument("after")
    cmp.add_argument("--radius-tolerance", type=float, default=0.02)
    tim = sub.add_parser("time", help="the time of stage 1 alone, per batch")
    tim.add_argument("--sizes", nargs="+", default=["256x256:1"], metavar="WxH:BATCH")
    tim.add_argument("--checkpoint", default=None)
    tim.add_argument("--preset", default="fast")
    tim.add_argument("--device", default="cpu")
    tim.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    tim.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    {"record": record, "compare": compare, "time": timing}[args.command](args)


if __name__ == "__main__":
    main()
