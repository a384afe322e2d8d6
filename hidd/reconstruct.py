"""The reconstruction job behind hidd-reconstruct: pairs in, restored images and metrics out."""
from __future__ import annotations

import csv
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from hidd.config import save_config
from hidd.deblur import Deblurrer
from hidd.imageio import ImageError, read_image, write_image
from hidd.metrics import psnr, ssim
from hidd.paired import Pair, find_pairs
from hidd.prior import DEFAULT_PRESET, load_prior
from hidd.tiling import TilingConfig

MIN_SIZE = 8  # smaller images carry too little to deblur (and cannot be reflect-padded)
METRIC_FIELDS = ["name", "input", "height", "width", "nfe", "seconds", "radius", "psnr_input", "ssim_input",
                 "psnr", "ssim"]  # radius: PSF radius used (blind estimate unless given); empty without a blur model


@dataclass
class Job:
    """One readable input with its target (if any), waiting to be batched."""
    pair: Pair
    blurred: np.ndarray  # H, W, C float in [0, 1], C matching the model (or 3 for a 1-channel model)
    sharp: np.ndarray | None
    bit_depth: int
    metrics: dict = field(default_factory=dict)


def _check_paths(args) -> tuple[Path, Path]:
    source, out = Path(args.input).resolve(), Path(args.output).resolve()
    if not source.exists():
        raise FileNotFoundError(f"{args.input}: no such file or folder")
    folder = source if source.is_dir() else source.parent
    for guarded in filter(None, [folder, Path(args.target).resolve() if args.target else None]):
        if out == guarded or guarded in out.parents:
            raise ValueError(f"--output {args.output}: is (inside) an input folder; choose another so "
                             "that inputs are never overwritten")
    return source, out


def _load(pair: Pair, model_channels: int) -> Job:
    """Read and validate one pair; ImageError names the file and the problem."""
    blurred = read_image(pair.blurred)
    pixels = blurred.pixels
    h, w, c = pixels.shape
    if min(h, w) < MIN_SIZE:
        raise ImageError(pair.blurred, f"is {w}x{h}; images must be at least {MIN_SIZE}x{MIN_SIZE} pixels")
    if c == 1 and model_channels == 3:
        raise ImageError(pair.blurred, "is grayscale (1 channel) but the model is RGB; convert it to RGB first")
    sharp = None
    if pair.sharp is not None:
        sharp = read_image(pair.sharp).pixels
        if sharp.shape != pixels.shape:
            raise ImageError(pair.sharp, f"target is {sharp.shape[1]}x{sharp.shape[0]}x{sharp.shape[2]} but "
                                         f"the input is {w}x{h}x{c}")
    return Job(pair=pair, blurred=pixels, sharp=sharp, bit_depth=blurred.bit_depth)


def _batches(jobs: list[Job], batch_size: int):
    """Same-size images together, at most batch_size at a time, in input order."""
    groups = defaultdict(list)
    for job in jobs:
        groups[job.blurred.shape].append(job)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            yield group[i:i + batch_size]


def _tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


class CurveLogger:
    """PSNR/SSIM against iteration (paper Fig. 1 v–w) and intermediate iterates (Fig. 1 a–g)."""

    def __init__(self, writer, batch: list[Job], out: Path, *, curve_every: int, save_every: int):
        self.writer, self.batch, self.out = writer, batch, out
        self.curve_every, self.save_every = curve_every, save_every
        self.curves: dict[int, list[tuple[float, float]]] = {}

    def __call__(self, iteration: int, x: torch.Tensor) -> None:
        step = iteration + 1
        images = None
        if self.save_every and step % self.save_every == 0:
            images = x.permute(0, 2, 3, 1).cpu().numpy()
            for job, image in zip(self.batch, images):
                write_image(self.out / "iterates" / job.pair.name / f"iter_{step:05d}.png", image)
        if self.curve_every and step % self.curve_every == 0 and self.batch[0].sharp is not None:
            images = x.permute(0, 2, 3, 1).cpu().numpy() if images is None else images
            values = [(psnr(im, job.sharp), ssim(im, job.sharp)) for job, im in zip(self.batch, images)]
            for job, (p, s) in zip(self.batch, values):
                self.writer.add_scalar(f"psnr/{job.pair.name}", p, step)
                self.writer.add_scalar(f"ssim/{job.pair.name}", s, step)
            self.curves[step] = values


def _log_mean_curves(writer, curves: dict[int, list[list[tuple[float, float]]]]) -> None:
    for step in sorted(curves):
        values = np.array([v for batch in curves[step] for v in batch])
        writer.add_scalar("psnr/mean", values[:, 0].mean(), step)
        writer.add_scalar("ssim/mean", values[:, 1].mean(), step)


