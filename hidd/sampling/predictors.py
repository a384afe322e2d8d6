"""Predictors: one step of the reverse-time SDE per sampler iteration."""
from __future__ import annotations

import torch

from hidd.sampling.base import PREDICTORS, Predictor, randn_like
from hidd.sde import _expand


@PREDICTORS.register("reverse_diffusion")
class ReverseDiffusionPredictor(Predictor):
    """Ancestral step along the SDE's own discrete levels (paper Eq. 9):
    x_mean = x − (f_i − G_i² s_θ(x, σ)), x = x_mean + G_i z; for the VE-SDE G_i² = σ_i² − σ_{i−1}².

    The step follows `sde.discretize` at the grid's level N − 1 − i (GridStep.level), i.e. the SDE's
    `num_scales` levels, so the sampler must take exactly that many steps; a different count would step by
    the wrong G_i. The last step (level 0) has G_0 = σ_min: it ends at σ = 0.
    """

    def __init__(self, sde, score_fn, num_steps):
        super().__init__(sde, score_fn, num_steps)
        if num_steps != sde.num_scales:
            raise ValueError(
                f"sampler.predictor reverse_diffusion steps through the SDE's {sde.num_scales} discrete levels, "
                f"but sampler.num_steps is {num_steps}: set sde.num_scales={num_steps} too (sampling only; "
                f"the network does not depend on it) or use predictor euler_maruyama")

    def update(self, x, step, generator=None):
        shift, G = self.sde.reverse_discrete(x, step.level, self.score_fn(x, step.sigma))
        x_mean = x - shift
        return x_mean + _expand(G, x) * randn_like(x, generator), x_mean


@PREDICTORS.register("euler_maruyama")
class EulerMaruyamaPredictor(Predictor):
    """Euler–Maruyama step of the reverse SDE dx = [f − g² s] dt + g dw̄ with dt = t_{i+1} − t_i.

    dt is the grid's own spacing, −(1 − t_end)/(N − 1), and the last step goes from t_end to 0, so the steps
    add up to exactly the time from 1 to 0 (score_sde's dt = −1/N is not the spacing of its own grid: each
    step integrates the drift over a different interval than the one it moves t by). It uses only the
    continuous drift and diffusion, so any number of steps works.
    """

    def update(self, x, step, generator=None):
        dt = step.t_next - step.t  # (B,), negative
        drift, g = self.sde.reverse_drift(x, step.t, self.score_fn(x, step.sigma))
        x_mean = x + drift * _expand(dt, x)
        return x_mean + _expand(g * torch.sqrt(-dt), x) * randn_like(x, generator), x_mean


@PREDICTORS.register("none")
class NonePredictor(Predictor):
    """Leaves x unchanged and evaluates nothing (corrector- or consistency-only samplers)."""

    def update(self, x, step, generator=None):
        return x, x
