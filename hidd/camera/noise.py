"""Sensor noise: Poisson–Gaussian in linear light, and its level in the encoded (tone-mapped) image.

A pixel collecting linear radiance l reads l + n, with n of variance a·l + b (Foi et al. 2008):
a from photon shot noise (it grows with the ISO gain), b from read-out. Through the tone curve Γ the
std becomes Γ'(l)·sqrt(a·l + b) — the noise-level function (NLF) of the encoded image, a function of
the encoded intensity e = Γ(l). For the sRGB curve Γ' ∝ l^(−0.58) nearly cancels the shot term's l^0.5,
so shot noise is roughly flat in sRGB and read noise dominates in the shadows.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from hidd.camera.tone import ToneCurve


@dataclass(frozen=True)
class PoissonGaussian:
    """Noise of variance shot·l + read² at linear radiance l ∈ [0, 1]."""

    shot: float = 0.0  # a: variance per unit of radiance
    read: float = 0.0  # std of the signal-independent part

    def std(self, linear: torch.Tensor) -> torch.Tensor:
        """Noise std at linear radiance `linear` (negative values count as 0)."""
        return (self.shot * linear.clamp_min(0) + self.read**2).sqrt()

    def encoded_std(self, encoded: torch.Tensor, tone: ToneCurve) -> torch.Tensor:
        """The NLF: noise std in the encoded image at encoded intensity `encoded` (small-noise linearisation)."""
        linear = tone.decode(encoded)
        return tone.slope(linear) * self.std(linear)

    def sample(self, linear: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """linear + noise (Gaussian approximation of the Poisson part, fine beyond a few photons)."""
        if self.shot == 0 and self.read == 0:
            return linear
        z = torch.randn(linear.shape, generator=generator, dtype=linear.dtype, device=linear.device)
        return linear + self.std(linear) * z


def add_white_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x plus white Gaussian noise of std `sigma` (generator on x's device)."""
    return PoissonGaussian(read=sigma).sample(x, generator) if sigma > 0 else x


class NoiseLevelFunction:
    """Noise std of each image of a batch as a function of encoded intensity e:

        std(e)² = Γ'(l)² (shot·l + read²) + floor²,   l = Γ⁻¹(e),

    Poisson–Gaussian sensor noise carried through the tone curve, plus a signal-independent floor on the
    encoded scale (quantisation, compression, and noise added after the curve). shot, read, floor: (B,).
    """

    def __init__(self, tone: ToneCurve, shot: torch.Tensor, read: torch.Tensor, floor: torch.Tensor):
        self.tone = tone
        self.shot, self.read, self.floor = shot, read, floor

    @classmethod
    def white(cls, tone: ToneCurve, sigma: torch.Tensor) -> "NoiseLevelFunction":
        """Signal-independent noise of std sigma (B,) on the encoded scale."""
        zero = torch.zeros_like(sigma)
        return cls(tone, zero, zero, sigma)

    def _per_image(self, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return value.to(like).reshape(-1, *([1] * (like.ndim - 1)))

    def std(self, encoded: torch.Tensor) -> torch.Tensor:
        """Noise std at each value of encoded images (B, …)."""
        linear = self.tone.decode(encoded).clamp_min(0)
        shot, read, floor = (self._per_image(v, encoded) for v in (self.shot, self.read, self.floor))
        return (self.tone.slope(linear) ** 2 * (shot * linear + read**2) + floor**2).sqrt()

    def linear_std(self, encoded: torch.Tensor) -> torch.Tensor:
        """The same noise seen in linear light, std(e) / Γ'(l) (the curve's small-noise linearisation)."""
        return self.std(encoded) / self.tone.slope(self.tone.decode(encoded).clamp_min(0))

    def level(self, encoded: torch.Tensor) -> torch.Tensor:
        """One number per image (B,): the root-mean-square std over the pixels of `encoded`."""
        return self.std(encoded).square().flatten(1).mean(dim=1).sqrt()