def _summary(rows: list[dict]) -> str:
    has_target = any(r["psnr"] != "" for r in rows)
    head = f"{'image':<28} {'NFE':>6} {'sec':>8} {'radius':>7}"
    head += f" {'PSNR in':>8} {'PSNR':>7} {'SSIM in':>8} {'SSIM':>6}" if has_target else ""
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{r['name'][:28]:<28} {r['nfe']:>6} {r['seconds']:>8.1f} {r['radius']!s:>7}"
        if has_target and r["psnr"] != "":
            line += f" {r['psnr_input']:>8.2f} {r['psnr']:>7.2f} {r['ssim_input']:>8.3f} {r['ssim']:>6.3f}"
        lines.append(line)
    if has_target:
        scored = [r for r in rows if r["psnr"] != ""]
        mean = {k: float(np.mean([r[k] for r in scored])) for k in ("psnr_input", "psnr", "ssim_input", "ssim")}
        lines.append("-" * len(head))
        lines.append(f"{'mean':<28} {'':>6} {'':>8} {'':>7} {mean['psnr_input']:>8.2f} {mean['psnr']:>7.2f} "
                     f"{mean['ssim_input']:>8.3f} {mean['ssim']:>6.3f}")
    return "\n".join(lines)


def run(args) -> list[str]:
    """Reconstruct every input of `args` (see hidd.cli.reconstruct); returns the failures, one line each."""
    source, out = _check_paths(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    preset = args.preset if args.preset or args.config else DEFAULT_PRESET  # a --config alone keeps its sampler
    prior = load_prior(args.checkpoint, config_path=args.config, preset=preset, overrides=args.overrides,
                       device=device)
    pairs = find_pairs(args.input, target=args.target, dataset=args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    save_config(prior.config, out / "config.yaml")

    failures, jobs = [], []
    for pair in pairs:
        try:
            jobs.append(_load(pair, prior.config.model.channels))
        except ImageError as e:
            failures.append(str(e))
            tqdm.write(f"hidd-reconstruct: skipped {e}")

    tiling = TilingConfig(tile=args.tile, overlap=args.tile_overlap, tile_batch=args.tile_batch,
                          max_memory_gb=args.max_memory)
    deblurrer = Deblurrer(prior, tiling=tiling, precision=args.precision)
    num_steps = prior.config.sampler.num_steps
    curve_every = args.curve_every or max(1, num_steps // 100)
    writer = SummaryWriter(out / "tb")
    rows, curves = [], defaultdict(list)
    bar = tqdm(total=len(jobs), desc="deblur", unit="img", dynamic_ncols=True)
    for batch in _batches(jobs, args.batch_size):
        logger = CurveLogger(writer, batch, out, curve_every=curve_every, save_every=args.save_every)
        start = time.perf_counter()
        result = deblurrer(_tensor([j.blurred for j in batch]), seed=args.seed, callback=logger)
        seconds = (time.perf_counter() - start) / len(batch)
        for step, values in logger.curves.items():
            curves[step].append(values)
        radii = [""] * len(batch) if result.radius is None else [round(r, 3) for r in result.radius.tolist()]
        for job, image, radius in zip(batch, result.images.permute(0, 2, 3, 1).cpu().numpy(), radii):
            write_image(out / f"{job.pair.name}.png", image, bit_depth=job.bit_depth)
            row = {"name": job.pair.name, "input": str(job.pair.blurred), "height": image.shape[0],
                   "width": image.shape[1], "nfe": result.nfe, "seconds": round(seconds, 3), "radius": radius,
                   "psnr_input": "", "ssim_input": "", "psnr": "", "ssim": ""}
            if job.sharp is not None:
                row.update(psnr_input=round(psnr(job.blurred, job.sharp), 4),
                           ssim_input=round(ssim(job.blurred, job.sharp), 4),
                           psnr=round(psnr(image, job.sharp), 4), ssim=round(ssim(image, job.sharp), 4))
                writer.add_images(f"result/{job.pair.name}", np.stack([job.blurred, image, job.sharp]), 0,
                                  dataformats="NHWC")
            rows.append(row)
        bar.update(len(batch))
    bar.close()
    _log_mean_curves(writer, curves)
    writer.close()
    with open(out / "metrics.csv", "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        table.writeheader()
        table.writerows(rows)
    if rows:
        print(_summary(rows))
    print(f"hidd-reconstruct: {len(rows)} image(s) written to {out}")
    return failures
