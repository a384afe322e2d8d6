"""What a reconstruction shows while it runs: the progress bar's stage, PSNR/SSIM-vs-iteration curves, iterates.

A batch's stage (reading colour, estimating the blur, sampling level i of N, checking the results, sampling again)
and its network evaluations so far go in the progress bar's postfix, so that a long batch on a CPU shows life.
With targets, PSNR and SSIM against iteration (paper Fig. 1 v–w) go to TensorBoard, per image and as a mean; with
--save-every, intermediate iterates go to OUTPUT/iterates/NAME/ (Fig. 1 a–g).
"""
from __future__ import annotations

import math
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
CURVE_BUDGET = 0.1  # ... and costing at most this share of the sampling time (CurveSchedule)


class CurveSchedule:
    """Which levels of a run get a PSNR/SSIM point: every `every`-th; with a `budget`, every stride-th, the stride the
    smallest multiple of `every` whose point costs at most `budget` of the sampling time between two points.

    A point costs a PSNR and an SSIM per image on the CPU (about half a second at 1680×1120 on 2 cores), which on a
    GPU can outlast a level of sampling by far. Its cost is predicted per pixel from one point on a CROP² crop of the
    first target, a level's time from the first level sampled; the stride, once found, holds for the whole run, so
    every batch has points at the same levels (and the mean curve all of them)."""

    CROP = 256

    def __init__(self, every: int, budget: float | None):
        self.every, self.budget = every, budget
        self.stride = every if budget is None else None  # None: not decided yet
        self.seconds_per_value = None  # a point's cost per pixel value (H × W × C), predicted

    def decide(self, batch: list, level_seconds: float) -> None:
        """Fix the stride (once) from a level's time and the predicted cost of a point for `batch`'s images."""
        if self.stride is not None:
            return
        if self.seconds_per_value is None:
            target = batch[0].as_stored(batch[0].sharp)[:self.CROP, :self.CROP]
            other = np.clip(target + 0.01, 0, 1)
            began = time.monotonic()
            psnr(other, target), ssim(other, target)
            self.seconds_per_value = (time.monotonic() - began) / target.size
        cost = self.seconds_per_value * sum(job.as_stored(job.sharp).size for job in batch)
        levels = math.ceil(cost / (self.budget * max(level_seconds, 1e-9)) / self.every)
        self.stride = self.every * max(1, levels)

    def due(self, step: int) -> bool:
        return self.stride is not None and step % self.stride == 0


class CurveLogger:
    """PSNR/SSIM against iteration (paper Fig. 1 v–w) at the levels `schedule` says, and every `save_every`-th
    intermediate iterate (Fig. 1 a–g), of one batch."""

    def __init__(self, writer, batch: list, out: Path, *, schedule: CurveSchedule, save_every: int,
                 level: Callable[[int], None] = lambda step: None):
        self.writer, self.out, self.schedule, self.save_every = writer, out, schedule, save_every
        self.batch = batch  # hidd.reconstruct.Job's: pair, sharp, as_stored
        self.level = level  # told each iteration's number (1, 2, ...) as it ends
        self.curves: dict[int, list[tuple[float, float]]] = {}
        self.sampling_began = None  # when the batch's sampling began (stage): a level's time, for the schedule

    def stage(self, name: str, nfe: int) -> None:  # hidd.deblur.Deblurrer's progress
        if name == "sampling" and self.sampling_began is None:
            self.sampling_began = time.monotonic()

    def __call__(self, iteration: int, x: torch.Tensor) -> None:
        step = iteration + 1
        self.level(step)
        images = None
        if self.save_every and step % self.save_every == 0:
            images = x.permute(0, 2, 3, 1).cpu().numpy()
            for job, image in zip(self.batch, images):
                if np.isfinite(image).all():  # a non-finite image fails at the end, naming the cause
                    write_image(self.out / ITERATES / job.pair.name / f"iter_{step:05d}.png", job.as_stored(image))
        if self.schedule.every and self.batch[0].sharp is not None:
            if self.schedule.stride is None:  # the run's first level sampled: its time decides the stride
                self.schedule.decide(self.batch, time.monotonic() - (self.sampling_began or time.monotonic()))
            if self.schedule.due(step):
                images = x.permute(0, 2, 3, 1).cpu().numpy() if images is None else images
                pairs = [(job.as_stored(image), job.as_stored(job.sharp)) for job, image in zip(self.batch, images)]
                values = [(psnr(result, target), ssim(result, target)) for result, target in pairs]
                for job, (p, s) in zip(self.batch, values):
                    self.writer.add_scalar(f"psnr/{printable(job.pair.name)}", p, step)
                    self.writer.add_scalar(f"ssim/{printable(job.pair.name)}", s, step)
                self.curves[step] = values


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
        changed = stage != self.stage
        if changed:
            self.step = 0  # a new stage starts its levels again
        self.stage, self.nfe = stage, nfe
        self.draw(force=changed)

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
