"""Pick the sampling loop named by `sampler.loop`: the paper's predictor–corrector or the short tweedie loop."""
from __future__ import annotations

from hidd.sampling import pc, tweedie

# settings a loop refuses, checked before any work (e.g. a blind estimate)
CHECKS = {"pc": pc.check_settings, "tweedie": tweedie.check_settings}

LOOPS = {
    "pc": pc.sample,  # predictor, corrector and consistency per iteration (paper Algorithm 1)
    "tweedie": tweedie.sample,  # denoise, data step, re-noise per level; warm starts (DiffPIR / CCDF)
}


def _loop(cfg):
    """The sample function of cfg.loop; an unknown name is refused in one line."""
    if cfg.loop not in LOOPS:
        raise ValueError(f"sampler.loop: unknown loop '{cfg.loop}' (choose from {', '.join(LOOPS)})")
    return LOOPS[cfg.loop]


def check_settings(cfg) -> None:
    """Refuse, in one line, settings the loop of cfg.loop would ignore or misuse."""
    _loop(cfg)
    CHECKS.get(cfg.loop, lambda _: None)(cfg)


def sample(sde, score_fn, cfg, **kwargs):
    """Run the loop of cfg.loop with hidd.sampling.pc.sample's arguments (including operator=)."""
    return _loop(cfg)(sde, score_fn, cfg, **kwargs)
