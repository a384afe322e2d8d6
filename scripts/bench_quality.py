"""Quality of every method on the public defocus benchmark: PSNR, SSIM, NFE, seconds.

  python scripts/make_benchmark.py                       # data/benchmark (seconds)
  python scripts/bench_quality.py --methods blurred wiener rl fast
  python scripts/bench_quality.py --methods paper --set sampler.num_steps=100 --limit 6
  python scripts/bench_quality.py --methods paper --images astronaut_r2 coffee_r5 --threads 1

Methods: `blurred` (the input itself); `wiener` and `rl` (skimage.restoration given the TRUE
disk radius, parameter tuned per radius on the benchmark itself: an oracle, and labelled so);
any sampler preset name from configs/presets (fast, quality, paper, ablation-*) run with the
checkpoint. The depth-varying motorcycle gets the oracle PSF of its median radius.
Writes OUTPUT/per_image.csv and OUTPUT/summary.csv and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hidd.baselines import richardson_lucy_deblur, tune, wiener_deblur
from hidd.cli import one_line_errors
from hidd.config import save_config
from hidd.deblur import Deblurrer
from hidd.degrade import disk_psf
from hidd.imageio import read_image
from hidd.metrics import psnr, ssim
from hidd.precision import PRECISIONS
from hidd.prior import load_prior, preset_names

ORACLE_GRIDS = {"wiener": [0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
                "rl": [3, 5, 10, 20, 30, 50]}
ORACLE_FUNCTIONS = {"wiener": wiener_deblur, "rl": richardson_lucy_deblur}


def load_benchmark(root: Path, limit: int | None, names: list[str] | None = None):
    """[(name, group, true radius, blurred HWC, sharp HWC)] from make_benchmark.py's folder."""
    meta = json.loads((root / "meta.json").read_text())["images"]
    missing = sorted(set(names or []) - set(meta))
    if missing:
        raise ValueError(f"{root / 'meta.json'}: no image(s) {', '.join(missing)} in the benchmark")
    items = []
    for name, info in sorted(meta.items()):
        if names and name not in names:
            continue
        if isinstance(info["radius"], (int, float)):
            radius, group = float(info["radius"]), f"r{info['radius']:g}"
        else:
            radius, group = float(np.median(np.load(root / "radius_maps" / f"{name}.npy"))), "depth"
        items.append((name, group, radius, read_image(root / "blurred" / f"{name}.png").pixels,
                      read_image(root / "sharp" / f"{name}.png").pixels))
    return items[:limit] if limit else items


def run_oracle(method: str, items):
    """Tune the parameter per radius group against the targets, then deblur every image."""
    results = {}
    by_group = defaultdict(list)
    for item in items:
        by_group[item[1]].append(item)
    for group, members in tqdm(by_group.items(), desc=f"{method} (oracle)"):
        psf = disk_psf(members[0][2]).double().numpy()
        best = tune(ORACLE_FUNCTIONS[method], [m[3] for m in members], [m[4] for m in members], psf,
                    ORACLE_GRIDS[method])
        for name, _, radius, blurred, _ in members:
            start = time.perf_counter()
            out = ORACLE_FUNCTIONS[method](blurred, disk_psf(radius).double().numpy(), best)
            results[name] = (out, 0, time.perf_counter() - start, f"{best:g}")
    return results


