"""The reconstruction job behind hidd-reconstruct: pairs in, restored images and metrics out.

One image's problem is that image's one-line failure, never the run's: unreadable or unusable files
are skipped, and anything that goes wrong while estimating or sampling an image (an exception, a
non-finite noise level, proximal weight or output) fails that image alone; in a batch, the batch is
retried one image at a time so that only the culprit fails. Every output PNG and every update of
metrics.csv is written atomically as soon as its image is done, so a killed run resumes with
--skip-existing and gives the same outputs and table as an uninterrupted one.

Photos are read as they are needed and batched by size; with --prefetch (the default) the next batch is read and
estimated (hidd.deblur.Deblurrer.estimate) in a background thread while the device samples the current one
(hidd.prefetch). Under torchrun each rank deblurs its share of the photos still to do (hidd.sharding) and rank 0
writes the run's files, merges the ranks' metrics rows into the one metrics.csv and prints the one table. A photo's
output depends on neither: both write what one process with no prefetch writes, with the same number of CPU threads
per process (torchrun's default is 1; with another, float sums round otherwise and a few pixels may differ by 1/255).
"""
from __future__ import annotations

import hashlib
import math
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from hidd import distributed
from hidd.baselines.restore import BaselineDeblurrer, baseline_checkpoint, load_baseline
from hidd.blind.map_estimators import learned_network
from hidd.blind.map_net import load_network
from hidd.cli import USER_ERRORS
from hidd.config import DEFAULT_PRESET, save_config
from hidd.deblur import Deblurrer
from hidd.imageio import ImageError, pixel_count, read_image, to_gray, to_rgb, write_image
from hidd.known_blur import KnownBlur
from hidd.metrics import psnr, ssim
from hidd.monitor import CURVE_BUDGET, CURVE_POINTS, BatchProgress, CurveLogger, CurveSchedule, log_mean_curves
from hidd.paired import Pair, find_pairs
from hidd.prior import load_prior, resolve_checkpoint
from hidd.prefetch import prefetched
from hidd.report import side_by_side, write_index
from hidd.results import (INDEX, RUN_FILE, TB, MetricsTable, check_outputs, check_same_config, check_same_run,
                          compare_path, is_run_output, part_path, prepare_output, result_path, save_run)
from hidd.sampling.blur_consistency import needs_operator
from hidd.sampling.settings import check_sampler
from hidd.settings import check_values
from hidd.sharding import RankReport, share
from hidd.text import printable
from hidd.tiling import TilingConfig

PROGRAM = "hidd-reconstruct"
# The one minimum image size, checked on reading: the blind PSF estimator (hidd.blind) needs a 16×16
# spectrum window, and smaller images carry too little to deblur.
MIN_SIZE = 16
# Fault injection for the resume test: SIGKILL the process right after its N-th output image is written,
# before that image's metrics row (the worst moment to die).
KILL_AFTER_IMAGES_ENV = "HIDD_FAULT_KILL_AFTER_IMAGES"
AUTO_GPU_BATCH = 4  # --batch-size auto on a GPU: same-size photos sampled together
KNOWN_PRESET = "depth"  # the preset with --radius-maps or --layers and neither --preset nor --config: a map's data step
KNOWN_OPTIONS = {"--radius-maps": "radius_maps", "--layers": "layers"}  # option → its KnownBlur kind (and args name)
SHARD_WAIT = timedelta(days=1)  # under torchrun: how long a rank that has finished its share waits for the others


@dataclass
class Job:
    """One readable input with its target (if any), waiting to be batched."""
    pair: Pair
    blurred: np.ndarray  # H, W, C float in [0, 1], C matching the model (3 for a 1-channel model too; 3 for a gray
    # photo and an RGB model, its value in each)
    sharp: np.ndarray | None  # the same shape as blurred
    bit_depth: int
    gray: bool = False  # a 1-channel photo given to an RGB model as three equal channels: written back as one
    known: object = None  # its known defocus (--radius-maps, --layers: hidd.known_blur), if given
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
    gray: bool = False  # its colour was at its noise level: its result projected onto gray (sampler.gray_photos)
    reason: str = ""  # what bound share (hidd.stages.select: full, hedge, noise, ringing, trust, in-focus); empty:
    # guard off
    nfe: int = 0  # its own network evaluations
    seconds: float = 0.0


