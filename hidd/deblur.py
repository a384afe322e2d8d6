"""Deblur batches of photos with a score prior, in three stages, each photo independently of its batch.

    estimate(photos, cfg) → (model, evidence)          hidd.stages.estimate
    sample(model, …) → (result, calibration)            hidd.stages.sample
    select(photo, candidates, evidence) → (output, share, reason)   hidd.stages.select

- estimate: the photos in the network's layout (hidd.stages.layout: padded to its size multiple, a 1-channel prior's
  colour channels as images of their own) and, for blur-aware consistency steps, their measurement model
  (hidd.measurement: the given radius, or one estimated blindly from each photo, and its noise level) with the
  evidence the guard weighs a result with (radius, at_bound, max_share, in focus, gray);
- sample: the configured sampler (hidd.sampling) on the photos to deblur; with sampler.max_noise_gain a photo the
  blind estimate read in focus is not sampled (NFE 0). It returns the calibration its data step measured
  (hidd.sampling.calibration) and changes nothing in the model;
- select, with sampler.max_noise_gain (hidd.no_harm): of the photo itself, its first result and, where the guard
  calls for it (a blind result too noisy whose misfit was correlated, sampler.noisy_retry_lambda), a second
  sampling's result (the calibration given explicitly; its NFE counts for that photo), the output the guard keeps:
  the share s of y + s (x̂ − y) is the least cap of its checks (noise, ringing, trust) times its hedge, and `reason`
  names what bound it.
With sampler.gray_photos a colour photo whose colour is at its noise level comes back gray: its results, and the
photo the guard blends them with, projected onto gray (hidd.colour: a black-and-white photo saved as RGB would
otherwise come back tinted).

A photo's output does not depend on the photos batched with it: each draws its noise from its own generator seeded
with the run's seed (hidd.randomness: photo i of a batch draws what it would alone), restarts alone where its own
calibration asks (hidd.sampling.tweedie), is solved on its frame bordered by its own PSF's half-width
(hidd.operators), is sampled again alone, and is judged alone. The network is tiled by one image's memory and runs
on as many whole images at a time as the budget holds (hidd.tiling). This layer also counts each photo's network
evaluations (NFE), sets the network's precision, and names, per photo, any non-finite quantity (noise level,
proximal weight, radius, output), so that a caller never writes NaN and can fail that photo alone.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch

from hidd.camera.optics import Layers
from hidd.precision import InferencePrecision
from hidd.prior import Prior
from hidd.randomness import PhotoGenerators
from hidd.sampling.calibration import Calibration
from hidd.sampling.settings import check_sampler
from hidd.stages.estimate import Evidence, Model, estimate
from hidd.stages.layout import Layout
from hidd.stages.sample import sample, sample_again
from hidd.stages.select import Candidate, Selection, judge_batch, select, wants_second_sampling, within_region
from hidd.tiling import ScoreTiler, TilingConfig


@dataclass
class DeblurResult:
    images: torch.Tensor  # (B, C, H, W) in [0, 1]
    nfe: int  # network evaluations per photo: the most of any photo of the batch (photo_nfe: each one's)
    radius: torch.Tensor | None = None  # (B,) PSF radius used (map mean if spatially varying); None: no blur model
    at_bound: torch.Tensor | None = None  # (B,) the blind radius is the largest searched (the blur may be larger)
    noise_sigma: torch.Tensor | None = None  # (B,) RMS noise level of the data term (calibrated where the sampler
    # measured it); None: no blur model
    share: torch.Tensor | None = None  # (B,) the share of the deblurring kept (no_harm, hedge included): 1 all, 0 the
    # input unchanged
    noise_gain: torch.Tensor | None = None  # (B,) the full result's flat-patch noise over the input's (max_noise_gain;
    # NaN where read in focus: not measured)
    in_focus: torch.Tensor | None = None  # (B,) bool: the blind estimate read no blur, so the guard returned the photo
    # unchanged; None without the guard or with a given radius (map)
    max_share: torch.Tensor | None = None  # (B,) the most of the deblurring the guard may keep: < 1 where the blur
    # was half-trusted (read from the photo's edges alone); None without a blur model
    hedge: torch.Tensor | None = None  # (B,) the hedge in share (sampler.hedge_share; 1: none); None: guard off
    notch_excess: torch.Tensor | None = None  # (B,) the full result's ringing at its blur's first OTF notch (log power
    # ratio, hidd.ringing); NaN: not measured; None: guard off
    rang: torch.Tensor | None = None  # (B,) bool: that ringing capped the share (sampler.ringing_share); None: no guard
    misfit_correlation: torch.Tensor | None = None  # (B,) float64: the lag-1 autocorrelation of the data step's
    # calibration misfit (hidd.misfit; the largest over a photo's network images); NaN: not measured; None: no blur
    # model
    retried: torch.Tensor | None = None  # (B,) bool: the result kept is the second sampling's (noisy_retry_lambda)
    gray: torch.Tensor | None = None  # (B,) bool: its colour was at its noise level, so its result was projected onto
    # gray (sampler.gray_photos, hidd.colour); None: not tested
    reasons: list[str] | None = None  # (B,) what bound each share (hidd.stages.select: full, hedge, noise, ringing,
    # trust, in-focus, '+'-joined); None: guard off
    photo_nfe: torch.Tensor | None = None  # (B,) long: each photo's network evaluations (default: nfe for every one)
    problems: list[str | None] = field(default_factory=list)  # (B,) why an image's result is unusable, else None

    def __post_init__(self):
        self.problems = self.problems or [None] * self.images.shape[0]
        if self.photo_nfe is None:
            self.photo_nfe = torch.full((self.images.shape[0],), self.nfe, dtype=torch.long)


class Estimated(NamedTuple):
    """Stage 1 of a batch (Deblurrer.estimate): its layout, model and evidence."""
    layout: Layout
    model: Model
    evidence: Evidence


class Progress:
    """Tells `report(stage, nfe)` what a batch is doing and how many network evaluations it has made so far."""

    def __init__(self, report: Callable[[str, int], None] | None):
        self.report, self.current, self.nfe = report, "", 0

    def stage(self, name: str) -> None:
        self.current = name
        if self.report is not None:
            self.report(name, self.nfe)

    def counting(self, score_fn):
        """score_fn, counting its calls (one per network evaluation) and reporting each."""
        def counted(x, sigma):
            out = score_fn(x, sigma)
            self.nfe += 1
            if self.report is not None:
                self.report(self.current, self.nfe)
            return out
        return counted


class Deblurrer:
    """Runs the configured sampler of a prior on defocused images y (B, C, H, W) in [0, 1]."""

    def __init__(self, prior: Prior, *, tiling: TilingConfig | None = None, precision: str = "fp32",
                 norm: str = "auto", compile: str = "off"):
        """tiling: how to tile the network on large images (default: only beyond the memory budget);
        precision: 'fp32', 'bf16', 'fp16' or 'auto'; norm: the GroupNorms' reduction, 'auto', 'native' or 'split';
        compile: torch.compile mode, 'off', 'default', 'max-autotune' or 'reduce-overhead' (see hidd.precision)."""
        self.prior = prior
        self.tiler = ScoreTiler.for_prior(tiling or TilingConfig(), prior)
        self.precision = InferencePrecision(precision, prior.device, norm=norm, compile=compile)
        self.network = self.precision.prepare(prior.model)  # the model, or its compiled version
        self.model_channels = prior.config.model.channels
        self.multiple = prior.model.size_multiple

    @torch.no_grad()
    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.precision.run(self.network, x, sigma)

    def __call__(self, y: torch.Tensor, *, seed: int = 0, callback=None, radius_map: torch.Tensor | None = None,
                 layers: list[Layers] | None = None, progress: Callable[[str, int], None] | None = None,
                 estimated: Estimated | None = None) -> DeblurResult:
        """seed: every photo's noise is drawn from a generator of its own seeded with it (a photo's output is the
        same alone and in any batch). callback(iteration, images) receives the current iterate, cropped and in the
        input's layout (each photo's latest). radius_map: a known per-pixel defocus radius (B, H, W) instead of the
        estimate (needs sampler.radius_map); layers: instead, each photo's known layered scene (hidd.camera.Layers),
        blurred with occlusion (hidd.operators.LayeredBlur). progress(stage, nfe) is told, as it goes, what the batch
        is doing (reading colour, estimating the blur, sampling, checking the results, sampling again) and its
        network evaluations so far. estimated: the batch's stage 1, made beforehand (`estimate`: a prefetch)."""
        b = y.shape[0]
        cfg = self.prior.config.sampler
        report = Progress(progress)
        if estimated is None:
            estimated = self.estimate(y, radius_map=radius_map, layers=layers, stage=report.stage)
        layout, model, evidence = estimated
        generators = PhotoGenerators.seeded(seed, b, self.prior.device, layout.images_per_photo)
        score_fn = report.counting(self.tiler.wrap(self.score, model.y.shape))  # on tiles when an image is too large

        def photos(x, index):  # network images of photos `index` → those photos
            return evidence.grayed(layout.to_photos(x), index)

        # a photo read in focus is returned as it is: not sampled (denoising alone costs its detail)
        todo = [i for i in range(b) if evidence.in_focus is None or not bool(evidence.in_focus[i])]
        results, nfe = photos(model.y, list(range(b))).clone(), torch.zeros(b, dtype=torch.long)
        calibration = None if model.operator is None else Calibration.blind(model.operator, cfg.prox_lambda)
        if todo:
            report.stage("sampling")
            rows = torch.tensor(layout.rows(todo), device=model.y.device)
            step_callback = None if callback is None else (
                lambda i, x: callback(i, photos(model.y.index_copy(0, rows, x.to(model.y)), list(range(b)))))
            sampled, measured = sample(model.photos(todo), self.prior.sde, score_fn, cfg, generators.select(todo),
                                       callback=step_callback)
            # (sampled.images are already in the photos' layout)
            results[todo], nfe[todo] = evidence.grayed(sampled.images, todo), sampled.nfe
            if measured is not None:
                calibration = calibration.scatter(layout.rows(todo), measured)
        per_photo = self._evidence(evidence, calibration, b)
        if not _guarded(model, cfg):  # (the guard keeps by region where it selects)
            results = within_region(evidence.grayed(y.to(results)), results, evidence.region)
            return DeblurResult(images=results.clamp(0, 1), nfe=int(nfe.max()), photo_nfe=nfe, gray=evidence.gray,
                                problems=self._problems(model, calibration, results, b), **per_photo)
        kept, results, extra = self._guard(y.to(results.device), results, model, evidence, calibration, generators,
                                           score_fn, report)
        nfe += extra
        per_photo.update(share=torch.tensor([s.share for s in kept], dtype=torch.float64),
                         noise_gain=torch.cat([s.measured.noise_gain for s in kept]),
                         hedge=torch.cat([s.measured.hedge for s in kept]),
                         notch_excess=torch.cat([s.measured.notch_excess for s in kept]),
                         rang=torch.cat([s.measured.rang for s in kept]),
                         retried=torch.tensor([s.candidate == 1 for s in kept]), reasons=[s.reason for s in kept])
        problems = self._problems(model, calibration, results, b)  # of the results, before any blend hides them
        images = torch.stack([s.output for s in kept])
        return DeblurResult(images=images.clamp(0, 1), nfe=int(nfe.max()), photo_nfe=nfe, gray=evidence.gray,
                            problems=problems, **per_photo)

    @torch.no_grad()  # (grad mode is per thread: the prefetch thread's is not __call__'s)
    def estimate(self, y: torch.Tensor, *, radius_map: torch.Tensor | None = None,
                 layers: list[Layers] | None = None, stage: Callable[[str], None] = lambda name: None) -> Estimated:
        """Stage 1 of photos y (B, C, H, W) alone (see __call__), for a later call to sample them."""
        cfg = self.prior.config.sampler
        check_sampler(cfg)  # before the blind estimates, which a refused setting would waste
        layout = Layout.of(y, self.model_channels, self.multiple)
        device = torch.device(self.prior.device)  # the current card is per thread (a prefetch thread's is cuda:0)
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            return Estimated(layout, *estimate(y.to(device), cfg, layout, radius_map=radius_map, layers=layers,
                                               stage=stage))

    def _guard(self, y, results, model: Model, evidence: Evidence, calibration: Calibration, generators, score_fn,
               report) -> tuple[list[Selection], torch.Tensor, torch.Tensor]:
        """The no-harm guard's selection for each photo of y (B, C, H, W) among its results (B, C, H, W) and, where it
        calls for one, a second sampling's (given the first's calibration): (the selections, the results with those
        kept from the second sampling, (B,) the second sampling's NFE)."""
        cfg = self.prior.config.sampler
        b, per = y.shape[0], model.layout.images_per_photo
        photos = evidence.grayed(y)  # what a result is compared and blended with
        lenses = model.operator.with_softening(calibration.softening).lenses  # the blur the sampling used
        correlation = calibration.misfit_correlation.reshape(b, per)
        candidates = [Candidate(results[i], None if lenses is None else tuple(lenses[i * per:(i + 1) * per]),
                                correlation[i]) for i in range(b)]
        report.stage("checking the results")
        judged = judge_batch(photos, candidates, evidence, cfg)  # the first results, measured as one batch
        kept = [select(photos[i], [candidates[i]], evidence.select([i]), cfg, [judged[i]]) for i in range(b)]
        again = [i for i in range(b) if wants_second_sampling(kept[i], candidates[i], evidence.select([i]), cfg)]
        extra = torch.zeros(b, dtype=torch.long)
        if again:
            report.stage("sampling again")
            second = sample_again(model.photos(again), self.prior.sde, score_fn, cfg, generators.select(again),
                                  calibration.select(model.layout.rows(again)))
            images = evidence.grayed(second.images, again)
            extra[again] = second.nfe
            report.stage("checking the results")
            results = results.clone()
            for image, i in zip(images, again):
                kept[i] = select(photos[i], [candidates[i], replace(candidates[i], image=image)],
                                 evidence.select([i]), cfg, [judged[i]])
                if kept[i].candidate == 1:
                    results[i] = image
        return kept, results, extra

    @staticmethod
    def _evidence(evidence: Evidence, calibration: Calibration | None, b: int) -> dict:
        """The per-photo fields of a DeblurResult that the estimate and the sampling's calibration give."""
        per_photo = {} if evidence.in_focus is None else dict(in_focus=evidence.in_focus)
        if calibration is not None:  # RMS over a photo's images (a 1-channel prior sees its C channels as C images)
            noise = calibration.noise_sigma.reshape(b, -1).double().square().mean(dim=1).sqrt().cpu()
            per_photo.update(radius=evidence.radius, at_bound=evidence.at_bound, noise_sigma=noise,
                             max_share=evidence.max_share,
                             misfit_correlation=calibration.misfit_correlation.reshape(b, -1).double().amax(dim=1))
        return per_photo

    def _problems(self, model: Model, calibration: Calibration | None, images: torch.Tensor,
                  batch_size: int) -> list[str | None]:
        """Per photo, why its result (or measurement model) is unusable, else None."""
        return [self._measurement_problem(model, calibration, batch_size, i) or _output_problem(images[i])
                for i in range(batch_size)]

    def _measurement_problem(self, model: Model, calibration: Calibration | None, batch_size: int,
                             index: int) -> str | None:
        """Why image `index`'s measurement model cannot give a finite result, or None."""
        if model.operator is None:
            return None
        cfg = self.prior.config.sampler
        noise = calibration.noise_sigma.reshape(batch_size, -1)[index]  # one per network image of this photo
        source = "given (sampler.noise_sigma)" if cfg.noise_sigma > 0 else "estimated from the image"
        if not torch.isfinite(noise).all():
            return f"the noise level {source} is not finite ({_first_non_finite(noise)}); nothing written"
        weight = cfg.prox_lambda * noise.double() ** 2  # ρ = λ σ_n² / σ²: the data term's proximal weight
        if not torch.isfinite(weight).all():
            return f"the proximal weight λ·σ_n² is not finite ({_first_non_finite(weight)}); nothing written"
        radius = model.operator.radius.reshape(batch_size, -1)[index]
        if not torch.isfinite(radius).all():
            return f"the PSF radius is not finite ({_first_non_finite(radius)}); nothing written"
        return None


def _guarded(model: Model, cfg) -> bool:
    """Whether the no-harm guard judges the results: a blur model and sampler.max_noise_gain > 0."""
    return model.operator is not None and cfg.max_noise_gain > 0


def _output_problem(image: torch.Tensor) -> str | None:
    if torch.isfinite(image).all():
        return None
    bad = int((~torch.isfinite(image)).sum())
    return f"the sampler's output is not finite ({bad} of {image.numel()} values NaN or infinite); nothing written"


def _first_non_finite(values: torch.Tensor) -> str:
    """The first non-finite value, as text (nan, inf or -inf)."""
    return str(float(values[~torch.isfinite(values)][0]))