def run_preset(preset: str, items, args):
    prior = load_prior(args.checkpoint, preset=preset, overrides=args.overrides, device=args.device)
    deblur = Deblurrer(prior, precision=args.precision)
    results = {}
    for name, group, _, blurred, _ in tqdm(items, desc=preset):
        known = None
        if args.oracle_map and group == "depth":  # the true radius map instead of the estimate
            known = torch.from_numpy(np.load(args.benchmark / "radius_maps" / f"{name}.npy")).float()[None]
        start = time.perf_counter()
        y = torch.from_numpy(blurred).permute(2, 0, 1)[None]
        out = deblur(y, seed=args.seed, radius_map=known)
        results[name] = (out.images[0].permute(1, 2, 0).cpu().numpy(), out.nfe, time.perf_counter() - start, "")
    return results, prior.config


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", type=Path, default=Path("data/benchmark"))
    p.add_argument("--methods", nargs="+", default=["blurred", "wiener", "rl", "fast"])
    p.add_argument("--checkpoint", help="default: checkpoints/hidd-default.pt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override for the hidd presets (e.g. sampler.num_steps=100)")
    p.add_argument("--limit", type=int, help="only the first N images (sorted by name)")
    p.add_argument("--images", nargs="+", metavar="NAME", help="only these images (e.g. astronaut_r2 coffee_r5)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (CPU); default: torch's choice")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--oracle-map", action="store_true",
                   help="give the hidd presets the TRUE radius map of the depth-varying image (needs "
                        "sampler.radius_map=true and sampler.consistency=gradient): the solver without the estimator")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="network precision of the hidd presets (see hidd.precision); labelled in the table unless fp32")
    p.add_argument("--output", type=Path, default=Path("results/bench_quality"))
    args = p.parse_args(argv)
    with one_line_errors("bench_quality"):
        if not (args.benchmark / "meta.json").is_file():
            raise FileNotFoundError(f"{args.benchmark}: no benchmark here; run scripts/make_benchmark.py first")
        unknown = [m for m in args.methods if m not in ("blurred", *ORACLE_FUNCTIONS, *preset_names())]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from blurred, wiener, rl, "
                             + ", ".join(preset_names()))
        if args.threads:
            torch.set_num_threads(args.threads)
        items = load_benchmark(args.benchmark, args.limit, args.images)
        args.output.mkdir(parents=True, exist_ok=True)
        rows = []
        for method in args.methods:
            if method == "blurred":
                results = {name: (blurred, 0, 0.0, "") for name, _, _, blurred, _ in items}
                label = "blurry input"
            elif method in ORACLE_FUNCTIONS:
                results = run_oracle(method, items)
                label = f"{'Wiener' if method == 'wiener' else 'Richardson–Lucy'} (oracle radius, tuned)"
            else:
                results, cfg = run_preset(method, items, args)
                save_config(cfg, args.output / f"config_{method}.yaml")
                label = (f"hidd {method}" + (f" ({args.precision})" if args.precision != "fp32" else "")
                         + (" (oracle map)" if args.oracle_map else ""))
            for name, group, radius, _, sharp in items:
                out, nfe, seconds, param = results[name]
                rows.append({"method": label, "image": name, "group": group, "radius": round(radius, 3),
                             "psnr": psnr(out, sharp), "ssim": ssim(out, sharp), "nfe": nfe,
                             "seconds": round(seconds, 3), "param": param})
        write_tables(rows, args)


def write_tables(rows, args):
    with open(args.output / "per_image.csv", "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=list(rows[0]))
        table.writeheader()
        table.writerows(rows)
    groups = sorted({r["group"] for r in rows}, key=lambda g: (g == "depth", float(g[1:]) if g != "depth" else 0))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    summary = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        entry = {"method": method}
        for group in groups:
            entry[f"psnr_{group}"] = np.mean([r["psnr"] for r in mine if r["group"] == group])
        entry.update(psnr=np.mean([r["psnr"] for r in mine]), ssim=np.mean([r["ssim"] for r in mine]),
                     nfe=int(np.mean([r["nfe"] for r in mine])), seconds=np.mean([r["seconds"] for r in mine]))
        summary.append(entry)
    with open(args.output / "summary.csv", "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=list(summary[0]))
        table.writeheader()
        table.writerows(summary)
    head = "| method | " + " | ".join(f"PSNR {g}" for g in groups) + " | PSNR mean | SSIM mean | NFE | s/image |"
    print(f"\n{len(rows) // len(methods)} images; device {args.device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads); {date.today()}\n")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for e in summary:
        cells = " | ".join(f"{e[f'psnr_{g}']:.2f}" for g in groups)
        print(f"| {e['method']} | {cells} | {e['psnr']:.2f} | {e['ssim']:.4f} | {e['nfe']} | {e['seconds']:.2f} |")


if __name__ == "__main__":
    main()
