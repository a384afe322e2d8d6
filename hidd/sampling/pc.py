"""The predictor–corrector sampler with data consistency (paper Algorithm 1).

Per iteration, at time t of the grid linspace(1, t_end, N) and noise level σ = sde.sigma(t):
predictor; [consistency with `alpha_after_predictor`]; corrector; consistency with `alpha`;
[per-image min–max rescale to [0, 1]]. The stages come from the registries in
`hidd.sampling.base`, so new predictors, correctors or consistency steps plug in by name.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from hidd.sampling import consistency, correctors, predictors  # noqa: F401  (importing fills the registries)
from hidd.sampling.base import CORRECTORS, PREDICTORS, ScoreFn
from hidd.sampling.blur_consistency import build_consistency


@dataclass
class SampleResult:
    x: torch.Tensor  # (B, C, H, W) in [0, 1]
    nfe: int  # score (network) evaluations per image


class CountingScore:
    """A score function that counts its calls; one call evaluates the network once per image."""

    def __init__(self, score_fn: ScoreFn):
        self.score_fn = score_fn
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.score_fn(x, sigma)


def minmax_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rescale each image to span [0, 1] (the authors' per-iteration normalisation)."""
    flat = x.flatten(1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    return ((flat - lo[:, None]) / (hi - lo).clamp_min(1e-12)[:, None]).view_as(x)


def build_stages(sde, score_fn: ScoreFn, cfg, operator=None):
    """Predictor, corrector, the consistency after the predictor (None when off) and the one after the corrector.

    operator: the measurement's hidd.operators.BlurOperator, for the blur-aware consistency steps."""
    predictor = PREDICTORS.get(cfg.predictor).from_config(sde, score_fn, cfg)
    corrector = CORRECTORS.get(cfg.corrector).from_config(sde, score_fn, cfg)
    pull = build_consistency(cfg, cfg.alpha, operator)
    pull_after_predictor = None
    if cfg.alpha_after_predictor > 0 and pull.needs_measurement:
        pull_after_predictor = build_consistency(cfg, cfg.alpha_after_predictor, operator)
    return predictor, corrector, pull_after_predictor, pull


@torch.no_grad()
def sample(sde, score_fn: ScoreFn, cfg, *, y: torch.Tensor | None = None, shape=None, operator=None,
           generator: torch.Generator | None = None, callback=None, device=None,
           progress: bool = False) -> SampleResult:
    """Run the sampler of `cfg` (a SamplerConfig) from x_N ~ N(0, σ_max² I).

    y: (B, C, H, W) defocused measurement in [0, 1], or None for unconditional sampling of `shape`.
    operator: hidd.operators.BlurOperator of y, needed by the blur-aware consistency steps only.
    generator: the only source of randomness (same seed, same output).
    callback(iteration, x_mean): called after each iteration with the noise-free iterate.
    device: where to sample when y is None (default: the generator's device, else CPU).
    progress: show a tqdm bar (off by default: batch jobs keep their own bar).
    """
    if y is not None:
        if shape is not None and tuple(shape) != tuple(y.shape):
            raise ValueError(f"sample: shape {tuple(shape)} differs from the measurement's {tuple(y.shape)}")
        shape, device = y.shape, y.device
    elif shape is None:
        raise ValueError("sample: give the measurement y or, for unconditional sampling, a shape")
    elif device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    if cfg.schedule != "linear_t" or cfg.sigma_start > 0:
        raise ValueError("sampler: the pc loop walks the paper's linear_t grid from σ_max; schedule and sigma_start "
                         "need loop tweedie")
    counted = CountingScore(score_fn)
    predictor, corrector, pull_after_predictor, pull = build_stages(sde, counted, cfg, operator)
    if y is None and pull.needs_measurement:
        raise ValueError(f"sample: consistency '{cfg.consistency}' needs a measurement y (use 'none' to sample freely)")

    def settle(x, x_mean):  # the authors' code discards each stage's noise and goes on from the mean
        return (x_mean, x_mean) if cfg.carry_mean else (x, x_mean)

    x = x_mean = sde.prior_sampling(tuple(shape), generator=generator, device=device)
    timesteps = torch.linspace(1.0, cfg.t_end, cfg.num_steps, device=device)
    for i, t in enumerate(tqdm(timesteps, desc="sampling", leave=False, disable=not progress)):
        t = t.expand(shape[0])
        sigma = sde.sigma(t)
        x, x_mean = settle(*predictor.update(x, t, sigma, generator))
        if pull_after_predictor is not None:
            x, x_mean = pull_after_predictor.apply(x, x_mean, y, sigma)
        x, x_mean = settle(*corrector.update(x, x_mean, t, sigma, generator))
        x, x_mean = pull.apply(x, x_mean, y, sigma)
        if cfg.minmax_normalize:
            x, x_mean = minmax_normalize(x), minmax_normalize(x_mean)
        if callback is not None:
            callback(i, x_mean)
    out = x_mean if cfg.denoise_final else x
    return SampleResult(x=out.clamp(0.0, 1.0), nfe=counted.calls)
