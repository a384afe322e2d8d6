"""Stage 2 of a deblur, sample: the configured sampler run on a model (hidd.stages.estimate), returning what it
measured.

sample(model, …) → (result, calibration): the results in the photos' layout with each photo's NFE, and the
calibration its data step measured on the way (hidd.sampling.calibration: σ_n, λ and a blind PSF's softening per
network image; None without a blur-aware step). The model is not changed, so a later sampling is given what it
needs: `sample_again`, the no-harm guard's second sampling of a blind photo whose result was too noisy and whose
misfit was correlated, trusts the prior more (λ × noisy_retry_lambda, noisy_retry_steps levels, the σ_n the first
sampling calibrated, nothing measured again). A blend with the blurred photo keeps its blur; the smoother second
result keeps its sharpness (measured: docs/BENCHMARKS.md, "A second sampling for results too noisy for the
guard").

Each photo draws its noise from its own generator (hidd.randomness.PhotoGenerators) and the sampler restarts a
photo alone (hidd.sampling.tweedie), so a photo's result does not depend on the photos sampled with it; a model of
some photos alone is Model.photos.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from hidd.randomness import PhotoGenerators
from hidd.sampling.calibration import Calibration
from hidd.sampling.loops import sample as sample_loop
from hidd.stages.estimate import Model


@dataclass(frozen=True)
class Sampled:
    """What a sampling gave its photos."""

    images: torch.Tensor  # (B, C, H, W) the results in the photos' layout (clamped to [0, 1] by the loops)
    nfe: torch.Tensor  # (B,) long: each photo's network evaluations


def sample(model: Model, sde, score_fn, cfg, generators: PhotoGenerators, *, calibration: Calibration | None = None,
           callback=None) -> tuple[Sampled, Calibration | None]:
    """The sampler of `cfg` (a SamplerConfig) on the model's photos, each drawing from its generator; calibration:
    the data step's settings at every level (none measured); callback(iteration, x̂₀) as hidd.sampling.tweedie's, in
    the network's layout."""
    result = sample_loop(sde, score_fn, cfg, y=model.y, operator=model.operator,
                         images_per_photo=model.layout.images_per_photo, generator=generators, callback=callback,
                         calibration=calibration)
    photos = model.layout.to_photos(result.x)
    nfe = result.photo_nfe if result.photo_nfe is not None else torch.full((len(photos),), result.nfe)
    return Sampled(photos, nfe), result.calibration


def second_sampling_settings(cfg):
    """The settings of the guard's second sampling: λ × noisy_retry_lambda, noisy_retry_steps levels, no
    calibration (it is given the first's)."""
    return replace(cfg, prox_lambda=cfg.prox_lambda * cfg.noisy_retry_lambda, noise_calibration=0.0,
                   num_steps=cfg.noisy_retry_steps)


def sample_again(model: Model, sde, score_fn, cfg, generators: PhotoGenerators,
                 calibration: Calibration) -> Sampled:
    """The guard's second sampling of the model's photos, given the calibration their first sampling measured (its
    λ × noisy_retry_lambda)."""
    given = replace(calibration, prox_lambda=calibration.prox_lambda * cfg.noisy_retry_lambda)
    return sample(model, sde, score_fn, second_sampling_settings(cfg), generators, calibration=given)[0]
