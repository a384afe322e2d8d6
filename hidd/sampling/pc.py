"""The predictor–corrector sampler with data consistency (paper Algorithm 1).

Time grid t_i = linspace(1, t_end, N)_i, i = 0 … N − 1, and t_N = 0; iteration i starts at noise level
σ_i = sde.sigma(t_i) on the SDE's discrete level N − 1 − i (`GridStep`, taken from the iteration index, never
by rounding t). Per iteration, in `sampler.order`:

- 'predictor_first' (the paper and the authors' code): predictor σ_i → σ_{i+1}; [interpolation with
  `alpha_after_predictor`]; corrector at σ_{i+1}, the level the predictor reached (the authors' code runs
  it at σ_i, one level high: 1 % at N = 1000, 10 % at N = 100); interpolation with `alpha`. After the last
  predictor step (to σ = 0) the corrector runs at σ(t_end), the lowest level the network was trained on.
- 'corrector_first' (score_sde): corrector at σ_i, then predictor σ_i → σ_{i+1}, then the interpolations.

With `minmax_normalize` (the authors' code) every iterate, the last included, is rescaled affinely to the
range [min y, max y] of its photo, over all of the photo's channels together. The authors rescale each
(grayscale) iterate to [0, 1]; for a colour photo seen by a 1-channel prior as C separate images that
stretches each channel on its own, which shifts the white balance, and makes every result span [0, 1]
whatever the exposure of y. One affine map per photo keeps the colour ratios and the photo's range.
(So even the ablations without data consistency, P and P+C, see two numbers of y: its min and max.)

Only the steps that act on the iterate itself belong here: the blur-aware data steps ('prox', 'gradient')
weigh the data against a *denoised* estimate and run in the 'tweedie' loop (they are refused here, as are
that loop's settings, so that no setting is silently ignored).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from hidd.sampling import consistency, correctors, predictors  # noqa: F401  (importing fills the registries)
from hidd.sampling.base import CORRECTORS, PREDICTORS, GridStep, ScoreFn
from hidd.sampling.blur_consistency import build_consistency, needs_operator
from hidd.sampling.calibration import Calibration

ORDERS = ("predictor_first", "corrector_first")
# settings of the 'tweedie' loop, with the values under which they do nothing in this one
TWEEDIE_ONLY = {"schedule": "linear_t", "sigma_start": 0.0, "sigma_end": 0.0, "rho": 7.0, "zeta": 1.0,
                "renoise": 1.0, "score_ensemble": 1, "max_noise_gain": 0.0, "shared_quantile": 0.0,
                "edge_read_share": 0.0, "hedge_share": 1.0, "ringing_share": 1.0, "noisy_retry_lambda": 0.0}


@dataclass
class SampleResult:
    x: torch.Tensor  # (B, C, H, W) in [0, 1]
    nfe: int  # score (network) evaluations per image (the most of any photo where they differ)
    photo_nfe: torch.Tensor | None = None  # (photos,) long: each photo's; None: every photo's is nfe
    calibration: Calibration | None = None  # what the data step measured of each image (hidd.sampling.calibration)


class CountingScore:
    """A score function that counts its calls; one call evaluates the network once per image."""

    def __init__(self, score_fn: ScoreFn):
        self.score_fn = score_fn
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.score_fn(x, sigma)


def normalize_to_range(x: torch.Tensor, target: torch.Tensor | None, images_per_photo: int = 1) -> torch.Tensor:
    """Map each photo's values affinely onto the range of its `target` (or [0, 1] when target is None).

    A photo is `images_per_photo` consecutive images of the batch (its channels, for a 1-channel prior);
    one map per photo, so channels keep their ratios."""
    photos = x.reshape(x.shape[0] // images_per_photo, -1)
    lo, hi = photos.min(dim=1, keepdim=True).values, photos.max(dim=1, keepdim=True).values
    if target is None:
        t_lo, t_hi = torch.zeros_like(lo), torch.ones_like(hi)
    else:
        flat = target.reshape(photos.shape[0], -1).to(x.dtype)
        t_lo, t_hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return (t_lo + (photos - lo) / (hi - lo).clamp_min(1e-12) * (t_hi - t_lo)).view_as(x)


def time_grid(cfg, sde, batch: int, device) -> list[GridStep]:
    """The N steps of the linear-t grid from 1 to t_end, each with its discrete level and the level it ends on."""
    n = cfg.num_steps
    if n < 1 or not 0.0 < cfg.t_end < 1.0:
        raise ValueError(f"sampler: need num_steps ≥ 1 and 0 < t_end < 1, got {n} and {cfg.t_end}")
    times = torch.linspace(1.0, cfg.t_end, n, device=device).tolist() + [0.0]
    steps = []
    for i in range(n):
        t, t_next = (torch.full((batch,), v, device=device) for v in times[i:i + 2])
        sigma_next = sde.sigma(t_next) if i < n - 1 else torch.zeros_like(t)
        steps.append(GridStep(index=i, level=torch.full((batch,), n - 1 - i, device=device, dtype=torch.long),
                              t=t, t_next=t_next, sigma=sde.sigma(t), sigma_next=sigma_next))
    return steps


def check_settings(cfg) -> None:
    """Refuse settings this loop would ignore or misuse, naming them."""
    if cfg.order not in ORDERS:
        raise ValueError(f"sampler.order: unknown order '{cfg.order}' (choose from {', '.join(ORDERS)})")
    if cfg.schedule != "linear_t" or cfg.sigma_start > 0:
        raise ValueError("sampler: the pc loop walks the paper's linear_t grid from σ_max; schedule and sigma_start "
                         "need loop tweedie")
    unused = [f"{key}={getattr(cfg, key)}" for key, idle in TWEEDIE_ONLY.items() if getattr(cfg, key) != idle]
    if unused:
        raise ValueError(f"sampler: {', '.join(unused)} only act in loop tweedie; loop pc would ignore them "
                         f"(remove them or set sampler.loop=tweedie)")
    if needs_operator(cfg.consistency):
        raise ValueError(f"sampler.consistency {cfg.consistency} weighs the data against a denoised estimate; the pc "
                         "loop has only the noisy iterate: use loop tweedie (e.g. --preset fast), or 'interpolate'")


def build_stages(sde, score_fn: ScoreFn, cfg):
    """Predictor, corrector, the consistency after the predictor (None when off) and the one after the corrector."""
    predictor = PREDICTORS.get(cfg.predictor).from_config(sde, score_fn, cfg)
    corrector = CORRECTORS.get(cfg.corrector).from_config(sde, score_fn, cfg)
    pull = build_consistency(cfg, cfg.alpha)
    pull_after_predictor = None
    if cfg.alpha_after_predictor > 0 and pull.needs_measurement:
        pull_after_predictor = build_consistency(cfg, cfg.alpha_after_predictor)
    return predictor, corrector, pull_after_predictor, pull


@torch.no_grad()
def sample(sde, score_fn: ScoreFn, cfg, *, y: torch.Tensor | None = None, shape=None, operator=None,
           images_per_photo: int = 1, generator=None, callback=None, device=None, progress: bool = False,
           calibration=None) -> SampleResult:
    """Run the sampler of `cfg` (a SamplerConfig) from x_N ~ N(0, σ_max² I).

    y: (B, C, H, W) defocused measurement in [0, 1], or None for unconditional sampling of `shape`.
    operator: accepted for the loops' common signature; the pc loop has no blur-aware step (see above).
    images_per_photo: consecutive images of the batch that are one photo (its channels under a 1-channel
        prior), normalised together.
    generator: the only source of randomness (same seed, same output): one torch.Generator, or one per photo
        (hidd.randomness.PhotoGenerators: a photo draws what it would alone).
    calibration: accepted for the loops' common signature (a blur-aware step's; this loop has none).
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
    check_settings(cfg)
    counted = CountingScore(score_fn)
    predictor, corrector, pull_after_predictor, pull = build_stages(sde, counted, cfg)
    if y is None and pull.needs_measurement:
        raise ValueError(f"sample: consistency '{cfg.consistency}' needs a measurement y (use 'none' to sample freely)")
    steps = time_grid(cfg, sde, shape[0], device)

    def settle(x, x_mean):  # the authors' code discards each stage's noise and goes on from the mean
        return (x_mean, x_mean) if cfg.carry_mean else (x, x_mean)

    def predict(x, step):
        x, x_mean = settle(*predictor.update(x, step, generator))
        if pull_after_predictor is not None:
            x, x_mean = pull_after_predictor.apply(x, x_mean, y, step.sigma_next)
        return x, x_mean

    x = x_mean = sde.prior_sampling(tuple(shape), generator=generator, device=device)
    for step in tqdm(steps, desc="sampling", leave=False, disable=not progress):
        if cfg.order == "corrector_first":
            x, x_mean = settle(*corrector.update(x, x_mean, step.t, step.sigma, generator))
            x, x_mean = predict(x, step)
        else:
            x, x_mean = predict(x, step)
            # after the last predictor step (to σ = 0, no noise level) the lowest level of the grid
            last = step.index == len(steps) - 1
            t_c, sigma_c = (step.t, step.sigma) if last else (step.t_next, step.sigma_next)
            x, x_mean = settle(*corrector.update(x, x_mean, t_c, sigma_c, generator))
        x, x_mean = pull.apply(x, x_mean, y, step.sigma_next)
        if cfg.minmax_normalize:
            x, x_mean = (normalize_to_range(v, y, images_per_photo) for v in (x, x_mean))
        if callback is not None:
            callback(step.index, x_mean)
    out = x_mean if cfg.denoise_final else x
    return SampleResult(x=out.clamp(0.0, 1.0), nfe=counted.calls)
