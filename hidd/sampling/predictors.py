"""Predictors: one step of the reverse-time SDE per sampler iteration."""
from __future__ import annotations

import math

from hidd.sampling.base import PREDICTORS, Predictor, randn_like
from hidd.sde import _expand


@PREDICTORS.register("reverse_diffusion")
class ReverseDiffusionPredictor(Predictor):
    """Ancestral step along the SDE's own discrete levels (paper Eq. 9):
    x_mean = x − (f_i − G_i² s_θ(x, σ)), x = x_mean + G_i z; for the VE-SDE G_i² = σ_i² − σ_{i−1}².

    The step follows `sde.discretize`, i.e. the SDE's `num_scales` levels, so the sampler must take
    exactly that many steps; a different count would step by the wrong G_i.
    """

    def __init__(self, sde, score_fn, num_steps):
        super().__init__(sde, score_fn, num_steps)
        if num_steps != sde.num_scales:
            raise ValueError(
                f"sampler.predictor reverse_diffusion steps through the SDE's {sde.num_scales} discrete levels, "
                f"but sampler.num_steps is {num_steps}: set sde.num_scales={num_steps} too (sampling only; "
                f"the network does not depend on it) or use predictor euler_maruyama")

    def update(self, x, t, sigma, generator=None):
        shift, G = self.sde.reverse_discrete(x, t, self.score_fn(x, sigma))
        x_mean = x - shift
        return x_mean + _expand(G, x) * randn_like(x, generator), x_mean


@PREDICTORS.register("euler_maruyama")
class EulerMaruyamaPredictor(Predictor):
    """Euler–Maruyama step of the reverse SDE dx = [f − g² s] dt + g dw̄ with dt = −1/N.

    It uses only the continuous drift and diffusion, so any number of steps works.
    """

    def update(self, x, t, sigma, generator=None):
        dt = -1.0 / self.num_steps
        drift, g = self.sde.reverse_drift(x, t, self.score_fn(x, sigma))
        x_mean = x + drift * dt
        return x_mean + _expand(g, x) * math.sqrt(-dt) * randn_like(x, generator), x_mean


@PREDICTORS.register("none")
class NonePredictor(Predictor):
    """Leaves x unchanged and evaluates nothing (corrector- or consistency-only samplers)."""

    def update(self, x, t, sigma, generator=None):
        return x, x
