"""Blur-aware data consistency: steps that use the defocus operator A of the measurement y = A x + n.

Both act on the noise-free estimate x_mean (in the 'tweedie' loop, Tweedie's denoised x̂₀ = x + σ² s_θ) and
move the noisy iterate x by the same amount. Their weight on the estimate follows DiffPIR:
ρ = λ σ_n² / σ², λ = `prox_lambda`, σ_n the RMS measurement noise of each image (its noise-level function's
level), σ the current noise level — at high σ the estimate is poor and the data rule, at low σ the prior's
estimate is trusted.

- 'prox': the closed-form minimiser of ‖A x − y‖² + ρ ‖x − x̂₀‖² (in linear light; uniform blur).
- 'gradient': `gradient_steps` steps of gradient descent on the same objective from x̂₀, for operators
  without a closed form (spatially varying blur); step `gradient_step` / (1 + ρ), stable since ‖A‖ ≤ 1.

Self-tuning σ_n, λ and a blind PSF's softening (`noise_calibration`, `prox_lambda_white`, `softening_white`): at
the first level with σ ≤ noise_calibration the step measures them on the misfit y − A x̂₀
(hidd.sampling.calibration) and uses them from then on. What it measured is its `calibration`, which the loop
returns; the operator it was given is never changed (the blur it then uses is the operator with the calibrated
softening, a new one). A step given a calibration (a restart, a second sampling) uses it at every level and
measures nothing. `select` gives the step of some images of its batch alone, state included.
"""
from __future__ import annotations

import copy

import torch

from hidd.sampling.base import CONSISTENCIES, Consistency
from hidd.sampling.calibration import Calibration, calibrate

RHO_FLOOR = 1e-6  # keeps the proximal solve finite at the OTF's zeros when ρ would underflow


