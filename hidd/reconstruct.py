"""The reconstruction job behind hidd-reconstruct: pairs in, restored images and metrics out.

One image's problem is that image's one-line failure, never the run's: unreadable or unusable files
are skipped, and anything that goes wrong while estimating or sampling an image (an exception, a
non-finite noise level, proximal weight or output) fails that image alone; in a batch, the batch is
retried one image at a time so that only the culprit fails. Every output PNG and every update of
metrics.csv is written atomically as soon as its image is done, so a killed run resumes with
--skip-existing and gives the same outputs and table as an uninterrupted one.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from hidd.baselines.restore import BaselineDeblurrer, load_baseline
from hidd.config import save_config
from hidd.deblur import Deblurrer
from hidd.imageio import ImageError, read_image, to_gray, to_rgb, write_image
from hidd.metrics import psnr, ssim
from hidd.paired import Pair, find_pairs
from hidd.prior import DEFAULT_PRESET, load_prior
from hidd.results import MetricsTable, check_same_config, prepare_output
from hidd.sampling.loops import check_settings
from hidd.text import printable
from hidd.tiling import TilingConfig

PROGRAM = "hidd-reconstruct"
# The one minimum image size, checked on reading: the blind PSF estimator (hidd.blind) needs a 16×16
# spectrum window, and smaller images carry too little to deblur.
MIN_SIZE = 16
# Fault injection for the resume test: SIGKILL the process right after its N-th output image is written,
# before that image's metrics row (the worst moment to die).
KILL_AFTER_IMAGES_ENV = "HIDD_FAULT_KILL_AFTER_IMAGES"


@dataclass
class Job:
    """One readable input with its target (if any), waiting to be batched."""
    pair: Pair
    blurred: np.ndarray  # H, W, C float in [0, 1], C matching the model (3 for a 1-channel model too; 3 for a gray
    # photo and an RGB model, its value in each)
    sharp: np.ndarray | None  # the same shape as blurred
    bit_depth: int
    gray: bool = False  # a 1-channel photo given to an RGB model as three equal channels: written back as one
    metrics: dict = field(default_factory=dict)

    def as_stored(self, pixels: np.ndarray) -> np.ndarray:
        """An image of this job (H, W, C) as it is written and measured: one channel again for a gray photo."""
        return to_gray(pixels) if self.gray else pixels


@dataclass
class Outcome:
    """What deblurring one job gave: an image, or the one-line reason why not."""
    job: Job
    image: np.ndarray | None = None  # H, W, C in [0, 1]
    problem: str | None = None
    radius: float | str = ""  # PSF radius used; empty without a blur model
    at_bound: bool = False  # the blind radius is the largest searched: the blur may be larger
    share: float | str = ""  # of the deblurring kept by the no-harm guard, hedge included: 1 all, 0 the input;
    # empty: guard off
    noise_gain: float | None = None  # the full result's flat-patch noise over the input's (guard on)
    in_focus: bool = False  # the blind estimate read no blur: the guard returned the input unchanged
    max_share: float = 1.0  # the most of the deblurring that could be kept (< 1: a blur read from the edges alone)
    hedge: float = 1.0  # the hedge in share (sampler.hedge_share: < 1 where the misfit was correlated)
    notch_excess: float = float("nan")  # the full result's ringing at its blur's first OTF notch (hidd.ringing)
    ringing_cap: float = 1.0  # the most of it kept for that ringing (sampler.ringing_share where it rang, else 1)
    retried: bool = False  # its first result was too noisy, and the second sampling's is kept (noisy_retry_lambda)
    nfe: int = 0
    seconds: float = 0.0


def _check_paths(args) -> tuple[Path, Path]:
    source, out = Path(args.input).resolve(), Path(args.output).resolve()
    if not source.exists():
        raise FileNotFoundError(f"{args.input}: no such file or folder")
    folder = source if source.is_dir() else source.parent
    for guarded in filter(None, [folder, Path(args.target).resolve() if args.target else None]):
        if out == guarded or guarded in out.parents:
            raise ValueError(f"--output {args.output}: is (inside) an input folder; choose another so "
                             "that inputs are never overwritten")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {args.output}: is a file, not a folder; choose a folder for the results")
    return source, out


def _load(pair: Pair, model_channels: int) -> Job:
    """Read and validate one pair; ImageError names the file and the problem."""
    blurred = read_image(pair.blurred)
    pixels = blurred.pixels
    h, w, c = pixels.shape
    if min(h, w) < MIN_SIZE:
        raise ImageError(pair.blurred, f"is {w}x{h}; images must be at least {MIN_SIZE}x{MIN_SIZE} pixels")
    sharp = None
    if pair.sharp is not None:
        sharp = read_image(pair.sharp).pixels
        if sharp.shape != pixels.shape:
            raise ImageError(pair.sharp, f"target is {sharp.shape[1]}x{sharp.shape[0]}x{sharp.shape[2]} but "
                                         f"the input is {w}x{h}x{c}")
    gray = c == 1 and model_channels == 3  # R = G = B is a colour photo like any other to the prior
    if gray:
        pixels, sharp = to_rgb(pixels), None if sharp is None else to_rgb(sharp)
    return Job(pair=pair, blurred=pixels, sharp=sharp, bit_depth=blurred.bit_depth, gray=gray)


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


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


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
                if np.isfinite(image).all():  # a non-finite image fails at the end, naming the cause
                    write_image(self.out / "iterates" / job.pair.name / f"iter_{step:05d}.png", job.as_stored(image))
        if self.curve_every and step % self.curve_every == 0 and self.batch[0].sharp is not None:
            images = x.permute(0, 2, 3, 1).cpu().numpy() if images is None else images
            pairs = [(job.as_stored(image), job.as_stored(job.sharp)) for job, image in zip(self.batch, images)]
            values = [(psnr(result, target), ssim(result, target)) for result, target in pairs]
            for job, (p, s) in zip(self.batch, values):
                self.writer.add_scalar(f"psnr/{printable(job.pair.name)}", p, step)
                self.writer.add_scalar(f"ssim/{printable(job.pair.name)}", s, step)
            self.curves[step] = values


def _log_mean_curves(writer, curves: dict[int, list[list[tuple[float, float]]]]) -> None:
    for step in sorted(curves):
        values = np.array([v for batch in curves[step] for v in batch])
        writer.add_scalar("psnr/mean", values[:, 0].mean(), step)
        writer.add_scalar("ssim/mean", values[:, 1].mean(), step)


class Restorer:
    """Deblurs batches so that whatever goes wrong with one image becomes that image's Outcome.problem."""

    def __init__(self, deblurrer: Deblurrer, writer, out: Path, *, seed: int, curve_every: int, save_every: int):
        self.deblurrer, self.writer, self.out, self.seed = deblurrer, writer, out, seed
        self.curve_every, self.save_every = curve_every, save_every
        self.curves = defaultdict(list)  # step → per-batch PSNR/SSIM lists of the batches that succeeded

    def __call__(self, batch: list[Job]) -> list[Outcome]:
        logger = CurveLogger(self.writer, batch, self.out, curve_every=self.curve_every, save_every=self.save_every)
        start = time.perf_counter()
        try:
            result = self.deblurrer(_tensor([j.blurred for j in batch]), seed=self.seed, callback=logger)
        except Exception as error:  # any failure inside estimation or sampling (KeyboardInterrupt still stops)
            if len(batch) > 1:  # one at a time, only the image(s) at fault fail
                return [outcome for job in batch for outcome in self([job])]
            detail = f"{type(error).__name__}: {_first_line(error)}".rstrip(": ")
            return [Outcome(batch[0], problem=f"{batch[0].pair.blurred}: deblurring failed ({detail})")]
        seconds = (time.perf_counter() - start) / len(batch)
        for step, values in logger.curves.items():
            self.curves[step].append(values)
        radii = [""] * len(batch) if result.radius is None else [round(r, 3) for r in result.radius.tolist()]
        bounds = [False] * len(batch) if result.at_bound is None else result.at_bound.tolist()
        shares = [""] * len(batch) if result.share is None else result.share.tolist()
        gains = [None] * len(batch) if result.noise_gain is None else result.noise_gain.tolist()
        in_focus = [False] * len(batch) if result.in_focus is None else result.in_focus.tolist()
        caps = [1.0] * len(batch) if result.max_share is None else result.max_share.tolist()
        hedges = [1.0] * len(batch) if result.hedge is None else result.hedge.tolist()
        retried = [False] * len(batch) if result.retried is None else result.retried.tolist()
        excess, ringing_caps = [float("nan")] * len(batch), [1.0] * len(batch)
        if result.rang is not None:  # the guard was on
            excess = result.notch_excess.tolist()
            ringing_share = self.deblurrer.prior.config.sampler.ringing_share
            ringing_caps = [ringing_share if rang else 1.0 for rang in result.rang.tolist()]
        images = result.images.permute(0, 2, 3, 1).cpu().numpy()
        return [Outcome(job, image=None if problem else image, radius=radius, at_bound=at_bound, share=share,
                        noise_gain=gain, in_focus=focused, max_share=cap, hedge=hedged, notch_excess=ringing,
                        ringing_cap=ring_cap, retried=again, nfe=result.nfe, seconds=seconds,
                        problem=f"{job.pair.blurred}: {problem}" if problem else None)
                for job, image, radius, at_bound, share, gain, focused, cap, hedged, ringing, ring_cap, again, problem
                in zip(batch, images, radii, bounds, shares, gains, in_focus, caps, hedges, excess, ringing_caps,
                       retried, result.problems)]


