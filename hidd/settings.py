"""Every config value checked before a run starts: names against their registries, numbers against their domains.

hidd.config refuses an unknown key and a value of the wrong type as it reads them; this module refuses a value of
the right type that means nothing (`sampler.tone_curve: srgbb`, `sampler.radius: -3`), in one line naming the key,
the value and what it may be, before any image is read or any file written (hidd-reconstruct, hidd-train,
hidd-train-baseline). Named choices come from the registries and tables that build the stages, so a newly
registered tone curve or consistency step is valid at once; each numeric domain is where the key's formula means
something (its comment in hidd/config.py). Rules that tie several keys together (a loop's unused keys, the guard's
shares without the guard) stay with the loop that owns them: hidd.sampling.loops.check_settings.

Every key of every section has a rule here (tests/test_settings.py checks it), so a new key must say what its
valid values are.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable

from hidd.baselines.config import BaselineModelConfig, BaselineTrainingConfig, DegradationConfig
from hidd.baselines.networks import NETWORKS
from hidd.baselines.pairs import DEGRADATIONS
from hidd.camera.tone import TONE_CURVES
from hidd.config import ConfigError, DataConfig, ModelConfig, SamplerConfig, SDEConfig, TrainingConfig
from hidd.data import MODES
from hidd.losses import REDUCTIONS
from hidd.measurement import PSF_FAMILIES
from hidd.models import MODELS
from hidd.operators import BOUNDARIES
from hidd.sampling.base import CONSISTENCIES, CORRECTORS, PREDICTORS  # (filled by importing the loops below)
from hidd.sampling.ensemble import ENSEMBLE_SIZES
from hidd.sampling.loops import LOOPS, check_settings
from hidd.sampling.pc import ORDERS
from hidd.sampling.schedules import SCHEDULE_NAMES
from hidd.sde import SDES
from hidd.precision import TRAINING_PRECISIONS

Rule = Callable[[object], str | None]  # a value → what it must be where it is not valid, else None


def one_of(names: Callable[[], Iterable] | Iterable) -> Rule:
    """A name from a registry or table (read when checked, so registrations made after import count)."""
    def rule(value):
        valid = [str(n) for n in (names() if callable(names) else names)]
        if str(value) in valid:
            return None
        close = difflib.get_close_matches(str(value), valid, n=1)
        return (f"did you mean '{close[0]}'? " if close else "") + f"choose from {', '.join(valid)}"
    return rule


def number(low: float = -math.inf, high: float = math.inf, *, open_low: bool = False, open_high: bool = False,
           also: tuple = ()) -> Rule:
    """A number in [low, high] (or the open ends), or one of `also` (an 'off' value outside the range)."""
    def rule(value):
        if value in also or ((low < value if open_low else low <= value) and
                             (value < high if open_high else value <= high)):
            return None
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        span = (f"> {low:g}" if open_low else f"≥ {low:g}") if high == math.inf else \
            f"in {left}{low:g}, {high:g}{right}"
        return "it must be " + " or ".join([f"{v:g}" for v in also] + [f"a number {span}"])
    return rule


def each(rule: Rule) -> Rule:
    """A rule for every item of a list."""
    def check(values):
        return next((f"{problem} (every item)" for problem in map(rule, values) if problem), None)
    return check


def anything(_value) -> None:  # free values: seeds, paths (their files are checked when they are read), flags
    return None


POSITIVE, NON_NEGATIVE, COUNT, SHARE = number(0, open_low=True), number(0), number(1), number(0, 1)
FRACTION = number(0, 1, open_high=True)  # [0, 1): decay rates, dropout

RULES: dict[type, dict[str, Rule]] = {
    SamplerConfig: {
        "predictor": one_of(PREDICTORS.names), "corrector": one_of(CORRECTORS.names),
        "consistency": one_of(CONSISTENCIES.names), "num_steps": COUNT, "snr": NON_NEGATIVE,
        "corrector_steps": COUNT, "corrector_chains": COUNT, "alpha": SHARE, "alpha_after_predictor": SHARE,
        "minmax_normalize": anything, "carry_mean": anything, "order": one_of(ORDERS), "denoise_final": anything,
        "t_end": number(0, 1, open_low=True, open_high=True), "loop": one_of(LOOPS), "schedule": one_of(SCHEDULE_NAMES),
        "sigma_start": NON_NEGATIVE, "sigma_end": NON_NEGATIVE, "rho": POSITIVE, "zeta": SHARE, "renoise": SHARE,
        "score_ensemble": one_of(ENSEMBLE_SIZES), "prox_lambda": POSITIVE, "noise_calibration": NON_NEGATIVE,
        "prox_lambda_white": NON_NEGATIVE, "softening_white": NON_NEGATIVE, "tone_curve": one_of(TONE_CURVES.names),
        "gamma": POSITIVE, "psf": one_of(PSF_FAMILIES), "blades": number(3, also=(0,)), "radius": NON_NEGATIVE,
        "softening": NON_NEGATIVE, "max_radius": POSITIVE, "shared_quantile": number(0, 0.5, open_high=True),
        "edge_read_share": SHARE, "radius_map": anything, "radius_tile": number(16), "noise_sigma": NON_NEGATIVE,
        "noise_sigma_min": NON_NEGATIVE, "max_noise_gain": NON_NEGATIVE, "hedge_share": number(0, 1, open_low=True),
        "ringing_share": number(0, 1, open_low=True), "noisy_retry_lambda": number(1, open_low=True, also=(0,)),
        "noisy_retry_steps": COUNT, "gray_photos": anything, "boundary": one_of(BOUNDARIES), "gradient_steps": COUNT,
        "gradient_step": number(0, 2, open_low=True),
    },
    DataConfig: {
        "roots": anything, "val_roots": anything, "val_images": NON_NEGATIVE, "image_size": number(8),
        "mode": one_of(MODES), "random_flip": anything, "cache": anything, "num_workers": NON_NEGATIVE,
    },
    ModelConfig: {
        "name": one_of(MODELS), "channels": one_of((1, 3)), "nf": COUNT, "ch_mult": each(COUNT),
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
        "steps": COUNT, "batch_size": COUNT, "lr": POSITIVE, "lr_decay_from": SHARE, "cycle_weight": NON_NEGATIVE,
        "identity_weight": NON_NEGATIVE, "latest_every": COUNT, "log_every": COUNT, "eval_every": NON_NEGATIVE,
        "eval_pairs": COUNT, "time_limit_minutes": NON_NEGATIVE, "threads": NON_NEGATIVE, "seed": anything,
    },
}

ORDERED = [("sde", "sigma_min", "sigma_max"), ("degradation", "radius_min", "radius_max"),
           ("degradation", "noise_min", "noise_max")]  # pairs of keys whose first may not exceed the second


def check_section(section, where: str) -> None:
    """ConfigError (one line) for the first value of a config section (e.g. a SamplerConfig) outside its rule."""
    rules = RULES[type(section)]
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        problem = rules[f.name](value)
        if problem:
            raise ConfigError(f"{where}.{f.name}: {value!r} is not valid; {problem}")


def check_values(document, sections: Iterable[str] | None = None) -> None:
    """Check every value of a whole config (hidd.config.Config or a BaselineConfig), or of the named sections only;
    ConfigError in one line for the first that is not valid."""
    names = [f.name for f in dataclasses.fields(document)] if sections is None else list(sections)
    for name in names:
        check_section(getattr(document, name), name)
    for name, low, high in ORDERED:
        section = getattr(document, name, None) if name in names else None
        if section is not None and getattr(section, low) > getattr(section, high):
            raise ConfigError(f"{name}.{low} ({getattr(section, low):g}) exceeds {name}.{high} "
                              f"({getattr(section, high):g})")


def check_sampler(sampler: SamplerConfig) -> None:
    """Check a sampler section before any work: each value (above), then what its loop refuses of them together."""
    check_section(sampler, "sampler")
    check_settings(sampler)
