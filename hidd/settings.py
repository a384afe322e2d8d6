"""Every config value checked before a run starts: names against their registries, numbers against their domains.

hidd.config refuses an unknown key and a value of the wrong type as it reads them; this module refuses a value of
the right type that means nothing (`sampler.tone_curve: srgbb`, `sampler.radius: -3`), in one line naming the key,
the value and what it may be, before any image is read or any file written (hidd-reconstruct, hidd-train,
hidd-train-baseline). Named choices come from the registries and tables that build the stages, so a newly
registered tone curve or consistency step is valid at once; each numeric domain is where the key's formula means
something (its comment in hidd/config.py). The sampler's rules live with the samplers (hidd.sampling.settings),
the rule types in hidd.rules; this module adds the other sections', the baselines' included.

Every key of every section has a rule (tests/test_settings.py checks it), so a new key must say what its valid
values are.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from hidd.baselines.config import BaselineModelConfig, BaselineTrainingConfig, DegradationConfig
from hidd.baselines.networks import NETWORKS
from hidd.baselines.pairs import DEGRADATIONS
from hidd.config import ConfigError, DataConfig, ModelConfig, SamplerConfig, SDEConfig, TrainingConfig
from hidd.data import MODES
from hidd.losses import REDUCTIONS
from hidd.models import MODELS
from hidd.precision import TRAINING_PRECISIONS
from hidd.rules import (COUNT, FRACTION, NON_NEGATIVE, POSITIVE, SHARE, Rule, anything, check_section, each, number,
                        one_of)
from hidd.sampling.settings import SAMPLER_RULES
from hidd.sde import SDES

RULES: dict[type, dict[str, Rule]] = {
    SamplerConfig: SAMPLER_RULES,
    DataConfig: {
        "roots": anything, "val_roots": anything, "val_images": NON_NEGATIVE, "image_size": number(8),
        "mode": one_of(MODES), "random_flip": anything, "cache": anything, "num_workers": NON_NEGATIVE,
        "exposure": NON_NEGATIVE, "scale_jitter": number(1),
    },
    ModelConfig: {
        "name": one_of(MODELS), "channels": one_of((1, 3)), "nf": COUNT, "ch_mult": each(COUNT, empty=False),
        "num_res_blocks": COUNT, "attn_resolutions": each(COUNT), "dropout": FRACTION, "fir_kernel": anything,
        "skip_rescale": anything, "fourier_scale": POSITIVE, "init_scale": NON_NEGATIVE,
    },
    SDEConfig: {"name": one_of(SDES), "sigma_min": POSITIVE, "sigma_max": POSITIVE, "num_scales": COUNT},
    TrainingConfig: {
        "steps": COUNT, "batch_size": COUNT, "lr": POSITIVE, "beta1": FRACTION, "eps": POSITIVE,
        "weight_decay": NON_NEGATIVE, "warmup": NON_NEGATIVE, "grad_clip": NON_NEGATIVE, "ema_rate": FRACTION,
        "t_min": number(0, 1, open_low=True, open_high=True), "loss_reduction": one_of(REDUCTIONS),
        "precision": one_of(TRAINING_PRECISIONS), "channels_last": anything, "checkpoint_every": COUNT,
        "latest_every": COUNT, "log_every": COUNT, "eval_every": NON_NEGATIVE, "eval_sigmas": each(POSITIVE),
        "sample_every": NON_NEGATIVE, "sample_steps": COUNT, "time_limit_minutes": NON_NEGATIVE, "seed": anything,
    },
    BaselineModelConfig: {
        "name": one_of(NETWORKS.names), "channels": one_of((1, 3)), "features": COUNT, "depth": COUNT,
        "disc_features": COUNT,
    },
    DegradationConfig: {
        "model": one_of(DEGRADATIONS), "radius_min": NON_NEGATIVE, "radius_max": NON_NEGATIVE,
        "noise_min": NON_NEGATIVE, "noise_max": NON_NEGATIVE,
    },
    BaselineTrainingConfig: {
        "steps": COUNT, "batch_size": COUNT, "lr": POSITIVE, "lr_decay_from": SHARE, "warmup": NON_NEGATIVE,
        "cycle_weight": NON_NEGATIVE, "identity_weight": NON_NEGATIVE, "latest_every": COUNT, "log_every": COUNT,
        "eval_every": NON_NEGATIVE,
        "eval_pairs": COUNT, "time_limit_minutes": NON_NEGATIVE, "threads": NON_NEGATIVE, "seed": anything,
    },
}

ORDERED = [("sde", "sigma_min", "sigma_max"), ("degradation", "radius_min", "radius_max"),
           ("degradation", "noise_min", "noise_max")]  # pairs of keys whose first may not exceed the second


def check_values(document, sections: Iterable[str] | None = None) -> None:
    """Check every value of a whole config (hidd.config.Config or a BaselineConfig), or of the named sections only;
    ConfigError in one line for the first that is not valid."""
    names = [f.name for f in dataclasses.fields(document)] if sections is None else list(sections)
    for name in names:
        section = getattr(document, name)
        check_section(section, RULES[type(section)], name)
    for name, low, high in ORDERED:
        section = getattr(document, name, None) if name in names else None
        if section is not None and getattr(section, low) > getattr(section, high):
            raise ConfigError(f"{name}.{low} ({getattr(section, low):g}) exceeds {name}.{high} "
                              f"({getattr(section, high):g})")

