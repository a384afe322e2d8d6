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
A data step that tunes itself on the way (hidd.sampling.blur_consistency: the misfit's noise level and
correlation) may ask, once, for the loop to start over with what it learned (`wants_restart`).

Warm start (CCDF): with sigma_start > 0 the iterate starts as the measurement diffused to that level,
x = y + σ_start z, and the grid runs from σ_start (not σ_max) down to σ_end; without it, x ~ N(0, σ_max² I).
"""
from __future__ import annotations

import math

import torch
from tqdm import tqdm

from hidd.sampling.base import ScoreFn, randn_like
from hidd.sampling.blur_consistency import build_consistency
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
           images_per_photo: int = 1, generator: torch.Generator | None = None, callback=None, device=None,
           progress: bool = False) -> SampleResult:
    """Run the 'tweedie' loop of `cfg` (a SamplerConfig); arguments as hidd.sampling.pc.sample, plus
    operator: the hidd.operators.BlurOperator of y, for the blur-aware consistency steps
    (images_per_photo is for the pc loop's normalisation; this loop does not normalise)."""
    if y is not None:
        shape, device = y.shape, y.device
    elif shape is None:
        raise ValueError("sample: give the measurement y or, for unconditional sampling, a shape")
    elif device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    counted = CountingScore(score_fn)
    score = FlipEnsembleScore(counted, cfg.score_ensemble)
    data_step = build_consistency(cfg, cfg.alpha, operator)
    if y is None and data_step.needs_measurement:
        raise ValueError(f"sample: consistency '{cfg.consistency}' needs a measurement y (use 'none' to sample freely)")
    sigmas = sigma_grid(cfg, sde).tolist() + [0.0]
    x = start_iterate(sde, y, cfg.sigma_start, shape, generator, device)
    bar = tqdm(total=len(sigmas) - 1, desc="sampling", leave=False, disable=not progress)
    i, restarted = 0, False
    while i < len(sigmas) - 1:
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        level = torch.full((shape[0],), sigma, device=device)
        estimate = x + sigma**2 * score(x, level)
        _, estimate = data_step.apply(estimate, estimate, y, level)
        if data_step.wants_restart and not restarted:  # the step tuned itself: run every level with it
            restarted, i = True, 0
            x = start_iterate(sde, y, cfg.sigma_start, shape, generator, device)
            bar.reset()
            continue
        noise_direction = (x - estimate) / sigma
        fresh = randn_like(x, generator) if cfg.zeta * cfg.renoise > 0 and sigma_next > 0 else torch.zeros_like(x)
        x = estimate + cfg.renoise * sigma_next * (math.sqrt(1 - cfg.zeta) * noise_direction
                                                   + math.sqrt(cfg.zeta) * fresh)
        if callback is not None:
            callback(i, estimate)
        i += 1
        bar.update(1)
    bar.close()
    return SampleResult(x=x.clamp(0.0, 1.0), nfe=counted.calls)