def _row(outcome: Outcome) -> dict:
    job = outcome.job
    image, blurred = job.as_stored(outcome.image), job.as_stored(job.blurred)
    sharp = None if job.sharp is None else job.as_stored(job.sharp)
    row = {"name": job.pair.name, "input": str(job.pair.blurred), "height": image.shape[0], "width": image.shape[1],
           "nfe": outcome.nfe, "seconds": round(outcome.seconds, 3), "radius": outcome.radius,
           "share": outcome.share if outcome.share == "" else round(outcome.share, 3),
           "psnr_input": "", "ssim_input": "", "psnr": "", "ssim": ""}
    if sharp is not None:
        row.update(psnr_input=round(psnr(blurred, sharp), 4), ssim_input=round(ssim(blurred, sharp), 4),
                   psnr=round(psnr(image, sharp), 4), ssim=round(ssim(image, sharp), 4))
    return row


def _backed_off(outcome: Outcome, limit: float) -> bool:
    """Whether the no-harm guard (on, with noise limit `limit`) kept less than the (hedged) first result: read in
    focus, too noisy (a NaN gain counts as such; its second sampling's result kept instead), a half-trusted blur, or
    a result that rang."""
    return (outcome.in_focus or outcome.retried or not outcome.noise_gain <= limit or outcome.max_share < 1
            or outcome.ringing_cap < 1)


