"""The sampler section's values, checked before any work (hidd.rules): every key has its rule here.

Rules that tie several keys together (a loop's unused keys, the guard's shares without the guard) stay with the
loop that owns them (hidd.sampling.loops.check_settings); check_sampler runs both, in that order.
"""
from __future__ import annotations

from hidd.blind.map_estimators import map_network_problem, radius_map_rule
from hidd.camera.psf import PSF_FAMILIES
from hidd.camera.tone import TONE_CURVES
from hidd.config import ConfigError, SamplerConfig
from hidd.operators import BOUNDARIES
from hidd.rules import COUNT, NON_NEGATIVE, POSITIVE, SHARE, Rule, anything, check_section, number, one_of
from hidd.sampling.base import CONSISTENCIES, CORRECTORS, PREDICTORS  # (filled by importing the loops below)
from hidd.sampling.ensemble import ENSEMBLE_SIZES
from hidd.sampling.loops import LOOPS, check_settings
from hidd.sampling.pc import ORDERS
from hidd.sampling.schedules import SCHEDULE_NAMES

SAMPLER_RULES: dict[str, Rule] = {
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
    "edge_read_share": SHARE, "radius_map": radius_map_rule, "map_network": anything, "radius_tile": number(16),
    "noise_sigma": NON_NEGATIVE,
    "noise_sigma_min": NON_NEGATIVE, "max_noise_gain": NON_NEGATIVE, "hedge_share": number(0, 1, open_low=True),
    "ringing_share": number(0, 1, open_low=True), "noisy_retry_lambda": number(1, open_low=True, also=(0,)),
    "noisy_retry_steps": COUNT, "gray_photos": anything, "boundary": one_of(BOUNDARIES), "gradient_steps": COUNT,
    "gradient_step": number(0, 2, open_low=True),
}


def check_sampler(sampler: SamplerConfig) -> None:
    """Check a sampler section before any work: each value, then what its loop refuses of them together;
    ConfigError or ValueError in one line."""
    check_section(sampler, SAMPLER_RULES, "sampler")
    problem = map_network_problem(sampler.radius_map, sampler.map_network)
    if problem:
        raise ConfigError(problem)
    check_settings(sampler)
