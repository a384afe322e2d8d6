"""Blur-aware data consistency: steps that use the defocus operator A of the measurement y = A x + n.

Both act on the noise-free estimate x_mean (in the 'tweedie' loop, Tweedie's denoised x̂₀ = x + σ² s_θ) and
move the noisy iterate x by the same amount. Their weight on the estimate follows DiffPIR:
ρ = λ σ_n² / σ², λ = `prox_lambda`, σ_n the RMS measurement noise of each image (its noise-level function's
level), σ the current noise level — at high σ the estimate is poor and the data rule, at low σ the prior's
estimate is trusted.

- 'prox': the closed-form minimiser of ‖A x − y‖² + ρ ‖x − x̂₀‖² (in linear light; uniform blur).
- 'gradient': `gradient_steps` steps of gradient descent on the same objective from x̂₀, for operators
  without a closed form (spatially varying blur); step `gradient_step` / (1 + ρ), stable since ‖A‖ ≤ 1.

Self-tuning σ_n (`noise_calibration`, the discrepancy principle turned around). A blind noise estimate
reads the sensor noise of flat patches, but what the data term must tolerate is the whole misfit
y − A x: noise, JPEG's error (largest at edges, while it wipes the noise of flat patches), demosaicing,
and the PSF model's mismatch. On camera-like photos the blind estimate is 0.6–0.9× that misfit, so the
data term is over-fitted and the result rings. At the first level with σ ≤ `noise_calibration` the prior's
denoised estimate x̂₀ is already sharp at that scale but has not yet been fitted to the noise, and
    σ_n ← max(RMS(y − A x̂₀), ½ σ_n)
measures the misfit directly (0.9–1.1× of it on Poisson–Gaussian + JPEG photos); the later levels, which
decide the fine detail, use it. The ½ guards against an over-fitted x̂₀ reading too little.

Self-tuning λ (`prox_lambda_white`). White noise is averaged out by the data term; errors correlated
between neighbouring pixels (demosaicing, JPEG, a PSF model that does not match the lens) look like
image structure and are fitted as detail, so they need the stronger weight on the prior. The same misfit
tells them apart by its lag-1 autocorrelation c (hidd.misfit): 0.13–0.41 on white-noise photos, 0.57–0.62
on lens-PSF + demosaiced + JPEG ones (camera development set). From the calibration on, λ =
prox_lambda_white for c ≤ WHITE_CORRELATION, prox_lambda for c ≥ CORRELATED_MISFIT, and linear in between
(the operator keeps c, `misfit_correlation`, for the no-harm guard's hedge, hidd.no_harm). The levels
before the calibration ran with prox_lambda and the blind σ_n, so when λ changed for any image the step
asks the loop to start over (`wants_restart`, honoured once by the 'tweedie' loop), now with the
calibrated σ_n and λ at every level: 12 + 8 = 20 NFE for `fast` on such photos, 12 on camera photos (20
where the no-harm guard has one sampled again, hidd.deblur).

The same test rescales a blind PSF's Gaussian softening by `softening_white`: fully for c ≤
WHITE_CORRELATION, not at all for c ≥ WHITE_PSF_CORRELATION, linear in between. The spectral fit
(hidd.blind.psf_fit) cannot tell the lens's softening from the scene's own fall-off and from
demosaicing's: on pure disks (softening 0) it read 0.35–1.4 px. Over-estimated softening over-sharpens,
which the strong λ of correlated misfits restrains and the weak λ_white does not; a white misfit also
says there was no demosaicing or JPEG to soften. On the development set, softening 0 with λ_white 1
gained +0.7 dB (linear-light disks) and +1.0 dB (sRGB-value disks) over the fitted softening with
λ_white 2, while on lens-PSF JPEGs (correlated misfits, untouched) softening 0 would have lost 0.2 dB.
Depth-varying camera photos fitted with one PSF have half-white misfits (c 0.45–0.52); dropping their
softening lost up to 0.6 dB, hence the narrower band. Too little softening under-sharpens, the safe side.
"""
from __future__ import annotations

import torch

from hidd.misfit import WHITE_PSF_CORRELATION, lag1_correlation, whiteness
from hidd.sampling.base import CONSISTENCIES, Consistency

RHO_FLOOR = 1e-6  # keeps the proximal solve finite at the OTF's zeros when ρ would underflow


