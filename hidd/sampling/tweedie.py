"""Denoise → data step → re-noise sampler on a short noise-level grid (DiffPIR-style; one NFE per level).

At each level σ_i of the grid (hidd.sampling.schedules):
1. Tweedie's denoised estimate x̂₀ = x + σ_i² s_θ(x, σ_i) (one network evaluation, or `score_ensemble`
   of them averaged over mirror images: hidd.sampling.ensemble);
2. a data-consistency step on x̂₀ (registry CONSISTENCIES: 'prox', 'gradient', 'interpolate', 'none');
3. re-noise to the next level: x = x̂₀' + η σ_{i+1} (sqrt(1 − ζ) ε̂ + sqrt(ζ) z), with ε̂ = (x − x̂₀')/σ_i the
   noise direction implied by the corrected estimate (DiffPIR) and z fresh noise: ζ = 0 is deterministic
   (DDIM-like), ζ = 1 ancestral. η = `renoise` is 1 in DiffPIR; η = 0 is plug-and-play half-quadratic
   splitting (DPIR): the next denoiser takes x̂₀' as it is, its remaining error standing in for noise σ_{i+1}.
The level after the last is σ = 0: the loop returns the last corrected estimate x̂₀'.
A data step that tunes itself on the way (hidd.sampling.calibration: the misfit's noise level and correlation) may
find that some photos' levels so far ran with the wrong λ (`Calibration.restart`): those photos stop there and are
sampled again from the start, alone, with what it measured at every level; the others go on. So a photo's result
does not depend on the photos batched with it: its noise comes from its own generator where there is one per photo
(hidd.randomness), its data step is per image, and it restarts only where it would alone.

Nothing is read back from the device per level: the grid's σ are numbers on the host, and the data step is given
them as such (hidd.sampling.blur_consistency decides when to calibrate from them); its weights and calibration stay
on the device. The one read is at the level where the step calibrated: which photos restart (a change of the
batch, so a decision of the host), and a blind PSF's new softening (hidd.operators.UniformBlur.with_softening).
This holds for one PSF per photo (UniformBlur; its free border's early stop reads a flag only off the GPU); the
depth-varying step's conjugate gradients still read their residual every iteration.

Warm start (CCDF): with sigma_start > 0 the iterate starts as the measurement diffused to that level,
x = y + σ_start z, and the grid runs from σ_start (not σ_max) down to σ_end; without it, x ~ N(0, σ_max² I).
"""
from __future__ import annotations

import math

import torch
from tqdm import tqdm

from hidd.batch import take
from hidd.randomness import for_photos
from hidd.sampling.base import ScoreFn, randn_like
from hidd.sampling.blur_consistency import build_consistency
from hidd.sampling.calibration import Calibration
from hidd.sampling.ensemble import FlipEnsembleScore
from hidd.sampling.pc import CountingScore, SampleResult
from hidd.sampling.schedules import sigma_grid


GUARD_SHARES = {"edge_read_share": 0.0, "hedge_share": 1.0, "ringing_share": 1.0}  # the guard keeps these shares;
# their values when off


def check_settings(cfg) -> None:
    """Refuse, in one line, the guard's settings without the guard that acts on them (each value's own range is
    hidd.sampling.settings')."""
    for key, off in GUARD_SHARES.items():
        if getattr(cfg, key) != off and cfg.max_noise_gain <= 0:
            raise ValueError(f"sampler.{key} keeps a share of a deblurring, which is the no-harm guard's work: "
                             f"with max_noise_gain 0 (guard off) set {key} {off:g} too")
    if cfg.noisy_retry_lambda != 0 and cfg.max_noise_gain <= 0:
        raise ValueError("sampler.noisy_retry_lambda samples again what the no-harm guard finds too noisy: with "
                         "max_noise_gain 0 (guard off) set noisy_retry_lambda 0 too")


def start_iterate(sde, y: torch.Tensor | None, sigma_start: float, shape, generator, device) -> torch.Tensor:
    """x at the grid's first level: y + σ_start z when warm-starting from a measurement, else the SDE's prior."""
    if sigma_start > 0:
        if y is None:
            raise ValueError("sampler.sigma_start: a warm start needs a measurement y")
        return y + sigma_start * randn_like(y, generator)
    return sde.prior_sampling(tuple(shape), generator=generator, device=device)


