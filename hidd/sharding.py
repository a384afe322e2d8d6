"""Sharded reconstruction under torchrun: which photos each rank deblurs, and what the ranks tell rank 0 at the end.

The photos still to do, in input order p_0, p_1, …, p_{M-1} (every rank finds the same list: the same folder,
read before any rank writes), are dealt round-robin, rank r of N taking

    share(r) = { p_i : i ≡ r (mod N) },

so each photo is deblurred and written by exactly one rank, and the ranks' counts differ by at most one. A photo's
output does not depend on the photos batched or sharded with it (each draws its noise from its own generator,
hidd.randomness), so a sharded run writes what one process would. Each rank writes its photos' PNGs and its own
metrics rows (hidd.results.part_path); at the end every rank hands rank 0 a `RankReport` (its curves, counts and
failures), and rank 0 merges the rows into the one metrics.csv, prints the one table and writes the mean curves.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


def share(items: list, rank: int, world_size: int) -> list:
    """The items rank `rank` of `world_size` takes: every world_size-th, from its own position."""
    return items[rank::world_size]


@dataclass
class RankReport:
    """What one rank did, for rank 0 to sum up."""

    written: int = 0  # images written
    failures: list[str] = field(default_factory=list)  # one line each, printed by that rank as it happened
    curves: dict = field(default_factory=dict)  # step → per-batch PSNR/SSIM lists (hidd.monitor.log_mean_curves)
    curved: int = 0  # batches with curve points

    @classmethod
    def merged(cls, reports: list["RankReport"]) -> "RankReport":
        """All ranks' reports as one (failures and curves in rank order)."""
        curves = defaultdict(list)
        for report in reports:
            for step, values in report.curves.items():
                curves[step].extend(values)
        return cls(written=sum(r.written for r in reports), failures=[line for r in reports for line in r.failures],
                   curves=dict(curves), curved=sum(r.curved for r in reports))
