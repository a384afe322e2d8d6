"""Sharded reconstruction under torchrun: which photos each rank deblurs, and what the ranks tell rank 0 at the end.

The photos still to do, in input order p_0, p_1, …, p_{M-1} (every rank finds the same list: the same folder,
read before any rank writes), are dealt so that the ranks' work is even. A photo's cost is its pixel count c_i
(what its network evaluations scale with; photos of one size cost alike). Longest processing time first: the
photos taken largest first (ties in input order), each goes to the rank whose photos so far cost least (ties: the
one with fewest photos, then the lowest rank), and each rank then deblurs its photos in input order. A photo whose
header cannot be read counts as the median of the others. The busiest rank's cost is then at most (4/3 − 1/(3N))
times the least possible (Graham's bound for N ranks), and where every photo has one size they are dealt
round-robin, rank r of N taking

    share(r) = { p_i : i ≡ r (mod N) }.

Rank 0 reads the headers and every rank deals from its costs, so all deal alike. Every photo is deblurred and
written by exactly one rank. A photo's output does not depend on the
photos batched or sharded with it (each draws its noise from its own generator, hidd.randomness), so a sharded run
writes what one process would. Each rank writes its photos' PNGs and its own metrics rows (hidd.results.part_path);
at the end every rank hands rank 0 a `RankReport` (its curves, counts and failures), and rank 0 merges the rows into
the one metrics.csv, prints the one table and writes the mean curves.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


def share(items: list, rank: int, world_size: int, costs: list[float] | None = None) -> list:
    """The items rank `rank` of `world_size` takes, in their order: with `costs` (one per item), the longest
    processing time first deal of the module docstring; without, every world_size-th from its own position."""
    if costs is None:
        return items[rank::world_size]
    if len(costs) != len(items):
        raise ValueError(f"share: {len(costs)} costs for {len(items)} items")
    known = [cost for cost in costs if cost > 0]
    usual = float(np.median(known)) if known else 1.0
    costs = [cost if cost > 0 else usual for cost in costs]  # an unknown cost (≤ 0) counts as the median known one
    loads, counts, owner = [0.0] * world_size, [0] * world_size, [0] * len(items)
    for i in sorted(range(len(items)), key=lambda i: -costs[i]):  # (a stable sort: ties in input order)
        owner[i] = min(range(world_size), key=lambda r: (loads[r], counts[r], r))  # least cost, then fewest photos
        loads[owner[i]] += costs[i]
        counts[owner[i]] += 1
    return [item for item, r in zip(items, owner) if r == rank]


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
