"""Correctors: Langevin MCMC at the current noise level (the "C" of the PC sampler)."""
from __future__ import annotations

import torch

from hidd.sampling.base import CORRECTORS, Corrector, randn_like
from hidd.sde import _expand


def per_image_norm(v: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image of a batch, shape (B,)."""
    return v.flatten(1).norm(dim=1)


@CORRECTORS.register("langevin")
class LangevinCorrector(Corrector):
    """Langevin steps (paper Eq. 10): x_mean = x + ε s, x = x_mean + sqrt(2ε) z, with the step size
    ε = 2 (snr ‖z‖ / ‖s‖)² set per image (score_sde averages the norms over the batch, which lets
    one image's score scale set every image's step). With one chain this is score_sde's
    `LangevinCorrector` for the VE-SDE (its α factor is 1 there).

    Parallel chains (`chains` = K > 1), after the authors' group's code (the HIDD-DM repository
    itself was not found; their WKGM / k-space samplers share this corrector): K chains are noisy
    copies of the same iterate, x + sqrt(2ε') z_k with ε' the step size of this corrector's previous
    step (no spread on the very first step, where the authors' chains also coincide). The score is
    evaluated on every copy (K network evaluations) and the average s̄ drives one update of the shared
    iterate. So the chains only smooth the score seen by the update; they do not persist as separate samples.

    Step size with chains: as in the authors' code, ‖s‖ in ε is the mean of the copies' norms, mean_k ‖s_k‖,
    while the update moves by ε s̄. Averaging cancels part of the copies' disagreement, ‖s̄‖ ≤ mean_k ‖s_k‖,
    so the drift-to-noise ratio of the step actually taken is snr · ‖s̄‖ / mean_k ‖s_k‖, below the nominal
    snr (equal with one chain, or when the copies agree). We keep this: it is the arithmetic the authors'
    snr 0.021 was tuned with; the attribute `effective_snr` holds the ratio per image of the last step. Unlike the authors' code, the copies are
    re-centred on the current iterate every step (theirs stay where the previous corrector step left
    them, missing the predictor and consistency updates in between).
    """

    def __init__(self, sde, score_fn, snr: float, steps: int = 1, chains: int = 1):
        super().__init__(sde, score_fn)
        if steps < 1 or chains < 1:
            raise ValueError(f"sampler: corrector_steps and corrector_chains must be ≥ 1, got {steps} and {chains}")
        self.snr = snr  # ratio ‖ε s‖ / ‖sqrt(2ε) z‖ of the drift to the noise of each step
        self.steps = steps  # M Langevin steps per call
        self.chains = chains  # K noisy copies whose scores are averaged (K network evaluations per step)
        self._last_eps: torch.Tensor | None = None  # previous per-image ε: the spread of the copies
        self.effective_snr: torch.Tensor | None = None  # (B,) ‖ε s̄‖ / ‖sqrt(2ε) z‖ of the last step taken

    @classmethod
    def from_config(cls, sde, score_fn, cfg):
        return cls(sde, score_fn, cfg.snr, cfg.corrector_steps, cfg.corrector_chains)

    def update(self, x, x_mean, t, sigma, generator=None):
        for _ in range(self.steps):
            scores = [self.score_fn(point, sigma) for point in self._chain_points(x, generator)]
            score = torch.stack(scores).mean(dim=0)
            score_norm = torch.stack([per_image_norm(s) for s in scores]).mean(dim=0)
            z = randn_like(x, generator)
            # A zero score would make ε infinite; the floor keeps the step finite (and huge, as intended).
            eps = 2 * (self.snr * per_image_norm(z) / score_norm.clamp_min(1e-12)) ** 2
            x_mean = x + _expand(eps, x) * score
            x = x_mean + _expand(torch.sqrt(2 * eps), x) * z
            self._last_eps = eps
            self.effective_snr = self.snr * per_image_norm(score) / score_norm.clamp_min(1e-12)
        return x, x_mean

    def _chain_points(self, x, generator):
        """Where the K chains evaluate the score: x itself for one chain, else perturbed copies."""
        if self.chains == 1 or self._last_eps is None:
            return [x] * self.chains
        spread = _expand(torch.sqrt(2 * self._last_eps), x)
        return [x + spread * randn_like(x, generator) for _ in range(self.chains)]


@CORRECTORS.register("none")
class NoneCorrector(Corrector):
    """No correction and no network evaluation (predictor-only samplers)."""

    def update(self, x, x_mean, t, sigma, generator=None):
        return x, x_mean
