"""Stochastic differential equations of the forward (noising) process.

Only the variance-exploding SDE of the paper is implemented, but everything else in hidd
talks to the abstract `SDE` interface, so a VP-SDE can be added without `isinstance`
switches in the samplers or the loss.

Time runs from t = 0 (data) to t = 1 (prior). Noise levels are handled as σ tensors of
shape (B,), broadcast over (B, C, H, W) images by `_expand`.
"""
from __future__ import annotations

import abc
import math

import torch

from hidd.randomness import randn


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """View a per-image vector (B,) so it broadcasts against a batch of images."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class SDE(abc.ABC):
    """Forward SDE dx = f(x, t) dt + g(t) dw and its discretisation into `num_scales` steps."""

    def __init__(self, num_scales: int):
        self.num_scales = num_scales  # N, the number of discrete noise levels / sampler steps

    @abc.abstractmethod
    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise level conditioning the score network at continuous time t."""

    @abc.abstractmethod
    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std (per image, shape (B,)) of p_t(x | x0)."""

    @abc.abstractmethod
    def prior_sampling(self, shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """A sample of the prior p_1 that the reverse process starts from (generator: one, or one per photo,
        hidd.randomness)."""

    @abc.abstractmethod
    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift f(x, t) and diffusion g(t) (shape (B,)) of the forward SDE."""

    @abc.abstractmethod
    def discretize(self, x: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift f_i and diffusion G_i of the discrete chain x_{i+1} = x_i + f_i + G_i z at level i (B,), long."""

    def reverse_drift(self, x, t, score):
        """Drift of the reverse-time SDE, dx = [f − g² s] dt + g dw̄ (used by Euler–Maruyama)."""
        drift, diffusion = self.sde(x, t)
        return drift - _expand(diffusion, x) ** 2 * score, diffusion

    def reverse_discrete(self, x, level, score):
        """Reverse-diffusion step terms (paper Eq. 9) from discrete level i (B,): mean shift f_i − G_i² s and
        noise scale G_i."""
        f, G = self.discretize(x, level)
        return f - _expand(G, x) ** 2 * score, G


class VESDE(SDE):
    """Variance-exploding SDE: σ(t) = σ_min (σ_max / σ_min)^t, no drift."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 300.0, num_scales: int = 1000):
        super().__init__(num_scales)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"sde: need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
        self.sigma_min = float(sigma_min)  # smallest noise level, reached at t = 0
        self.sigma_max = float(sigma_max)  # largest noise level, ≳ the largest pixel distance in the data
        # σ_i of the discrete chain, i = 0..N-1, geometric from σ_min to σ_max (score_sde's layout).
        self.discrete_sigmas = torch.exp(
            torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max), num_scales, dtype=torch.float64)
        )

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def marginal_prob(self, x0, t):
        return x0, self.sigma(t)

    def prior_sampling(self, shape, generator=None, device=None):
        return randn(shape, generator, device=device) * self.sigma_max

    def sde(self, x, t):
        sigma = self.sigma(t)
        diffusion = sigma * math.sqrt(2 * (math.log(self.sigma_max) - math.log(self.sigma_min)))
        return torch.zeros_like(x), diffusion

    def discretize(self, x, level):
        sigmas = self.discrete_sigmas.to(x.device)
        i = level.to(x.device).long()
        if bool(((i < 0) | (i >= self.num_scales)).any()):
            raise ValueError(f"sde: discrete level {i.tolist()} outside 0..{self.num_scales - 1}")
        sigma = sigmas[i]
        prev = torch.where(i == 0, torch.zeros_like(sigma), sigmas[(i - 1).clamp(min=0)])
        G = torch.sqrt(sigma**2 - prev**2).to(x.dtype)
        return torch.zeros_like(x), G


SDES = {"ve": VESDE}


def build_sde(cfg) -> SDE:
    """SDE from the `sde` config section."""
    if cfg.name not in SDES:
        raise ValueError(f"sde.name: unknown SDE '{cfg.name}' (choose from {', '.join(SDES)})")
    return SDES[cfg.name](sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, num_scales=cfg.num_scales)
