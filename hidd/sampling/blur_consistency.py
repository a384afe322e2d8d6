"""Blur-aware data consistency: steps that use the defocus operator A of the measurement y = A x + n.

Both act on the noise-free estimate x_mean (in the 'tweedie' loop, Tweedie's denoised x̂₀ = x + σ² s_θ)
and move the noisy iterate x by the same amount. Their weight on the estimate follows DiffPIR:
ρ = λ σ_n² / σ², λ = `prox_lambda`, σ_n the measurement noise of each image, σ the current noise level —
at high σ the estimate is poor and the data rule, at low σ the prior's estimate is trusted.

- 'prox': the closed-form minimiser of ‖A x − y‖² + ρ ‖x − x̂₀‖² (Fourier domain; uniform blur).
- 'gradient': `gradient_steps` steps of gradient descent on the same objective from x̂₀, for operators
  without a closed form (spatially varying blur); step `gradient_step` / (1 + ρ), stable since ‖A‖ ≤ 1.
"""
from __future__ import annotations

import torch

from hidd.sampling.base import CONSISTENCIES, Consistency

RHO_FLOOR = 1e-6  # keeps the proximal solve finite at the OTF's zeros when ρ would underflow


class OperatorConsistency(Consistency):
    """A data step that needs the blur operator (hidd.operators) of the measurement."""

    def __init__(self, operator, prox_lambda: float):
        if prox_lambda <= 0:
            raise ValueError(f"sampler.prox_lambda must be > 0, got {prox_lambda}")
        self.operator = operator  # hidd.operators.BlurOperator of the batch (blur and noise level per image)
        self.prox_lambda = prox_lambda  # λ of ρ = λ σ_n² / σ²

    @classmethod
    def from_config(cls, cfg, alpha, operator=None):
        return cls(operator, cfg.prox_lambda)

    def rho(self, sigma: torch.Tensor) -> torch.Tensor:
        """Weight (B,) of the estimate against the data at noise level sigma (B,)."""
        noise = self.operator.noise_sigma.to(sigma)
        return (self.prox_lambda * noise**2 / sigma**2).clamp_min(RHO_FLOOR)

    def apply(self, x, x_mean, y, sigma):
        new_mean = self.solve(x_mean, y, self.rho(sigma))
        return x + (new_mean - x_mean), new_mean

    def solve(self, estimate: torch.Tensor, y: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        """(Approximately) argmin_x ‖A x − y‖² + ρ ‖x − estimate‖²."""
        raise NotImplementedError


@CONSISTENCIES.register("prox")
class ProxConsistency(OperatorConsistency):
    """Closed-form proximal step of the blur's data term (DiffPIR's analytic solution)."""

    def solve(self, estimate, y, rho):
        return self.operator.prox(estimate, y, rho)


@CONSISTENCIES.register("gradient")
class GradientConsistency(OperatorConsistency):
    """Gradient descent on ‖A x − y‖² + ρ ‖x − x̂₀‖² from x̂₀ (any differentiable operator)."""

    def __init__(self, operator, prox_lambda: float, steps: int, step: float):
        super().__init__(operator, prox_lambda)
        if steps < 1 or not 0 < step <= 2:
            raise ValueError(f"sampler: need gradient_steps ≥ 1 and 0 < gradient_step ≤ 2, got {steps} and {step}")
        self.steps = steps  # descent steps per sampler iteration
        self.step = step  # step length in units of 1 / Lipschitz constant (≤ 1 + ρ)

    @classmethod
    def from_config(cls, cfg, alpha, operator=None):
        return cls(operator, cfg.prox_lambda, cfg.gradient_steps, cfg.gradient_step)

    def solve(self, estimate, y, rho):
        rho = rho.to(estimate.dtype).reshape(-1, 1, 1, 1)
        x = estimate
        for _ in range(self.steps):
            grad = self.operator.data_gradient(x, y) + rho * (x - estimate)
            x = x - self.step / (1 + rho) * grad
        return x


def needs_operator(name: str) -> bool:
    """Whether the consistency step of that name needs a blur operator (and so a radius)."""
    return issubclass(CONSISTENCIES.get(name), OperatorConsistency)


def build_consistency(cfg, alpha: float, operator=None) -> Consistency:
    """The consistency step named by cfg.consistency; blur-aware ones receive `operator`."""
    if not needs_operator(cfg.consistency):
        return CONSISTENCIES.get(cfg.consistency).from_config(cfg, alpha)
    if operator is None:
        raise ValueError(f"sampler.consistency {cfg.consistency} needs the blur operator of the measurement "
                         "(sample through hidd.deblur.Deblurrer or pass operator=; without one use interpolate or none)")
    return CONSISTENCIES.get(cfg.consistency).from_config(cfg, alpha, operator)
