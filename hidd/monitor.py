"""What a reconstruction shows while it runs: the progress bar's stage, PSNR/SSIM-vs-iteration curves, iterates.

A batch's stage (reading colour, estimating the blur, sampling level i of N, checking the results, sampling again)
and its network evaluations so far go in the progress bar's postfix, so that a long batch on a CPU shows life.
With targets, PSNR and SSIM against iteration (paper Fig. 1 v–w) go to TensorBoard, per image and as a mean; with
--save-every, intermediate iterates go to OUTPUT/iterates/NAME/ (Fig. 1 a–g).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hidd.imageio import write_image
from hidd.metrics import psnr, ssim
from hidd.results import ITERATES
from hidd.text import printable

CURVE_POINTS = 100  # PSNR/SSIM-vs-iteration points of a run with targets (without --curve-every) at most ...
CURVE_BUDGET = 0.1  # ... and at most this share of the sampling time (CurveLogger)


class CurveLogger:
    """PSNR/SSIM against iteration (paper Fig. 1 v–w) and intermediate iterates (Fig. 1 a–g).

    A curve point costs a PSNR and an SSIM per image on the CPU (about a second at 1680×1120 on 2 cores), which on a
    GPU can outlast the sampling itself. With `budget`, a point due every `curve_every` iterations is taken only
    while the points so far, and one more at the last one's cost, stay within that share of the time spent
    sampling since the batch began (the first point is always taken); without it, every point due is taken."""

    def __init__(self, writer, batch: list, out: Path, *, curve_every: int, save_every: int,
                 level: Callable[[int], None] = lambda step: None, budget: float | None = None):
        self.writer, self.out = writer, out
        self.batch = batch  # hidd.reconstruct.Job's: pair, sharp, as_stored
        self.curve_every, self.save_every = curve_every, save_every
        self.level = level  # told each iteration's number (1, 2, ...) as it ends
        self.budget = budget  # the most of the sampling time the curve points may cost (None: no limit)
        self.curves: dict[int, list[tuple[float, float]]] = {}
        self.start, self.spent, self.last_cost = time.monotonic(), 0.0, 0.0

    def _affordable(self) -> bool:
        sampling = time.monotonic() - self.start - self.spent
        return self.budget is None or self.spent + self.last_cost <= self.budget * sampling

    def __call__(self, iteration: int, x: torch.Tensor) -> None:
        step = iteration + 1
        self.level(step)
        images = None
        if self.save_every and step % self.save_every == 0:
            images = x.permute(0, 2, 3, 1).cpu().numpy()
            for job, image in zip(self.batch, images):
                if np.isfinite(image).all():  # a non-finite image fails at the end, naming the cause
                    write_image(self.out / ITERATES / job.pair.name / f"iter_{step:05d}.png", job.as_stored(image))
        if (self.curve_every and step % self.curve_every == 0 and self.batch[0].sharp is not None
                and self._affordable()):
            began = time.monotonic()
            images = x.permute(0, 2, 3, 1).cpu().numpy() if images is None else images
            pairs = [(job.as_stored(image), job.as_stored(job.sharp)) for job, image in zip(self.batch, images)]
            values = [(psnr(result, target), ssim(result, target)) for result, target in pairs]
            for job, (p, s) in zip(self.batch, values):
                self.writer.add_scalar(f"psnr/{printable(job.pair.name)}", p, step)
                self.writer.add_scalar(f"ssim/{printable(job.pair.name)}", s, step)
            self.curves[step] = values
            self.last_cost = time.monotonic() - began
            self.spent += self.last_cost


def log_mean_curves(writer, curves: dict[int, list[list[tuple[float, float]]]], batches: int) -> None:
    """The mean curves, at the steps every one of the `batches` batches has a point for (the same images)."""
    for step in sorted(curves):
        if len(curves[step]) < batches:
            continue
        values = np.array([v for batch in curves[step] for v in batch])
        writer.add_scalar("psnr/mean", values[:, 0].mean(), step)
        writer.add_scalar("ssim/mean", values[:, 1].mean(), step)


class BatchProgress:
    """What the batch in hand is doing, in the progress bar's postfix: its size, stage, level and NFE so far
    (redrawn at most every REFRESH seconds)."""

    REFRESH = 0.5

    def __init__(self, bar: tqdm, size: int, levels: int):
        self.bar, self.size, self.levels = bar, size, levels
        self.stage, self.nfe, self.step, self.drawn = "reading", 0, 0, 0.0

    def __call__(self, stage: str, nfe: int) -> None:  # hidd.deblur.Deblurrer's progress
        if stage != self.stage:
            self.step = 0  # a new stage starts its levels again
        self.stage, self.nfe = stage, nfe
        self.draw(force=nfe == 0)

    def level(self, step: int) -> None:  # the sampler's iterations, through CurveLogger
        self.step = step
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.drawn >= self.REFRESH:
            level = f" level {self.step}/{self.levels}" if self.step and self.stage == "sampling" else ""
            nfe = f", NFE {self.nfe}" if self.nfe else ""
            self.bar.set_postfix_str(f"{self.size} img: {self.stage}{level}{nfe}")
            self.drawn = now
