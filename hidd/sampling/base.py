"""The three kinds of stage of a predictor–corrector sampler, and name → class registries.

A sampler iteration from time t_i to t_{i+1} (a `GridStep`) runs a `Predictor` (one step of the
reverse-time SDE), a `Corrector` (Langevin MCMC at one noise level: the one the predictor reached, or
σ(t_i) when it runs first; hidd.sampling.pc) and a `Consistency` step (a pull toward the measurement y). Every stage maps the pair (x, x_mean) to a new pair:
x is the stochastic iterate, x_mean the same iterate without the noise of the last stage.

Stages are picked by name from the sampler config (see `PREDICTORS`, `CORRECTORS`,
`CONSISTENCIES`); a new one is a subclass decorated with `@REGISTRY.register("name")` that
overrides `from_config` when it needs more settings than the base class passes.
A stage object serves one sampling run (it may keep state between iterations).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable

import torch

from hidd.randomness import randn
from hidd.registry import Registry

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # score_fn(x (B,C,H,W), sigma (B,)) -> (B,C,H,W)


def randn_like(x: torch.Tensor, generator) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn from `generator`: one torch.Generator, or one per photo
    (hidd.randomness.PhotoGenerators; reproducible runs)."""
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


PREDICTORS = Registry("predictor")
CORRECTORS = Registry("corrector")
CONSISTENCIES = Registry("consistency")


@dataclass(frozen=True)
class GridStep:
    """One iteration of a sampler's time grid t_0 = 1 > t_1 > … > t_{N−1} = t_end, all per image (B,).

    The grid, not a function of t, says which discrete level a step is on: rounding or flooring
    t·(N − 1) puts two iterations on one level once t_end ≥ 1 / (2(N − 1)) (round) or 1 / (N − 1) (floor)."""

    index: int  # iteration i = 0 … N − 1
    level: torch.Tensor  # the SDE's discrete level N − 1 − i that the step starts from (long)
    t: torch.Tensor  # t_i
    t_next: torch.Tensor  # t_{i+1}; 0 after the last iteration
    sigma: torch.Tensor  # σ(t_i), the noise level of the iterate before the step
    sigma_next: torch.Tensor  # the noise level the predictor leaves: σ(t_{i+1}), and 0 after the last


class Predictor(abc.ABC):
    """One discretised step of the reverse-time SDE, from noise level σ(t_i) to σ(t_{i+1})."""

    def __init__(self, sde, score_fn: ScoreFn, num_steps: int):
        self.sde = sde  # forward SDE (hidd.sde.SDE) whose reverse is being solved
        self.score_fn = score_fn  # s_θ(x, σ); each call is one network evaluation per image
        self.num_steps = num_steps  # N, the sampler's number of iterations (time grid from 1 to ~0)

    @classmethod
    def from_config(cls, sde, score_fn: ScoreFn, cfg) -> "Predictor":
        """The predictor with the settings of a `SamplerConfig`."""
        return cls(sde, score_fn, cfg.num_steps)

    @abc.abstractmethod
    def update(self, x: torch.Tensor, step: GridStep,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from x at step.t (noise level step.sigma) to step.t_next; returns (x, x_mean)."""


class Corrector(abc.ABC):
    """MCMC steps that move x toward the marginal p_t at a fixed noise level (the "C" of PC)."""

    def __init__(self, sde, score_fn: ScoreFn):
        self.sde = sde  # forward SDE (hidd.sde.SDE)
        self.score_fn = score_fn  # s_θ(x, σ); each call is one network evaluation per image

    @classmethod
    def from_config(cls, sde, score_fn: ScoreFn, cfg) -> "Corrector":
        """The corrector with the settings of a `SamplerConfig`."""
        return cls(sde, score_fn)

    @abc.abstractmethod
    def update(self, x: torch.Tensor, x_mean: torch.Tensor, t: torch.Tensor, sigma: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Correct the predictor's output (x, x_mean) at time t (B,), noise level sigma (B,)."""


class Consistency(abc.ABC):
    """A data-consistency step: pulls the iterate toward agreement with the measurement y."""

    needs_measurement = True  # False for steps that ignore y (so unconditional sampling may use them)
    calibration = None  # what a self-tuning step measured of each image (hidd.sampling.calibration); None: nothing

    @classmethod
    def from_config(cls, cfg, alpha: float) -> "Consistency":
        """The step with the settings of a `SamplerConfig`; `alpha` is the weight for this placement
        (the loop may apply consistency twice per iteration with different weights)."""
        return cls()

    def select(self, index: list[int]) -> "Consistency":
        """The step of images `index` (positions in its batch) alone; a step that keeps nothing per image is itself."""
        return self

    @abc.abstractmethod
    def apply(self, x: torch.Tensor, x_mean: torch.Tensor, y: torch.Tensor | None,
              sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Pull (x, x_mean) toward y (B, C, H, W); sigma is the current noise level, (B,) or one number for all
        images (a loop's grid level: then a step need not read the device), for steps whose strength depends on it
        (e.g. a proximal step on the denoised estimate x + σ² s)."""
