"""Data-consistency steps: keep the iterate close to the defocused measurement y."""
from __future__ import annotations

from hidd.sampling.base import CONSISTENCIES, Consistency


@CONSISTENCIES.register("interpolate")
class InterpolateConsistency(Consistency):
    """Paper Eq. 11, x ← x − α (x − y): a convex step toward y (no blur model).

    Applied to x and x_mean alike: x_mean is what the loop returns (and, with the authors'
    `carry_mean`, what it continues from), so it must see the same pull as x; for x the pull
    also shrinks the carried noise by (1 − α), exactly as it would on the authors' single iterate.
    """

    def __init__(self, alpha: float):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"sampler.alpha: the consistency weight must lie in [0, 1], got {alpha}")
        self.alpha = alpha  # 0 ignores y, 1 replaces the iterate by y

    @classmethod
    def from_config(cls, cfg, alpha):
        return cls(alpha)

    def apply(self, x, x_mean, y, sigma):
        return x - self.alpha * (x - y), x_mean - self.alpha * (x_mean - y)


@CONSISTENCIES.register("none")
class NoneConsistency(Consistency):
    """No data consistency (unconditional sampling; the P and P+C ablations)."""

    needs_measurement = False

    def apply(self, x, x_mean, y, sigma):
        return x, x_mean