def _back_off_note(outcome: Outcome, limit: float) -> str:
    """What the no-harm guard (whose noise limit is `limit`) did to a photo it did not leave fully deblurred, and the
    setting that made it; and the hedge on top, if any."""
    if outcome.in_focus:
        return "left unchanged; the blind estimate found no blur (sampler.max_noise_gain)"
    kept = outcome.share / outcome.hedge  # the guard's own share w (the hedge h > 0)
    edges_only = (f"its spectrum reads in focus and only its edges show the blur ({outcome.radius} px), so at most "
                  f"{outcome.max_share:.0%} of its deblurring is kept (sampler.edge_read_share)")
    ratio = math.exp(outcome.notch_excess)
    rings = (f"its deblurred result rings (its power at its blur's first OTF notch is {ratio:.1f}× "
             f"its spectrum's trend), so at most {outcome.ringing_cap:.0%} of it is kept (sampler.ringing_share)")
    held = "; and ".join([reason for reason, cap in ((edges_only, outcome.max_share), (rings, outcome.ringing_cap))
                          if cap < 1])  # what capped the share
    hedged = (f"; hedged to {outcome.share:.0%} in all, its misfit being correlated (sampler.hedge_share)"
              if outcome.hedge < 1 and outcome.share > 0 else "")
    again = ("its first result was too noisy, so it was sampled again trusting the prior more "
             "(sampler.noisy_retry_lambda)" if outcome.retried else "")
    if outcome.noise_gain <= limit:  # the (second) result was clean
        if not held:  # nothing else held it back
            return f"{again}, and that result kept{hedged}"
        return (f"{again}; " if again else "") + (f"deblurred at {kept:.0%} strength (blended with the input): "
                                                  f"{held}{hedged}")
    noisy = ((f"{again}; its second" if again else "its") + f" deblurred result had {round(outcome.noise_gain, 2):g}× "
             "the input's noise in flat areas")
    if outcome.share == 0:
        said = f"left unchanged; {noisy}, and even its blends with the input stayed too noisy"
    else:
        said = f"backed off to {kept:.0%} of its deblurring (blended with the input); {noisy}"
    return f"{said} (sampler.max_noise_gain)" + (f"; and {held}" if held else "") + hedged


def _write_output(outcome: Outcome, out: Path) -> str | None:
    """Write the restored PNG (atomically); the failure line if it cannot be."""
    path = out / f"{outcome.job.pair.name}.png"
    try:
        write_image(path, outcome.job.as_stored(outcome.image), bit_depth=outcome.job.bit_depth)
    except OSError as e:
        return f"{path}: cannot be written ({e.strerror or e})"
    return None


def _record(outcome: Outcome, table: MetricsTable, writer) -> str | None:
    """Add the image's metrics row (rewriting metrics.csv atomically) and its TensorBoard images."""
    try:
        table.add(_row(outcome))
    except OSError as e:
        return f"{table.path}: cannot be written for {outcome.job.pair.name} ({e.strerror or e})"
    job = outcome.job
    if job.sharp is not None:
        trio = [job.as_stored(image) for image in (job.blurred, outcome.image, job.sharp)]
        writer.add_images(f"result/{printable(job.pair.name)}", np.stack(trio), 0, dataformats="NHWC")
    return None