@torch.no_grad()
def sample(sde, score_fn: ScoreFn, cfg, *, y: torch.Tensor | None = None, shape=None, operator=None,
           images_per_photo: int = 1, generator=None, callback=None, device=None, progress: bool = False,
           calibration: Calibration | None = None) -> SampleResult:
    """Run the 'tweedie' loop of `cfg` (a SamplerConfig); arguments as hidd.sampling.pc.sample, plus
    operator: the hidd.operators.BlurOperator of y, for the blur-aware consistency steps (never changed);
    images_per_photo: consecutive images of the batch that are one photo (its channels under a 1-channel prior),
        restarted together and drawing from one generator where `generator` holds one per photo;
    calibration: the data step's settings at every level (a second sampling's), none measured; None: its own,
        calibrated on the way.
    callback(iteration, x̂₀) gets the batch's estimates, each photo's latest (a photo sampled again starts over).
    Returns the results, each photo's NFE and the calibration the data step measured (or was given)."""
    if y is not None:
        shape, device = y.shape, y.device
    elif shape is None:
        raise ValueError("sample: give the measurement y or, for unconditional sampling, a shape")
    elif device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    counted = CountingScore(score_fn)
    data_step = build_consistency(cfg, cfg.alpha, operator, calibration)
    if y is None and data_step.needs_measurement:
        raise ValueError(f"sample: consistency '{cfg.consistency}' needs a measurement y (use 'none' to sample freely)")
    walk = _Walk(sde, counted, cfg, y, shape, device, images_per_photo, callback, progress)
    photos = list(range(shape[0] // images_per_photo))
    x, stopped = walk(photos, data_step, generator, restartable=True)
    measured = walk.measured or data_step.calibration
    if stopped:  # sampled again from the start, with what the step measured
        rows = _rows(stopped, images_per_photo)
        again = build_consistency(cfg, cfg.alpha, operator.select(rows), measured.select(rows))
        x[rows], _ = walk(stopped, again, for_photos(generator, stopped), restartable=False)
    return SampleResult(x=x.clamp(0.0, 1.0), nfe=int(walk.nfe.max()), photo_nfe=walk.nfe, calibration=measured)


def _rows(photos: list[int], images_per_photo: int) -> list[int]:
    """The batch rows of photos `photos`."""
    return [photo * images_per_photo + j for photo in photos for j in range(images_per_photo)]


class _Walk:
    """Runs every level of the grid on some photos of a batch, counting each photo's NFE."""

    def __init__(self, sde, counted: CountingScore, cfg, y, shape, device, images_per_photo, callback, progress):
        self.sde, self.counted, self.cfg, self.y, self.shape, self.device = sde, counted, cfg, y, shape, device
        self.score = FlipEnsembleScore(counted, cfg.score_ensemble)
        self.sigmas = sigma_grid(cfg, sde).tolist() + [0.0]
        self.images_per_photo, self.callback, self.progress = images_per_photo, callback, progress
        self.nfe = torch.zeros(shape[0] // images_per_photo, dtype=torch.long)  # per photo
        self.latest = (torch.zeros(shape, device=device) if y is None else y).clone()  # each image's latest x̂₀
        self.measured = None  # the step's calibration at the level it calibrated, of every photo walking then

    def _latest_rows(self, rows: list[int], walking: list[int]) -> torch.Tensor | None:
        """The batch rows (on the device) of the photos still walking, where the callback keeps their estimates."""
        if self.callback is None:
            return None
        ipp = self.images_per_photo
        return torch.tensor([rows[k * ipp + j] for k in walking for j in range(ipp)], device=self.device)

    def __call__(self, photos: list[int], step, generator, restartable: bool):
        """The results of `photos` (batch positions; the generator(s) theirs) sampled from a fresh start, in their
        order, and those of them that stopped where the step calibrated and asked for a restart (`restartable`)."""
        ipp, cfg, sigmas = self.images_per_photo, self.cfg, self.sigmas
        rows = _rows(photos, ipp)
        y = None if self.y is None else take(self.y, rows)
        x = start_iterate(self.sde, y, cfg.sigma_start, (len(rows), *self.shape[1:]), generator, self.device)
        results = torch.zeros_like(x)
        walking = list(range(len(photos)))  # positions in `photos`
        stopped = []
        latest_rows = self._latest_rows(rows, walking)
        bar = tqdm(total=len(sigmas) - 1, desc="sampling", leave=False, disable=not self.progress)
        for i in range(len(sigmas) - 1):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            level = torch.full((x.shape[0],), sigma, device=self.device)
            calls, before = self.counted.calls, step.calibration
            estimate = x + sigma**2 * self.score(x, level)
            _, estimate = step.apply(estimate, estimate, y, sigma)  # σ as a number: nothing read from the device
            self.nfe[[photos[k] for k in walking]] += self.counted.calls - calls
            if restartable and step.calibration is not before:  # it calibrated at this level
                self.measured = step.calibration
                restart = step.calibration.restart.reshape(-1, ipp).any(dim=1).tolist()
                if any(restart):
                    stopped += [photos[k] for k, again in zip(walking, restart) if again]
                    keep = [j for j, again in enumerate(restart) if not again]
                    walking = [walking[j] for j in keep]
                    if not walking:
                        break
                    kept_rows = _rows(keep, ipp)
                    x, estimate, y = (None if v is None else take(v, kept_rows) for v in (x, estimate, y))
                    step, generator = step.select(kept_rows), for_photos(generator, keep)
                    latest_rows = self._latest_rows(rows, walking)
            noise_direction = (x - estimate) / sigma
            fresh = randn_like(x, generator) if cfg.zeta * cfg.renoise > 0 and sigma_next > 0 else torch.zeros_like(x)
            x = estimate + cfg.renoise * sigma_next * (math.sqrt(1 - cfg.zeta) * noise_direction
                                                       + math.sqrt(cfg.zeta) * fresh)
            if self.callback is not None:
                self.latest = self.latest.index_copy(0, latest_rows, estimate.to(self.latest))
                self.callback(i, self.latest)
            bar.update(1)
        bar.close()
        if walking:
            results[_rows(walking, ipp)] = x
        return results, stopped
