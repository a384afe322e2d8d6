"""What a blur-aware data step measures of each image on the way (`Calibration`): returned, never written into
the measurement model (hidd.operators), so that a second sampling is given what it needs explicitly.

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
(c, `misfit_correlation`, is kept for the no-harm guard's hedge, hidd.no_harm). The levels before the
calibration ran with prox_lambda and the blind σ_n, so an image whose λ changed (`restart`) is sampled again
from the start, now with the calibrated σ_n and λ at every level (the 'tweedie' loop does so for those photos
alone): 12 + 8 = 20 NFE for `fast` on such photos, 12 on camera photos (20 where the no-harm guard has one
sampled again, hidd.deblur).

The same test rescales a blind PSF's Gaussian softening by `softening_white` (`softening`, the factor; the
operator with it is hidd.operators.BlurOperator.with_softening): fully for c ≤ WHITE_CORRELATION, not at all for
c ≥ WHITE_PSF_CORRELATION, linear in between. The spectral fit (hidd.blind.psf_fit) cannot tell the lens's
softening from the scene's own fall-off and from demosaicing's: on pure disks (softening 0) it read 0.35–1.4 px.
Over-estimated softening over-sharpens, which the strong λ of correlated misfits restrains and the weak λ_white
does not; a white misfit also says there was no demosaicing or JPEG to soften. On the development set, softening 0
with λ_white 1 gained +0.7 dB (linear-light disks) and +1.0 dB (sRGB-value disks) over the fitted softening with
λ_white 2, while on lens-PSF JPEGs (correlated misfits, untouched) softening 0 would have lost 0.2 dB.
Depth-varying camera photos fitted with one PSF have half-white misfits (c 0.45–0.52); dropping their
softening lost up to 0.6 dB, hence the narrower band. Too little softening under-sharpens, the safe side.

Every quantity is per image and measured on that image alone, so an image's calibration does not depend on the
images batched with it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from hidd.misfit import WHITE_PSF_CORRELATION, lag1_correlation, whiteness


@dataclass(frozen=True)
class Calibration:
    """A blur-aware data step's settings of each image (B,): blind (`blind`) until it calibrates, then measured."""

    noise_sigma: torch.Tensor  # σ_n of ρ = λ σ_n² / σ²: the operator's blind level, or the misfit's (see above)
    prox_lambda: torch.Tensor  # λ of ρ (float32, on the images' device)
    softening: torch.Tensor  # the factor on each blind PSF's softening (float64, that device; 1: as estimated)
    misfit_correlation: torch.Tensor  # the misfit's lag-1 autocorrelation c (float64, CPU); NaN: not measured
    restart: torch.Tensor  # bool (CPU): λ changed, so the levels run before the calibration are to be run again

    @classmethod
    def blind(cls, operator, prox_lambda: float) -> "Calibration":
        """The settings before any calibration: the operator's blind σ_n, λ = prox_lambda, the PSFs as estimated."""
        count, device = len(operator.noise_sigma), operator.noise_sigma.device
        return cls(noise_sigma=operator.noise_sigma,
                   prox_lambda=torch.full((count,), float(prox_lambda), device=device),
                   softening=torch.ones(count, dtype=torch.float64, device=device),
                   misfit_correlation=torch.full((count,), float("nan"), dtype=torch.float64),
                   restart=torch.zeros(count, dtype=torch.bool))

    def select(self, index: list[int]) -> "Calibration":
        """The calibration of images `index` (positions in this batch)."""
        return Calibration(*(_rows(getattr(self, f.name), index) for f in fields(self)))

    def scatter(self, index: list[int], part: "Calibration") -> "Calibration":
        """This calibration with images `index` replaced by `part`'s (in that order)."""
        def put(mine, theirs):
            mine = mine.clone()
            mine[torch.as_tensor(index, dtype=torch.long, device=mine.device)] = theirs.to(mine)
            return mine
        return Calibration(*(put(getattr(self, f.name), getattr(part, f.name)) for f in fields(self)))


def _rows(values: torch.Tensor, index: list[int]) -> torch.Tensor:
    return values[torch.as_tensor(index, dtype=torch.long, device=values.device)]


def calibrate(operator, before: Calibration, estimate: torch.Tensor, y: torch.Tensor, prox_lambda: float,
              prox_lambda_white: float, softening_white: float) -> Calibration:
    """The calibration measured on the misfit y − A x̂₀ of the denoised estimates x̂₀ (B, C, H, W) under `operator`
    (see the module docstring); `before` holds the σ_n it starts from. prox_lambda_white 0 leaves λ and the PSFs
    as they were (and restarts nothing); a non-finite misfit leaves that image's σ_n, λ and PSF."""
    residual = y - operator(estimate)
    measured = lag1_correlation(residual)
    prox_lambda_now, softening, restart = before.prox_lambda, before.softening, before.restart
    if prox_lambda_white > 0:
        correlation = measured.nan_to_num(1.0)  # a non-finite misfit keeps λ and the PSF
        white = whiteness(correlation).float()
        prox_lambda_now = prox_lambda + (prox_lambda_white - prox_lambda) * white
        restart = (white > 0).cpu()
        sharp_psf = whiteness(correlation, WHITE_PSF_CORRELATION)
        softening = 1 + (softening_white - 1) * sharp_psf
    misfit = residual.double().square().flatten(1).mean(dim=1).sqrt()
    blind = before.noise_sigma
    misfit = misfit.to(blind)
    # a non-finite estimate (a failing network) leaves σ_n as it was: the output check names that image
    noise_sigma = torch.where(misfit.isfinite(), torch.maximum(misfit, 0.5 * blind), blind)
    return Calibration(noise_sigma=noise_sigma, prox_lambda=prox_lambda_now, softening=softening,
                       misfit_correlation=measured.cpu(), restart=restart)
