"""Tone curves Γ: linear scene radiance l ↔ encoded pixel values e = Γ(l), both nominally in [0, 1].

A camera's optics blur linear radiance; the tone curve comes after, so a defocused photo is
y = Γ(k ∗ Γ⁻¹(x) + n), not k ∗ x + n. Curves here are defined on the whole real line (an iterate of a
sampler strays below 0 and above 1): odd-symmetric about 0, so that a small negative excursion maps
back to a small negative value, and with a finite slope everywhere the slope is used.

- 'srgb' (IEC 61966-2-1): e = 12.92 l for l ≤ 0.0031308, else 1.055 l^(1/2.4) − 0.055;
  its inverse switches at e = 0.04045.
- 'gamma': e = l^(1/γ) (`gamma` = γ, 2.2 by default).
- 'none': the identity; blur then acts on the values as given (how the sRGB-disk benchmark was made).

Noise carried through a curve: a small perturbation δl of the radiance becomes Γ'(l) δl, so a noise
std σ_l(l) in linear light is Γ'(l) σ_l(l) in the encoded image (see `slope`).
"""
from __future__ import annotations

import abc

import torch

from hidd.registry import Registry

TONE_CURVES = Registry("tone_curve")


class ToneCurve(abc.ABC):
    """An increasing, odd-symmetric map from linear radiance to encoded values."""

    @abc.abstractmethod
    def encode(self, linear: torch.Tensor) -> torch.Tensor:
        """Γ(l): linear radiance → encoded values."""

    @abc.abstractmethod
    def decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """Γ⁻¹(e): encoded values → linear radiance."""

    @abc.abstractmethod
    def slope(self, linear: torch.Tensor) -> torch.Tensor:
        """dΓ/dl at l: how much a small linear-light perturbation grows in the encoded image."""

    @property
    def is_identity(self) -> bool:
        return False


def _odd(fn, x: torch.Tensor) -> torch.Tensor:
    """fn on |x| with x's sign: fn extended odd-symmetrically to negative values."""
    return torch.sign(x) * fn(x.abs())


@TONE_CURVES.register("srgb")
class SRGB(ToneCurve):
    """The sRGB transfer function (a linear toe, then a 1/2.4 power)."""

    LINEAR_KNEE = 0.0031308  # l below which the curve is the line 12.92 l
    ENCODED_KNEE = 0.04045  # the same point on the encoded axis
    TOE_SLOPE = 12.92

    def encode(self, linear):
        def positive(l):
            power = 1.055 * l.clamp_min(self.LINEAR_KNEE) ** (1 / 2.4) - 0.055  # clamp: no NaN gradient in the toe
            return torch.where(l <= self.LINEAR_KNEE, self.TOE_SLOPE * l, power)
        return _odd(positive, linear)

    def decode(self, encoded):
        def positive(e):
            power = ((e.clamp_min(self.ENCODED_KNEE) + 0.055) / 1.055) ** 2.4
            return torch.where(e <= self.ENCODED_KNEE, e / self.TOE_SLOPE, power)
        return _odd(positive, encoded)

    def slope(self, linear):
        l = linear.abs()
        power = 1.055 / 2.4 * l.clamp_min(self.LINEAR_KNEE) ** (1 / 2.4 - 1)
        return torch.where(l <= self.LINEAR_KNEE, torch.full_like(l, self.TOE_SLOPE), power)


@TONE_CURVES.register("gamma")
class Gamma(ToneCurve):
    """A plain power law e = l^(1/γ); its slope is capped near 0, where it would be infinite."""

    MAX_SLOPE = 1e3

    def __init__(self, gamma: float = 2.2):
        if gamma <= 0:
            raise ValueError(f"tone curve gamma must be > 0, got {gamma}")
        self.gamma = gamma

    def encode(self, linear):
        return _odd(lambda l: l ** (1 / self.gamma), linear)

    def decode(self, encoded):
        return _odd(lambda e: e**self.gamma, encoded)

    def slope(self, linear):
        l = linear.abs().clamp_min(1e-12)
        return (l ** (1 / self.gamma - 1) / self.gamma).clamp_max(self.MAX_SLOPE)


@TONE_CURVES.register("none")
class Identity(ToneCurve):
    """No tone curve: the values are taken as linear."""

    def encode(self, linear):
        return linear

    def decode(self, encoded):
        return encoded

    def slope(self, linear):
        return torch.ones_like(linear)

    @property
    def is_identity(self) -> bool:
        return True


def tone_curve(name: str, gamma: float = 2.2) -> ToneCurve:
    """The curve of that name ('srgb', 'gamma' with exponent `gamma`, 'none')."""
    cls = TONE_CURVES.get(name)
    return cls(gamma) if cls is Gamma else cls()