def _say(line: str) -> None:
    """One line on stderr, printable whatever the file names hold, without breaking the progress bar."""
    tqdm.write(printable(line), file=sys.stderr)


def _method(args, device: str):
    """The deblurrer of --method and the config written next to the results: the score prior's sampler
    (checkpoint, --config, --preset, --set) or a learned baseline (hidd.baselines: its checkpoint alone)."""
    if args.method == "hidd":
        preset = args.preset if args.preset or args.config else DEFAULT_PRESET  # a --config alone keeps its sampler
        prior = load_prior(args.checkpoint, config_path=args.config, preset=preset, overrides=args.overrides,
                           device=device)
        check_settings(prior.config.sampler)  # a refused setting is a usage error, before anything is written
        tiling = TilingConfig(tile=args.tile, overlap=args.tile_overlap, tile_batch=args.tile_batch,
                              max_memory_gb=args.max_memory)
        return Deblurrer(prior, tiling=tiling, precision=args.precision), prior.config
    given = [flag for flag, value in (("--config", args.config), ("--preset", args.preset), ("--set", args.overrides),
                                      ("--save-every", args.save_every), ("--tile", args.tile is not None),
                                      ("--precision", args.precision != "fp32")) if value]
    if given:
        raise ValueError(f"{given[0]} configures the diffusion sampler; --method {args.method} is a single network "
                         "pass with nothing to configure")
    baseline = load_baseline(args.method, args.checkpoint, device=device)
    return BaselineDeblurrer(baseline), baseline.config


def run(args) -> list[str]:
    """Reconstruct every input of `args` (see hidd.cli.reconstruct); returns the failures, one line each
    (each already printed on stderr as it happened)."""
    source, out = _check_paths(args)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: must be at least 1")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    deblurrer, config = _method(args, device)
    skipped: list[ImageError] = []
    pairs = find_pairs(args.input, target=args.target, dataset=args.dataset, skipped=skipped)
    prepare_output(out, args.output)
    table = MetricsTable(out / "metrics.csv", [pair.name for pair in pairs])
    if getattr(args, "skip_existing", False):
        check_same_config(config, out / "config.yaml")
        table.read_existing()
    save_config(config, out / "config.yaml")
    table.write()

    failures = []

    def fail(line: str) -> None:
        failures.append(line)
        _say(f"{PROGRAM}: skipped {line}")

    for error in skipped:
        fail(str(error))
    jobs = []
    for pair in pairs:
        try:
            jobs.append(_load(pair, config.model.channels))
        except ImageError as e:
            fail(str(e))
    already = sum(table.done(job.pair.name) for job in jobs)
    if already:
        _say(f"{PROGRAM}: {already} image(s) already done in {out} (--skip-existing)")

    writer = SummaryWriter(out / "tb")
    iterations = config.sampler.num_steps if args.method == "hidd" else 1
    restore = Restorer(deblurrer, writer, out, seed=args.seed, save_every=args.save_every,
                       curve_every=args.curve_every or max(1, iterations // 100))
    kill_after, written = int(os.environ.get(KILL_AFTER_IMAGES_ENV, "0")), 0
    bar = tqdm(total=len(jobs), initial=already, desc="deblur", unit="img", dynamic_ncols=True)
    for batch in _batches(jobs, args.batch_size):
        # Batches are formed over all inputs, done or not, and a partly done one runs whole: the noise of a
        # batch depends on its members, so this is what keeps a resumed run equal to an uninterrupted one.
        pending = {job.pair.name for job in batch if not table.done(job.pair.name)}
        if not pending:
            continue
        for outcome in restore(batch):
            if outcome.job.pair.name not in pending:  # done before a resume: recomputed identically, left alone
                continue
            bar.update(1)
            problem = outcome.problem or _write_output(outcome, out)
            if problem:
                fail(problem)
                continue
            written += 1
            if written == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            problem = _record(outcome, table, writer)
            if problem:
                fail(problem)
            elif outcome.at_bound:
                _say(f"{PROGRAM}: warning: {outcome.job.pair.blurred}: the blind radius estimate {outcome.radius} px "
                     "is the largest searched, so the blur may be larger; if so, give it: --set sampler.radius=R")
            if outcome.share != "" and _backed_off(outcome, config.sampler.max_noise_gain):  # "": guard off
                _say(f"{PROGRAM}: note: {outcome.job.pair.blurred}: "
                     f"{_back_off_note(outcome, config.sampler.max_noise_gain)}")
    bar.close()
    _log_mean_curves(writer, restore.curves)
    writer.close()
    if table.rows:
        print(table.summary())  # names in it are printable already
    print(printable(f"{PROGRAM}: {written} image(s) written to {out}"
                    + (f" ({already} done before)" if already else "")))
    return failures