def _check_paths(args) -> tuple[Path, Path]:
    """The input and the output folder, resolved; ValueError in one line where the output is a file or is the input
    (or target) folder itself, where results would mix with the images read. An output folder inside an input
    folder is fine: it is left out of the search, and so are earlier runs' output folders (run())."""
    source, out = Path(args.input).resolve(), Path(args.output).resolve()
    if not source.exists():
        raise FileNotFoundError(f"{args.input}: no such file or folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {args.output}: is a file, not a folder; choose a folder for the results")
    for flag, given in (("--input", args.input), ("--target", args.target)):
        if given and Path(given).resolve() == out:
            raise ValueError(f"--output {args.output}: is the {flag} folder itself, where the results would mix with "
                             "the images read; choose another folder (a new one inside it is fine)")
    return source, out


def _load(pair: Pair, model_channels: int, known: KnownBlur | None = None) -> Job:
    """Read and validate one pair (and its known defocus, if given); ImageError names the file and the problem."""
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
    return Job(pair=pair, blurred=pixels, sharp=sharp, bit_depth=blurred.bit_depth, gray=gray,
               known=None if known is None else known.read(pair.name, (h, w)))


def _tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


@dataclass
class Batch:
    """Same-size photos read and (for the diffusion prior) estimated, ready to sample; or the one line of a photo that
    could not be read."""
    jobs: list[Job] = field(default_factory=list)
    estimated: object = None  # hidd.deblur.Estimated of the photos (None: estimated when sampled)
    problem: str | None = None


def _prepared(pairs: list[Pair], batch_size: int, model_channels: int, estimate,
              known: KnownBlur | None = None) -> Iterator[Batch]:
    """The pairs read, in batches of at most batch_size same-size photos in input order (a batch goes as soon as it is
    full, the partly filled ones at the end), each with its stage 1 made by `estimate` (Deblurrer.estimate; None: a
    baseline, which has none), with the photos' known defocus where given. Unreadable pairs (or known defocus) come as
    batches with a problem. Made one batch ahead of the sampling
    with --prefetch (hidd.prefetch), holding at most batch_size − 1 photos of each size besides."""
    groups = defaultdict(list)
    for pair in pairs:
        try:
            job = _load(pair, model_channels, known)
        except ImageError as e:
            yield Batch(problem=str(e))
            continue
        group = groups[job.blurred.shape]
        group.append(job)
        if len(group) == batch_size:
            yield _estimated(groups.pop(job.blurred.shape), estimate, known)
    for group in groups.values():
        yield _estimated(group, estimate, known)


def _given(jobs: list[Job], known: KnownBlur | None) -> dict:
    """The Deblurrer's keyword for the jobs' known defocus (none where not given)."""
    return {} if known is None else known.arguments([job.known for job in jobs])


def _estimated(jobs: list[Job], estimate, known: KnownBlur | None = None) -> Batch:
    """A batch with its stage 1; where that fails, none (the Restorer estimates again and fails the photo at fault)."""
    if estimate is None:
        return Batch(jobs)
    try:
        return Batch(jobs, estimate(_tensor([job.blurred for job in jobs]), **_given(jobs, known)))
    except Exception:  # (as the Restorer's own estimate would; KeyboardInterrupt still stops)
        return Batch(jobs)


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