class OperatorConsistency(Consistency):
    """A data step that needs the blur operator (hidd.operators) of the measurement."""

    def __init__(self, operator, prox_lambda: float, noise_calibration: float = 0.0, prox_lambda_white: float = 0.0,
                 softening_white: float = 1.0, calibration: Calibration | None = None):
        if prox_lambda <= 0 or prox_lambda_white < 0:
            raise ValueError(f"sampler.prox_lambda must be > 0 and prox_lambda_white ≥ 0, got {prox_lambda} "
                             f"and {prox_lambda_white}")
        if softening_white < 0:
            raise ValueError(f"sampler.softening_white must be ≥ 0, got {softening_white}")
        if noise_calibration < 0:
            raise ValueError(f"sampler.noise_calibration must be ≥ 0, got {noise_calibration}")
        self.model = operator  # hidd.operators.BlurOperator of the batch (blur and noise level per image), unchanged
        self.prox_lambda = float(prox_lambda)  # λ of ρ = λ σ_n² / σ² until the calibration
        self.prox_lambda_white = prox_lambda_white  # λ after calibration for a white misfit; 0: λ stays
        self.softening_white = softening_white  # factor on a blind softening after calibration for a white misfit
        self.noise_calibration = noise_calibration  # σ at which σ_n is re-measured from the misfit; 0: never
        self.calibration = calibration or Calibration.blind(operator, prox_lambda)  # σ_n, λ, softening per image
        self.operator = operator.with_softening(self.calibration.softening)  # the blur used: the model's, softened
        self.calibrated = calibration is not None or noise_calibration == 0

    @classmethod
    def from_config(cls, cfg, alpha, operator=None, calibration=None):
        return cls(operator, cfg.prox_lambda, cfg.noise_calibration, cfg.prox_lambda_white, cfg.softening_white,
                   calibration)

    def calibrate(self, estimate: torch.Tensor, y: torch.Tensor) -> None:
        """Measure the calibration on the misfit of the estimates (hidd.sampling.calibration) and use it from now on."""
        self.calibration = calibrate(self.operator, self.calibration, estimate, y, self.prox_lambda,
                                     self.prox_lambda_white, self.softening_white)
        self.operator = self.model.with_softening(self.calibration.softening)
        self.calibrated = True

    def select(self, index):
        part = copy.copy(self)
        part.model, part.operator = self.model.select(index), self.operator.select(index)
        part.calibration = self.calibration.select(index)
        return part

    def rho(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """Weight (B,) of the estimate against the data at noise level sigma: (B,), or one number for all images
        (then nothing is copied to or read from the device)."""
        noise, prox_lambda = self.calibration.noise_sigma, self.calibration.prox_lambda
        if isinstance(sigma, torch.Tensor):
            noise, prox_lambda = noise.to(sigma), prox_lambda.to(sigma)
        return (prox_lambda * noise**2 / sigma**2).clamp_min(RHO_FLOOR)

    def apply(self, x, x_mean, y, sigma):
        """The step at noise level sigma; the loops' grid gives it as a number (the 'tweedie' loop), so that whether
        to calibrate now is decided without reading the device."""
        highest = sigma if not isinstance(sigma, torch.Tensor) else sigma.max().item()
        if not self.calibrated and highest <= self.noise_calibration:
            self.calibrate(x_mean, y)
        new_mean = self.solve(x_mean, y, self.rho(sigma))
        return x + (new_mean - x_mean), new_mean

    def solve(self, estimate: torch.Tensor, y: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        """(Approximately) argmin_x ‖A x − y‖² + ρ ‖x − estimate‖²."""
        raise NotImplementedError


@CONSISTENCIES.register("prox")
class ProxConsistency(OperatorConsistency):
    """Closed-form proximal step of the blur's data term (DiffPIR's analytic solution, in linear light)."""

    def solve(self, estimate, y, rho):
        return self.operator.prox(estimate, y, rho)


@CONSISTENCIES.register("gradient")
class GradientConsistency(OperatorConsistency):
    """Gradient descent on ‖A x − y‖² + ρ ‖x − x̂₀‖² from x̂₀ (any differentiable operator)."""

    def __init__(self, operator, prox_lambda: float, steps: int, step: float, noise_calibration: float = 0.0,
                 prox_lambda_white: float = 0.0, softening_white: float = 1.0, calibration: Calibration | None = None):
        super().__init__(operator, prox_lambda, noise_calibration, prox_lambda_white, softening_white, calibration)
        if steps < 1 or not 0 < step <= 2:
            raise ValueError(f"sampler: need gradient_steps ≥ 1 and 0 < gradient_step ≤ 2, got {steps} and {step}")
        self.steps = steps  # descent steps per sampler iteration
        self.step = step  # step length in units of 1 / Lipschitz constant (≤ 1 + ρ)

    @classmethod
    def from_config(cls, cfg, alpha, operator=None, calibration=None):
        return cls(operator, cfg.prox_lambda, cfg.gradient_steps, cfg.gradient_step, cfg.noise_calibration,
                   cfg.prox_lambda_white, cfg.softening_white, calibration)

    def solve(self, estimate, y, rho):
        rho = rho.to(estimate).reshape(-1, 1, 1, 1)
        x = estimate
        for _ in range(self.steps):
            grad = self.operator.data_gradient(x, y) + rho * (x - estimate)
            x = x - self.step / (1 + rho) * grad
        return x


def needs_operator(name: str) -> bool:
    """Whether the consistency step of that name needs a blur operator (and so a radius)."""
    return issubclass(CONSISTENCIES.get(name), OperatorConsistency)


def build_consistency(cfg, alpha: float, operator=None, calibration: Calibration | None = None) -> Consistency:
    """The consistency step named by cfg.consistency; blur-aware ones receive `operator` and, where given, the
    calibration to use at every level (hidd.sampling.calibration)."""
    if not needs_operator(cfg.consistency):
        return CONSISTENCIES.get(cfg.consistency).from_config(cfg, alpha)
    if operator is None:
        raise ValueError(f"sampler.consistency {cfg.consistency} needs the blur operator of the measurement "
                         "(sample through hidd.deblur.Deblurrer or pass operator=; without one use interpolate or none)")
    return CONSISTENCIES.get(cfg.consistency).from_config(cfg, alpha, operator, calibration)
