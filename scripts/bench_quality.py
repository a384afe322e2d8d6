"""Quality of every method on a public defocus benchmark: PSNR, SSIM, gain over the input, NFE, seconds.

  python scripts/make_benchmark.py                       # data/benchmark, the sRGB-disk set (seconds)
  python scripts/make_benchmark.py --kind camera         # data/camera, the camera benchmark
  python scripts/bench_quality.py --benchmark data/camera --methods blurred wiener rl fast
  python scripts/bench_quality.py --methods blurred wiener rl fast --set sampler.tone_curve=none
  python scripts/bench_quality.py --methods paper --set sampler.num_steps=100 --limit 6
  python scripts/bench_quality.py --methods paper --images astronaut_r2 coffee_r5 --threads 1
  python scripts/bench_quality.py --benchmark data/camera --methods blurred dncnn ffdnet cyclegan fast --save-images
  python scripts/bench_quality.py --methods dncnn@runs/dncnn_srgb/checkpoints/latest.pt fast   # another training

Methods: `blurred` (the input itself); `wiener`, `rl` (skimage.restoration) and `bm3d` (BM3D
deblurring, the optional extra `hidd[bm3d]`, about 7 s per 256² channel and σ on a CPU), given the TRUE
PSF and tone curve of each image, deconvolving linear light channel by channel, parameter tuned per group
on the benchmark itself: an oracle, and labelled so); any sampler preset name from configs/presets (fast,
quality, paper, ablation-*) run with the checkpoint; the paper's learned comparison methods `dncnn`,
`ffdnet`, `cyclegan` (hidd.baselines; their shipped checkpoint, or METHOD@PATH for another, labelled with
the camera model it was trained on). Depth-varying images get the oracle PSF of their median radius.
Groups: the camera benchmark's conditions (linear, lens, depth, subject), a held-out set's (heldout, depth,
subject), or the sRGB-disk set's radii. Images with a radius map (radius_maps/NAME.npy: the depth and subject
groups) are also scored by region: PSNR over their in-focus pixels (true radius < 1 px, the pixel pitch;
hidd.metrics.IN_FOCUS_RADIUS) and over the defocused rest, each with its gain over the input's.
--include DIR adds an earlier run's rows (e.g. a GPU run of the paper preset) to the tables.
Writes OUTPUT/per_image.csv (its `param`: an oracle's tuned parameter, or the share of its deblurring that a hidd
preset's no-harm guard kept; its chroma_*: the RMS chroma of photo, result and target, colour in and out; its
psnr_in_focus, psnr_defocused, gain_in_focus, gain_defocused: the regions' scores, nan without a radius map)
and OUTPUT/summary.csv (and with --save-images OUTPUT/images/METHOD/NAME.png,
for scripts/compare_figure.py) and prints Markdown tables: PSNR and SSIM per group, the mean and the
smallest per-image gain over the input per group, and the paper's summary: how much higher (in %) each hidd
preset's PSNR and SSIM are than each other method's.
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

from hidd.baselines import bm3d_deblur, richardson_lucy_deblur, wiener_deblur
from hidd.baselines.networks import NETWORKS
from hidd.baselines.restore import BaselineDeblurrer, load_baseline
from hidd.cli import one_line_errors
from hidd.config import save_config
from hidd.deblur import Deblurrer
from hidd.camera import Layers, LensPSF, tone_curve
from hidd.colour import chroma_rms
from hidd.imageio import read_image, write_image
from hidd.known_blur import read_radius_map
from hidd.metrics import IN_FOCUS_RADIUS, psnr, region_psnr, ssim
from hidd.precision import PRECISIONS
from hidd.prior import load_prior, preset_names

ORACLE_GRIDS = {"wiener": [0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0],
                "rl": [3, 5, 10, 20, 30, 50],
                "bm3d": [0.005, 0.01, 0.02]}  # its white-noise σ on the linear-light channel
ORACLE_FUNCTIONS = {"wiener": wiener_deblur, "rl": richardson_lucy_deblur, "bm3d": bm3d_deblur}
ORACLE_NAMES = {"wiener": "Wiener", "rl": "Richardson–Lucy", "bm3d": "BM3D deblurring"}
NETWORK_NAMES = {"dncnn": "DnCNN", "ffdnet": "FFDNet", "cyclegan": "CycleGAN"}
CHROMA = ("chroma_in", "chroma_out", "chroma_true")  # per_image.csv: RMS chroma of the photo, the result, the target
REGIONS = ("psnr_in_focus", "psnr_defocused", "gain_in_focus", "gain_defocused")  # per_image.csv, with a radius map
MAP_GROUPS = ("depth", "subject")  # the groups whose images have a radius map
GROUP_ORDER = {"linear": 0, "lens": 1, "depth": 2, "subject": 3}


def true_camera(info: dict, radius: float):
    """(lens PSF, tone curve) of a meta.json entry, at `radius` (the median for depth-varying blur)."""
    psf = info.get("psf", {})
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in psf.items() if k in LensPSF.__dataclass_fields__}
    lens = LensPSF(**{**params, "radius": radius}) if params else LensPSF(radius)
    return lens, tone_curve(info.get("tone_curve", "none"))


def load_benchmark(root: Path, limit: int | None, names: list[str] | None = None):
    """[(name, group, true radius, blurred HWC, sharp HWC, (lens, tone))] from make_benchmark.py's folder."""
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
        if info.get("condition", "srgb-disk") != "srgb-disk":
            group = info["condition"]
        items.append((name, group, radius, read_image(root / "blurred" / f"{name}.png").pixels,
                      read_image(root / "sharp" / f"{name}.png").pixels, true_camera(info, radius)))
    return items[:limit] if limit else items