class Restorer:
    """Deblurs batches so that whatever goes wrong with one image becomes that image's Outcome.problem."""

    def __init__(self, deblurrer: Deblurrer, writer, out: Path, *, seed: int, curves: CurveSchedule, save_every: int,
                 bar: tqdm | None = None, levels: int = 0, known: KnownBlur | None = None):
        self.deblurrer, self.writer, self.out, self.seed = deblurrer, writer, out, seed
        self.known = known  # where the photos' known defocus comes from (their jobs hold it), if given
        self.schedule, self.save_every = curves, save_every
        self.bar, self.levels = bar, levels  # the progress bar whose postfix shows the batch's stage; its levels
        self.curves = defaultdict(list)  # step → per-batch PSNR/SSIM lists of the batches that succeeded
        self.curved = 0  # the batches that succeeded with curve points

    def __call__(self, batch: list[Job], estimated=None) -> list[Outcome]:
        """The outcomes of a batch; estimated: its stage 1 made beforehand (hidd.deblur.Estimated), if any."""
        shown = BatchProgress(self.bar, len(batch), self.levels) if self.bar is not None else None
        logger = CurveLogger(self.writer, batch, self.out, schedule=self.schedule, save_every=self.save_every,
                             **({"level": shown.level} if shown else {}))

        def progress(stage: str, nfe: int) -> None:
            logger.stage(stage, nfe)
            if shown is not None:
                shown(stage, nfe)

        start = time.perf_counter()
        try:
            given = _given(batch, self.known) if estimated is None else {"estimated": estimated}
            result = self.deblurrer(_tensor([j.blurred for j in batch]), seed=self.seed, callback=logger,
                                    progress=progress, **given)
        except Exception as error:  # any failure inside estimation or sampling (KeyboardInterrupt still stops)
            if len(batch) > 1:  # one at a time, only the image(s) at fault fail
                return [outcome for job in batch for outcome in self([job])]
            detail = f"{type(error).__name__}: {_first_line(error)}".rstrip(": ")
            return [Outcome(batch[0], problem=f"{batch[0].pair.blurred}: deblurring failed ({detail})")]
        seconds = (time.perf_counter() - start) / len(batch)
        for step, values in logger.curves.items():
            self.curves[step].append(values)
        self.curved += bool(logger.curves)
        radii = [""] * len(batch) if result.radius is None else [round(r, 3) for r in result.radius.tolist()]
        bounds = [False] * len(batch) if result.at_bound is None else result.at_bound.tolist()
        shares = [""] * len(batch) if result.share is None else result.share.tolist()
        gains = [None] * len(batch) if result.noise_gain is None else result.noise_gain.tolist()
        in_focus = [False] * len(batch) if result.in_focus is None else result.in_focus.tolist()
        caps = [1.0] * len(batch) if result.max_share is None else result.max_share.tolist()
        hedges = [1.0] * len(batch) if result.hedge is None else result.hedge.tolist()
        retried = [False] * len(batch) if result.retried is None else result.retried.tolist()
        grays = [False] * len(batch) if result.gray is None else result.gray.tolist()
        reasons = [""] * len(batch) if result.reasons is None else result.reasons
        excess, ringing_caps = [float("nan")] * len(batch), [1.0] * len(batch)
        if result.rang is not None:  # the guard was on
            excess = result.notch_excess.tolist()
            ringing_share = self.deblurrer.prior.config.sampler.ringing_share
            ringing_caps = [ringing_share if rang else 1.0 for rang in result.rang.tolist()]
        images = result.images.permute(0, 2, 3, 1).cpu().numpy()
        return [Outcome(job, image=None if problem else image, radius=radius, at_bound=at_bound, share=share,
                        noise_gain=gain, in_focus=focused, max_share=cap, hedge=hedged, notch_excess=ringing,
                        ringing_cap=ring_cap, retried=again, gray=grayed, reason=why, nfe=nfe, seconds=seconds,
                        problem=f"{job.pair.blurred}: {problem}" if problem else None)
                for job, image, radius, at_bound, share, gain, focused, cap, hedged, ringing, ring_cap, again, grayed,
                why, nfe, problem in zip(batch, images, radii, bounds, shares, gains, in_focus, caps, hedges, excess,
                                         ringing_caps, retried, grays, reasons, result.photo_nfe.tolist(),
                                         result.problems)]


