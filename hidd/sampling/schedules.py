"""Noise-level grids σ_0 > σ_1 > … > σ_{N−1} for samplers that step between noise levels.

'linear_t': the paper's grid, σ(t) for t = linspace(1, t_end, N): it always starts at σ_max.
'geometric': log-uniform from σ_start to σ_end (for the VE-SDE that is linear_t with other end points).
'edm': Karras et al. (2022), σ_i = (σ_start^{1/ρ} + i/(N−1) (σ_end^{1/ρ} − σ_start^{1/ρ}))^ρ, denser at low σ
for larger ρ (7 in EDM).
σ_start = 0 means the SDE's σ(t = 1) (no warm start); σ_end = 0 means its σ(t = 0).
"""
from __future__ import annotations

import math

import torch


def _geometric(start: float, end: float, n: int, rho: float) -> torch.Tensor:
    return torch.exp(torch.linspace(math.log(start), math.log(end), n, dtype=torch.float64))


def _edm(start: float, end: float, n: int, rho: float) -> torch.Tensor:
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    return (start ** (1 / rho) + ramp * (end ** (1 / rho) - start ** (1 / rho))) ** rho


SCHEDULES = {"geometric": _geometric, "edm": _edm}
SCHEDULE_NAMES = ("linear_t", *SCHEDULES)  # sampler.schedule


def sigma_grid(cfg, sde) -> torch.Tensor:
    """The N = cfg.num_steps noise levels (float64, decreasing) of a SamplerConfig for an SDE."""
    n = cfg.num_steps
    if n < 1:
        raise ValueError(f"sampler.num_steps must be ≥ 1, got {n}")
    if cfg.schedule == "linear_t":
        if cfg.sigma_start > 0:
            raise ValueError("sampler.schedule linear_t always starts at σ_max; use geometric or edm to warm-start "
                             "at sigma_start")
        return sde.sigma(torch.linspace(1.0, cfg.t_end, n, dtype=torch.float64))
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"sampler.schedule: unknown schedule '{cfg.schedule}' "
                         f"(choose from {', '.join(SCHEDULE_NAMES)})")
    start = cfg.sigma_start if cfg.sigma_start > 0 else float(sde.sigma(torch.tensor(1.0)))
    end = cfg.sigma_end if cfg.sigma_end > 0 else float(sde.sigma(torch.tensor(0.0)))
    if not end <= start:
        raise ValueError(f"sampler: need sigma_end ≤ sigma_start, got {end} and {start}")
    if n == 1:
        return torch.tensor([start], dtype=torch.float64)
    return SCHEDULES[cfg.schedule](start, end, n, cfg.rho)