def load_radius_maps(root: Path, items) -> dict[str, np.ndarray]:
    """The true radius map (H, W) of every image that has one (radius_maps/NAME.npy), by name."""
    paths = {name: root / "radius_maps" / f"{name}.npy" for name, *_ in items}
    return {name: np.load(path) for name, path in paths.items() if path.is_file()}


def region_scores(out: np.ndarray, blurred: np.ndarray, sharp: np.ndarray, radius_map: np.ndarray | None) -> dict:
    """per_image.csv's region columns: PSNR of the in-focus and the defocused pixels and their gains (nan without
    a map, or where a region is empty)."""
    if radius_map is None:
        return dict.fromkeys(REGIONS, float("nan"))
    scores = {}
    for region, in_focus in (("in_focus", True), ("defocused", False)):
        scores[f"psnr_{region}"] = region_psnr(out, sharp, radius_map, in_focus)
        scores[f"gain_{region}"] = scores[f"psnr_{region}"] - region_psnr(blurred, sharp, radius_map, in_focus)
    return {key: scores[key] for key in REGIONS}


def oracle_deblur(method: str, blurred: np.ndarray, camera, parameter: float) -> np.ndarray:
    """The classical method with the TRUE PSF of each channel, on linear light (Γ⁻¹ of the photo), mapped back."""
    lens, tone = camera
    kernels = lens.kernels(blurred.shape[-1], torch.float64).numpy()
    linear = tone.decode(torch.from_numpy(blurred).double()).numpy()
    channels = [ORACLE_FUNCTIONS[method](linear[..., c], kernels[min(c, len(kernels) - 1)], parameter)
                for c in range(blurred.shape[-1])]
    return tone.encode(torch.from_numpy(np.stack(channels, axis=-1)).clamp(0, 1)).numpy()


def true_layers(root: Path, info: dict) -> Layers:
    """The layered scene an image was rendered from, by its meta.json entry `info`: the subject coverage `alpha`
    before a whole-frame background, at the `layers` radii far to near."""
    radii = info["layers"]["radii"]
    if len(radii) != 2:
        raise ValueError(f"{root / 'meta.json'}: layers of {len(radii)} radii; --oracle-layers reads a subject before "
                         "a background (two)")
    return Layers.subject(torch.from_numpy(np.load(root / info["alpha"])).float(), *radii)