def _row(outcome: Outcome) -> dict:
    job = outcome.job
    image, blurred = job.as_stored(outcome.image), job.as_stored(job.blurred)
    sharp = None if job.sharp is None else job.as_stored(job.sharp)
    row = {"name": job.pair.name, "input": str(job.pair.blurred), "height": image.shape[0], "width": image.shape[1],
           "nfe": outcome.nfe, "seconds": round(outcome.seconds, 3), "radius": outcome.radius,
           "share": outcome.share if outcome.share == "" else round(outcome.share, 3), "reason": outcome.reason,
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


def _write_output(outcome: Outcome, out: Path, compare: bool) -> str | None:
    """Write the restored PNG and, with `compare`, its side-by-side picture (atomically); the failure line if they
    cannot be."""
    job = outcome.job
    path = result_path(out, job.pair.name)
    try:
        write_image(path, job.as_stored(outcome.image), bit_depth=job.bit_depth)
        if compare:
            path = compare_path(out, job.pair.name)
            panels = [job.blurred, outcome.image] + ([] if job.sharp is None else [job.sharp])
            write_image(path, side_by_side([job.as_stored(panel) for panel in panels]))
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


def _method(args, device: torch.device):
    """The deblurrer of --method, the config written next to the results and the checkpoint file it was loaded from:
    the score prior's sampler (checkpoint, --config, --preset, --set) or a learned baseline (hidd.baselines: its
    checkpoint alone)."""
    if args.method == "hidd":
        default = KNOWN_PRESET if _known_flag(args) else DEFAULT_PRESET
        preset = args.preset if args.preset or args.config else default  # a --config alone keeps its sampler
        prior = load_prior(args.checkpoint, config_path=args.config, preset=preset, overrides=args.overrides,
                           device=device)
        check_sampler(prior.config.sampler)  # a refused value is a usage error, before anything is read
        check_values(prior.config, ["sde"])  # (the model's keys the strict load checks)
        tiling = TilingConfig(tile=args.tile, overlap=args.tile_overlap, tile_batch=args.tile_batch,
                              max_memory_gb=args.max_memory)
        deblurrer = Deblurrer(prior, tiling=tiling, precision=args.precision, compile=args.compile)
        return deblurrer, prior.config, resolve_checkpoint(args.checkpoint)
    given = [flag for flag, value in (("--config", args.config), ("--preset", args.preset), ("--set", args.overrides),
                                      ("--save-every", args.save_every), ("--tile", args.tile is not None),
                                      (_known_flag(args), _known_flag(args) is not None),
                                      ("--precision", args.precision != "fp32"),
                                      ("--compile", args.compile != "off")) if value]
    if given:
        raise ValueError(f"{given[0]} configures the diffusion sampler; --method {args.method} is a single network "
                         "pass with nothing to configure")
    baseline = load_baseline(args.method, args.checkpoint, device=device)
    return BaselineDeblurrer(baseline), baseline.config, baseline_checkpoint(args.method, args.checkpoint)


def _known_flag(args) -> str | None:
    """Which of --radius-maps and --layers was given (the parser allows one), if any."""
    return next((flag for flag, kind in KNOWN_OPTIONS.items() if getattr(args, kind, None) is not None), None)


def _known_blur(args, config) -> KnownBlur | None:
    """Where the photos' known defocus lies (--radius-maps, --layers; hidd.known_blur), or None; ValueError or
    FileNotFoundError in one line where the folder is missing or the sampler has no spatially varying data step."""
    flag = _known_flag(args)
    if flag is None:
        return None
    kind = KNOWN_OPTIONS[flag]
    given = getattr(args, kind)
    if not given.strip():
        raise ValueError(f"{flag}: give the folder of the photos' files")
    folder = Path(given)
    if not folder.is_dir():
        raise FileNotFoundError(f"{flag} {folder}: no such folder")
    sampler = config.sampler
    if not sampler.radius_map or not needs_operator(sampler.consistency):
        raise ValueError(f"{flag} needs a sampler with a spatially varying data step (sampler.radius_map on, "
                         f"sampler.consistency prox or gradient; the chosen one has {sampler.radius_map!r} and "
                         f"{sampler.consistency}): leave out --preset and --config (the {KNOWN_PRESET} preset), "
                         f"or choose --preset {KNOWN_PRESET}")
    return KnownBlur(kind, folder)


def _map_network(args, config, known: KnownBlur | None) -> Path | None:
    """The learned map's network the run reads (None where it reads none: another estimator, a baseline, known
    maps), loaded once here so that a missing or foreign file is a usage error (one line) before any photo."""
    network = learned_network(config.sampler) if args.method == "hidd" and known is None else None
    if network is not None:
        load_network(network)
    return network


def _run_options(args, checkpoint: Path, batch: int, device: torch.device, known: KnownBlur | None = None,
                 network: Path | None = None) -> dict:
    """What decides a run's outputs besides its config: written as run.yaml, compared on --skip-existing."""
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    options = {"method": args.method, "checkpoint": str(checkpoint.resolve()), "checkpoint_sha256": digest,
               "seed": args.seed, "batch_size": batch, "device": device.type, "precision": args.precision,
               "compile": args.compile,
               "tile": args.tile, "tile_overlap": args.tile_overlap, "tile_batch": args.tile_batch,
               "max_memory": args.max_memory}
    if known is not None:  # (only then: runs without it resume as they were written)
        options["known_defocus"] = {"kind": known.kind, "folder": str(known.folder.resolve())}
    if network is not None:  # the learned map's weights decide the outputs as the prior's do
        options["map_network"] = {"path": str(network.resolve()),
                                  "sha256": hashlib.sha256(network.read_bytes()).hexdigest()}
    return options


def batch_size(given: str | int, device: torch.device) -> int:
    """--batch-size: a count, or 'auto': 1 on a CPU (batching gains it nothing, and each photo is written as soon as
    it is done) and AUTO_GPU_BATCH on a GPU."""
    if given == "auto":
        return AUTO_GPU_BATCH if device.type == "cuda" else 1
    try:
        size = int(given)
    except ValueError:
        raise ValueError(f"--batch-size {given}: expected a whole number or auto") from None
    if size < 1:
        raise ValueError(f"--batch-size {given}: must be at least 1")
    return size


def run(args) -> list[str]:
    """Reconstruct every input of `args` (see hidd.cli.reconstruct); returns the failures, one line each
    (each already printed on stderr as it happened). Under torchrun each rank deblurs its share of the photos
    (hidd.sharding) and every rank returns all ranks' failures."""
    # the ranks meet only at the end, where the lighter shares wait for the heaviest (photos differ in NFE and size):
    # a day, not torch's 10 minutes (NCCL), before a waiting rank is taken for dead
    info = distributed.setup(args.device, timeout=SHARD_WAIT)
    try:
        return _run(args, info)
    finally:
        distributed.cleanup()


def _run(args, info: distributed.DistInfo) -> list[str]:
    try:
        ready = _start(args, info)
        error = None
    except USER_ERRORS as e:  # the same on every rank, but a rank's own folder or device may fail alone
        ready, error = None, e
    errors = distributed.gather(info, None if error is None else str(error))
    if error is not None and str(error) not in errors[:info.rank]:  # (a line a lower rank printed is not repeated)
        raise error
    if any(line is not None for line in errors):  # another rank's usage error: the same exit status
        raise SystemExit(2)
    start, deblurrer, config, size, todo = ready
    out, compare, title = start.out, start.compare, start.title
    if info.is_main:  # the run's files: once, before any rank writes a result
        save_config(config, out / "config.yaml")
        save_run(start.options, out / RUN_FILE)
        start.table.merge_parts()  # (a resume: the rows a killed sharded run's ranks left)
        if compare:
            write_index(out, start.table.ordered(), title)
        for line in start.notes:
            _say(f"{PROGRAM}: {line}")
    distributed.barrier(info)

    report = RankReport()

    def fail(line: str) -> None:
        report.failures.append(line)
        _say(f"{PROGRAM}: skipped {line}")

    if info.is_main:
        for line in start.skipped:
            fail(line)
    costs = None  # one process takes every photo
    if info.enabled:  # the photos dealt by their pixels, as rank 0 read them (so every rank deals alike)
        costs = distributed.gather(info, [pixel_count(pair.blurred) for pair in todo] if info.is_main else None)[0]
    mine = share(todo, info.rank, info.world_size, costs)
    table = start.table if info.is_main else MetricsTable(part_path(out, info.rank), list(start.table.rank))
    writer = SummaryWriter(out / TB)  # (each rank its own events file in the one run folder, its photos' tags)
    iterations = config.sampler.num_steps if args.method == "hidd" else 1
    already = start.already if not info.enabled else 0
    bar = tqdm(total=already + len(mine), initial=already, dynamic_ncols=True, unit="img", disable=not info.is_main,
               desc="deblur" if not info.enabled else f"deblur (rank 0 of {info.world_size})")
    curves = CurveSchedule(args.curve_every or max(1, iterations // CURVE_POINTS),
                           None if args.curve_every else CURVE_BUDGET)
    restore = Restorer(deblurrer, writer, out, seed=args.seed, curves=curves, save_every=args.save_every, bar=bar,
                       levels=iterations, known=start.known)
    kill_after = int(os.environ.get(KILL_AFTER_IMAGES_ENV, "0"))
    batches = _prepared(mine, size, config.model.channels, getattr(deblurrer, "estimate", None),  # (baselines: none)
                        start.known)
    try:
        # a photo's output does not depend on the photos batched with it (hidd.deblur), so a resumed run deblurs only
        # those not done and still equals an uninterrupted one
        for batch in prefetched(batches, getattr(args, "prefetch", "on") == "on"):
            if batch.problem:  # its photo could not be read
                bar.update(1)
                fail(batch.problem)
                continue
            for outcome in restore(batch.jobs, batch.estimated):
                bar.set_postfix_str("", refresh=False)  # (the next batch says its stage)
                bar.update(1)
                problem = outcome.problem or _write_output(outcome, out, compare)
                if problem:
                    fail(problem)
                    continue
                report.written += 1
                if report.written == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                problem = _record(outcome, table, writer)
                if problem:
                    fail(problem)
                elif compare and info.is_main:
                    write_index(out, table.ordered(), title)
                for note in _notes(outcome, config):
                    _say(f"{PROGRAM}: {note}")
    finally:  # (a Ctrl-C's line then starts on a line of its own)
        bar.close()
    report.curves, report.curved = dict(restore.curves), restore.curved
    everyone = RankReport.merged(distributed.gather(info, report))  # (every rank's rows are written by now)
    if info.is_main:
        log_mean_curves(writer, everyone.curves, everyone.curved)
    writer.close()
    if info.is_main:
        if info.enabled:
            table.merge_parts()
            if compare:
                write_index(out, table.ordered(), title)
        if table.rows:
            print(table.summary())  # names in it are printable already
        print(printable(f"{PROGRAM}: {everyone.written} image(s) written to {out}"
                        + (f" by {info.world_size} processes" if info.enabled else "")
                        + (f" ({start.already} done before)" if start.already else "")
                        + (f"; pictures in {out / INDEX}" if compare and table.rows else "")))
        sys.stdout.flush()  # (before any rank leaves: torchrun stops the others when one exits with a failure)
    distributed.barrier(info)  # no rank leaves before rank 0's table is whole
    return everyone.failures


@dataclass
class Start:
    """What every rank of a run finds before any writes: its folder, table and the lines rank 0 prints."""
    out: Path
    compare: bool
    title: str
    options: dict  # run.yaml
    table: MetricsTable  # metrics.csv, with any earlier rows (--skip-existing)
    already: int  # photos done before (--skip-existing)
    skipped: list[str]  # inputs find_pairs could not use, one line each
    notes: list[str]  # what rank 0 says before it starts
    known: KnownBlur | None = None  # where the photos' known defocus lies (--radius-maps, --layers), if given


def _start(args, info: distributed.DistInfo):
    """Every check before anything is written (ValueError or OSError in one line), and what the run needs:
    (Start, deblurrer, config, batch size, the pairs still to do in input order)."""
    for flag, value in (("--save-every", args.save_every), ("--curve-every", args.curve_every)):
        if value < 0:
            raise ValueError(f"{flag} {value}: give 0 (off, or the default) or a number of iterations")
    source, out = _check_paths(args)
    device = info.device
    size = batch_size(args.batch_size, device)
    compare = getattr(args, "compare", False)
    deblurrer, config, checkpoint = _method(args, device)
    known = _known_blur(args, config)
    options = _run_options(args, checkpoint, size, device, known, _map_network(args, config, known))
    skipped: list[ImageError] = []
    left_out: list[Path] = []  # output folders inside the input or target folder: not searched

    def not_searched(folder: Path) -> bool:
        if folder.resolve() == out or is_run_output(folder):
            left_out.append(folder)
            return True
        return False

    pairs = find_pairs(args.input, target=args.target, dataset=args.dataset, skipped=skipped, exclude=not_searched)
    resuming = getattr(args, "skip_existing", False)
    check_outputs(out, pairs, compare, resuming)
    prepare_output(out, args.output)
    table = MetricsTable(out / "metrics.csv", [pair.name for pair in pairs])
    if resuming:
        check_same_config(config, out / "config.yaml")
        check_same_run(options, out / RUN_FILE)
        table.read_existing()
    todo = [pair for pair in pairs if not table.done(pair.name)]
    notes = []
    inside = [flag for flag, given in (("--input", args.input), ("--target", args.target))
              if given and Path(given).resolve() in out.parents]
    if inside:
        notes.append(f"note: --output {args.output} lies inside {inside[0]} {getattr(args, inside[0][2:])}; the "
                     "images in it are not read as inputs or targets")
    for folder in dict.fromkeys(folder for folder in left_out if folder.resolve() != out):
        notes.append(f"note: {folder} holds an earlier run's outputs (metrics.csv, config.yaml); its images are not "
                     "read as inputs or targets")
    already = len(pairs) - len(todo)
    if already:
        notes.append(f"{already} image(s) already done in {out} (--skip-existing)")
    start = Start(out=out, compare=compare, title=f"{PROGRAM} {printable(str(args.input))}", options=options,
                  table=table, already=already, skipped=[str(e) for e in skipped], notes=notes, known=known)
    return start, deblurrer, config, size, todo


def _notes(outcome: Outcome, config) -> list[str]:
    """What a user should know of a photo written: a blur at the search's edge, the guard's back-off, a gray photo."""
    notes, source = [], outcome.job.pair.blurred
    if outcome.at_bound:
        notes.append(f"warning: {source}: the blind radius estimate {outcome.radius} px is the largest searched, so "
                     "the blur may be larger; if so, give it: --set sampler.radius=R")
    if outcome.share != "" and _backed_off(outcome, config.sampler.max_noise_gain):  # "": guard off
        notes.append(f"note: {source}: {_back_off_note(outcome, config.sampler.max_noise_gain)}")
    if outcome.gray and not outcome.job.gray:  # (a 1-channel photo is written back as one channel anyway)
        notes.append(f"note: {source}: its colour is at its noise level (a black-and-white photo), so its result "
                     "was made gray (sampler.gray_photos)")
    return notes