class OperatorConsistency(Consistency):
    """A data step that needs the blur operator (hidd.operators) of the measurement."""

    def __init__(self, operator, prox_lambda: float, noise_calibration: float = 0.0, prox_lambda_white: float = 0.0,
                 softening_white: float = 1.0):
        if prox_lambda <= 0 or prox_lambda_white < 0:
            raise ValueError(f"sampler.prox_lambda must be > 0 and prox_lambda_white ≥ 0, got {prox_lambda} "
                             f"and {prox_lambda_white}")
        if softening_white < 0:
            raise ValueError(f"sampler.softening_white must be ≥ 0, got {softening_white}")
        if noise_calibration < 0:
            raise ValueError(f"sampler.noise_calibration must be ≥ 0, got {noise_calibration}")
        self.operator = operator  # hidd.operators.BlurOperator of the batch (blur and noise level per image)
        self.prox_lambda = torch.tensor(float(prox_lambda))  # λ of ρ = λ σ_n² / σ², (B,) once calibrated
        self.prox_lambda_correlated = float(prox_lambda)
        self.prox_lambda_white = prox_lambda_white  # λ after calibration for a white misfit; 0: λ stays
        self.softening_white = softening_white  # factor on a blind softening after calibration for a white misfit
        self.noise_calibration = noise_calibration  # σ at which σ_n is re-measured from the misfit; 0: never
        self.calibrated = noise_calibration == 0

    @classmethod
    def from_config(cls, cfg, alpha, operator=None):
        return cls(operator, cfg.prox_lambda, cfg.noise_calibration, cfg.prox_lambda_white, cfg.softening_white)

    def calibrate(self, estimate: torch.Tensor, y: torch.Tensor) -> None:
        """σ_n ← max(RMS(y − A x̂₀), ½ σ_n) per image, and λ and the blind PSF's softening from the misfit's
        correlation (see the module docstring); sets operator.noise_sigma, operator.misfit_correlation, prox_lambda
        and the operator's PSF."""
        residual = y - self.operator(estimate)
        measured = lag1_correlation(residual)
        self.operator.misfit_correlation = measured.cpu()
        if self.prox_lambda_white > 0:
            correlation = measured.nan_to_num(1.0)  # a non-finite misfit keeps λ and the PSF
            white = whiteness(correlation).float()
            self.prox_lambda = self.prox_lambda_correlated + (self.prox_lambda_white - self.prox_lambda_correlated) * white
            self.wants_restart = bool((white > 0).any())
            sharp_psf = whiteness(correlation, WHITE_PSF_CORRELATION)
            self.operator.scale_softening(1 + (self.softening_white - 1) * sharp_psf)
        misfit = residual.double().square().flatten(1).mean(dim=1).sqrt()
        before = self.operator.noise_sigma
        misfit = misfit.to(before)
        # a non-finite estimate (a failing network) leaves σ_n as it was: the output check names that image
        self.operator.noise_sigma = torch.where(misfit.isfinite(), torch.maximum(misfit, 0.5 * before), before)
        self.calibrated = True

    def rho(self, sigma: torch.Tensor) -> torch.Tensor:
        """Weight (B,) of the estimate against the data at noise level sigma (B,)."""
        noise = self.operator.noise_sigma.to(sigma)
        return (self.prox_lambda.to(sigma) * noise**2 / sigma**2).clamp_min(RHO_FLOOR)

    def apply(self, x, x_mean, y, sigma):
        if not self.calibrated and sigma.max().item() <= self.noise_calibration:
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
                 prox_lambda_white: float = 0.0, softening_white: float = 1.0):
        super().__init__(operator, prox_lambda, noise_calibration, prox_lambda_white, softening_white)
        if steps < 1 or not 0 < step <= 2:
            raise ValueError(f"sampler: need gradient_steps ≥ 1 and 0 < gradient_step ≤ 2, got {steps} and {step}")
        self.steps = steps  # descent steps per sampler iteration
        self.step = step  # step length in units of 1 / Lipschitz constant (≤ 1 + ρ)

    @classmethod
    def from_config(cls, cfg, alpha, operator=None):
        return cls(operator, cfg.prox_lambda, cfg.gradient_steps, cfg.gradient_step, cfg.noise_calibration,
                   cfg.prox_lambda_white, cfg.softening_white)

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