def run_oracle(method: str, items):
    """Tune the parameter per group against the targets (on up to 6 of its images), then deblur every image."""
    results = {}
    by_group = defaultdict(list)
    for item in items:
        by_group[item[1]].append(item)
    for group, members in tqdm(by_group.items(), desc=f"{method} (oracle)"):
        sample = members[:: max(1, len(members) // 6)]
        scores = {value: np.mean([psnr(oracle_deblur(method, m[3], m[5], value), m[4]) for m in sample])
                  for value in ORACLE_GRIDS[method]}
        best = max(scores, key=scores.get)
        for name, _, _, blurred, _, camera in members:
            start = time.perf_counter()
            out = oracle_deblur(method, blurred, camera, best)
            results[name] = (out, 0, time.perf_counter() - start, f"{best:g}")
    return results


def run_preset(preset: str, items, args):
    """Each image, or batches of up to --batch images of one size (one sampling each; a batch's time is shared)."""
    prior = load_prior(args.checkpoint, preset=preset, overrides=args.overrides, device=args.device)
    deblur = Deblurrer(prior, precision=args.precision)
    # the true radius map given (or, with --oracle-layers, a layered image's true layers)
    oracle = {item[0]: (args.oracle_map or args.oracle_layers) and item[1] in MAP_GROUPS for item in items}
    meta = json.loads((args.benchmark / "meta.json").read_text())["images"]
    layered = {item[0]: oracle[item[0]] and args.oracle_layers and "layers" in meta[item[0]] for item in items}

    def key(item):
        return item[3].shape, oracle[item[0]], layered[item[0]]

    groups = defaultdict(list)  # images of one size (with a map, with layers, or neither) share batches
    for item in items:
        groups[key(item)].append(item)
    batches = [group[i:i + args.batch] for group in groups.values() for i in range(0, len(group), args.batch)]
    results = {}
    with tqdm(total=len(items), desc=preset) as bar:
        for batch in batches:
            known = layers = None
            if layered[batch[0][0]]:  # the true layers instead of the estimate
                layers = [true_layers(args.benchmark, meta[item[0]]) for item in batch]
            elif oracle[batch[0][0]]:  # the true radius maps
                known = torch.stack([read_radius_map(args.benchmark / "radius_maps" / f"{item[0]}.npy",
                                                     item[3].shape[:2]) for item in batch])
            start = time.perf_counter()
            y = torch.stack([torch.from_numpy(item[3]).permute(2, 0, 1) for item in batch])
            out = deblur(y, seed=args.seed, radius_map=known, layers=layers)
            seconds = (time.perf_counter() - start) / len(batch)
            for i, item in enumerate(batch):
                kept = "" if out.share is None else round(out.share[i].item(), 3)  # the share of its deblurring kept
                results[item[0]] = (out.images[i].permute(1, 2, 0).cpu().numpy(), int(out.photo_nfe[i]), seconds,
                                    kept)
            bar.update(len(batch))
    return results, prior.config


def run_network(spec: str, items, args):
    """A learned baseline, 'METHOD' (its shipped checkpoint) or 'METHOD@PATH'; returns results and its label."""
    method, _, path = spec.partition("@")
    baseline = load_baseline(method, path or None, device=args.device)
    deblur = BaselineDeblurrer(baseline)
    results = {}
    for name, _, _, blurred, _, _ in tqdm(items, desc=method):
        start = time.perf_counter()
        out = deblur(torch.from_numpy(blurred).permute(2, 0, 1)[None])
        results[name] = (out.images[0].permute(1, 2, 0).cpu().numpy(), out.nfe, time.perf_counter() - start, "")
    trained_on = baseline.config.degradation.model
    return results, f"{NETWORK_NAMES[method]} (trained on {trained_on})"


def method_kind(spec: str) -> str | None:
    """'blurred', 'oracle', 'network' or 'preset' for a --methods entry; None when unknown."""
    if spec == "blurred":
        return "blurred"
    if spec in ORACLE_FUNCTIONS:
        return "oracle"
    if spec.partition("@")[0] in NETWORKS.names():
        return "network"
    return "preset" if spec in preset_names() else None


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
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="hidd presets: deblur up to N images of one size together (a GPU's throughput; each image's "
                        "seconds are the batch's over N; its NFE and output are its own, as in a run of one)")
    p.add_argument("--oracle-map", action="store_true",
                   help="give the hidd presets the TRUE radius map of the depth-varying image (needs "
                        "sampler.radius_map=true, as the depth preset sets): the solver without the estimator")
    p.add_argument("--oracle-layers", action="store_true",
                   help="as --oracle-map, but an image rendered as layers (a subject) gets its TRUE layers and the "
                        "data step with occlusion (hidd.operators.LayeredBlur); the others their true map")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="network precision of the hidd presets (see hidd.precision); labelled in the table unless fp32")
    p.add_argument("--include", type=Path, action="append", default=[], metavar="DIR",
                   help="add the rows of an earlier run (its DIR/per_image.csv, same benchmark and images) to the "
                        "tables, e.g. a GPU run of paper next to CPU runs of the others (repeatable)")
    p.add_argument("--save-images", action="store_true", help="write every result to OUTPUT/images/METHOD/NAME.png")
    p.add_argument("--output", type=Path, default=Path("results/bench_quality"))
    args = p.parse_args(argv)
    with one_line_errors("bench_quality"):
        if not (args.benchmark / "meta.json").is_file():
            raise FileNotFoundError(f"{args.benchmark}: no benchmark here; run scripts/make_benchmark.py first")
        unknown = [m for m in args.methods if method_kind(m) is None]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from blurred, wiener, rl, bm3d, "
                             + ", ".join([*NETWORKS.names(), *preset_names()]))
        if args.batch < 1:
            raise ValueError(f"--batch {args.batch}: give 1 or more images per batch")
        if args.threads:
            torch.set_num_threads(args.threads)
        items = load_benchmark(args.benchmark, args.limit, args.images)
        maps = load_radius_maps(args.benchmark, items)
        args.output.mkdir(parents=True, exist_ok=True)
        rows = []
        for method in args.methods:
            kind = method_kind(method)
            if kind == "blurred":
                results = {name: (blurred, 0, 0.0, "") for name, _, _, blurred, _, _ in items}
                label = "blurry input"
            elif kind == "oracle":
                results = run_oracle(method, items)
                label = f"{ORACLE_NAMES[method]} (oracle PSF, tuned)"
            elif kind == "network":
                results, label = run_network(method, items, args)
            else:
                results, cfg = run_preset(method, items, args)
                save_config(cfg, args.output / f"config_{method}.yaml")
                label = (f"hidd {method}" + (f" ({args.precision})" if args.precision != "fp32" else "")
                         + (" (oracle layers)" if args.oracle_layers else " (oracle map)" if args.oracle_map else ""))
            if args.save_images:
                folder = args.output / "images" / method.replace("@", "_at_").replace("/", "_")
                for name, (out, *_) in results.items():
                    write_image(folder / f"{name}.png", np.clip(out, 0, 1), bit_depth=16)  # the tables' values
            if any(r["method"] == label for r in rows):
                raise ValueError(f"{method}: its label '{label}' is in this run already (two trainings of one method "
                                 "on the same camera model: run them separately)")
            for name, group, radius, blurred, sharp, _ in items:
                out, nfe, seconds, param = results[name]
                rows.append({"method": label, "image": name, "group": group, "radius": round(radius, 3),
                             "psnr": psnr(out, sharp), "ssim": ssim(out, sharp),
                             "gain": psnr(out, sharp) - psnr(blurred, sharp), "nfe": nfe,
                             "seconds": round(seconds, 3), "param": param, "chroma_in": chroma(blurred),
                             "chroma_out": chroma(out), "chroma_true": chroma(sharp),
                             **region_scores(out, blurred, sharp, maps.get(name))})
        for folder in args.include:
            extra = included_rows(folder, items)
            clash = {r["method"] for r in extra} & {r["method"] for r in rows}
            if clash:
                raise ValueError(f"--include {folder}: {sorted(clash)[0]} is in this run already")
            rows += extra
        write_tables(rows, args)


def chroma(image: np.ndarray) -> float:
    """RMS chroma of an H×W×C image (hidd.colour.chroma_rms; 0 for one channel): colour a result has, against what
    its photo and its target have."""
    if image.shape[2] == 1:
        return 0.0
    return float(chroma_rms(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None])[0])


def included_rows(folder: Path, items) -> list[dict]:
    """The rows of an earlier bench_quality run for this run's images (all of them must be there)."""
    path = folder / "per_image.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (--include wants a bench_quality.py --output folder)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    wanted = {name for name, *_ in items}
    methods = {r["method"] for r in rows} - {"blurry input"}
    rows = [r for r in rows if r["image"] in wanted and r["method"] in methods]
    for method in methods:
        missing = wanted - {r["image"] for r in rows if r["method"] == method}
        if missing:
            raise ValueError(f"{path}: {method} has no row for {', '.join(sorted(missing)[:3])}")
    numeric = ("radius", "psnr", "ssim", "gain", "nfe", "seconds", *CHROMA, *REGIONS)
    return [{**r, **{k: float(r.get(k) or "nan") for k in numeric}, "nfe": int(float(r["nfe"]))} for r in rows]


def write_tables(rows, args):
    with open(args.output / "per_image.csv", "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=list(rows[0]))
        table.writeheader()
        table.writerows(rows)
    groups = sorted({r["group"] for r in rows},
                    key=lambda g: (GROUP_ORDER.get(g, -1), float(g[1:]) if g.startswith("r") else 0.0))
    mapped = [g for g in groups if any(np.isfinite(r["psnr_in_focus"]) or np.isfinite(r["psnr_defocused"])
                                       for r in rows if r["group"] == g)]  # groups scored by region
    methods = list(dict.fromkeys(r["method"] for r in rows))
    summary = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        entry = {"method": method}
        for group in groups:
            entry[f"psnr_{group}"] = np.mean([r["psnr"] for r in mine if r["group"] == group])
            entry[f"gain_{group}"] = np.mean([r["gain"] for r in mine if r["group"] == group])
            entry[f"min_gain_{group}"] = np.min([r["gain"] for r in mine if r["group"] == group])
            entry[f"ssim_{group}"] = np.mean([r["ssim"] for r in mine if r["group"] == group])
        for group in mapped:
            for key in REGIONS:
                entry[f"{key}_{group}"] = finite_mean([r[key] for r in mine if r["group"] == group])
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
    head = "| method | " + " | ".join(f"gain {g} (min)" for g in groups) + " | images worse by > 0.2 dB |"
    print(f"\nGain over the input, dB: mean per group (the smallest per-image gain)\n\n{head}")
    print("|" + "---|" * (head.count("|") - 1))
    for e in summary:
        cells = " | ".join(f"{e[f'gain_{g}']:+.2f} ({e[f'min_gain_{g}']:+.2f})" for g in groups)
        worse = sum(r["gain"] < -0.2 for r in rows if r["method"] == e["method"])
        print(f"| {e['method']} | {cells} | {worse} |")
    head = "| method | " + " | ".join(f"SSIM {g}" for g in groups) + " |"
    print(f"\nSSIM per group\n\n{head}")
    print("|" + "---|" * (head.count("|") - 1))
    for e in summary:
        print(f"| {e['method']} | " + " | ".join(f"{e[f'ssim_{g}']:.4f}" for g in groups) + " |")
    print_regions(summary, mapped)
    print_chroma(rows, methods, groups)
    print_percentages(summary)


def finite_mean(values) -> float:
    """The mean of the finite values (an empty region's nan left out); nan when there is none."""
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def print_regions(summary, mapped) -> None:
    """Depth-varying images by region: PSNR of the in-focus and of the defocused pixels, and their gains."""
    if not mapped:
        return
    print(f"\nBy region (images with a radius map): in focus = true radius < {IN_FOCUS_RADIUS:g} px, defocused = the "
          "rest; mean per group, dB\n")
    head = "| method | group | PSNR in focus | gain in focus | PSNR defocused | gain defocused |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for e in summary:
        for g in mapped:
            print(f"| {e['method']} | {g} | {e[f'psnr_in_focus_{g}']:.2f} | {e[f'gain_in_focus_{g}']:+.2f} | "
                  f"{e[f'psnr_defocused_{g}']:.2f} | {e[f'gain_defocused_{g}']:+.2f} |")


def print_chroma(rows, methods, groups) -> None:
    """Colour in and out: the mean RMS chroma of the results per group, next to the photos' and the targets'."""
    print("\nRMS chroma (each pixel's channels about their mean), mean per group: the results' (the photos' → "
          "the targets')\n")
    head = "| method | " + " | ".join(groups) + " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for method in methods:
        cells = []
        for group in groups:
            mine = [r for r in rows if r["method"] == method and r["group"] == group]
            mean = {k: np.mean([r[k] for r in mine]) for k in CHROMA}
            cells.append(f"{mean['chroma_out']:.4f} ({mean['chroma_in']:.4f} → {mean['chroma_true']:.4f})")
        print(f"| {method} | " + " | ".join(cells) + " |")


def print_percentages(summary) -> None:
    """The paper's summary: 100 (ours − theirs) / theirs for mean PSNR and SSIM, each hidd preset against each
    other method (the paper reports +13.4 % PSNR and +34.7 % SSIM against DnCNN, FFDNet and CycleGAN)."""
    ours = [e for e in summary if e["method"].startswith("hidd ")]
    theirs = [e for e in summary if not e["method"].startswith("hidd ")]
    if not ours or not theirs:
        return
    head = "| against | " + " | ".join(f"{e['method']}: PSNR % | SSIM %" for e in ours) + " |"
    print(f"\nHow much higher the hidd presets' mean PSNR and SSIM are, in % (the paper's summary)\n\n{head}")
    print("|" + "---|" * (head.count("|") - 1))
    for other in theirs:
        cells = " | ".join(f"{100 * (e['psnr'] - other['psnr']) / other['psnr']:+.1f} | "
                           f"{100 * (e['ssim'] - other['ssim']) / other['ssim']:+.1f}" for e in ours)
        print(f"| {other['method']} | {cells} |")


if __name__ == "__main__":
    main()
