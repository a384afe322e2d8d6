"""Stage 3 of a deblur, select: of a photo and its deblurred candidates, the output the no-harm guard keeps.

select(photo, candidates, evidence) → Selection(output, share, reason, …). The output is y + s (x̂ − y) of the
photo y and one candidate result x̂: the first sampling's and, where the guard calls for it
(`wants_second_sampling`), the second sampling's; the photo itself is the output at share 0, always there. Each
check gives a cap on the share w of a result and a reason (hidd.no_harm.back_off measures them, on the photo alone):

| check | cap | reason |
|---|---|---|
| in focus | 0 where the blind estimate read no blur (the result is not measured) | in-focus |
| trust | max_share: < 1 where only the photo's edges showed the blur (sampler.edge_read_share) | trust |
| ringing | ringing_share where the result rings at its blur's first OTF notch (hidd.ringing) | ringing |
| noise | the largest clean blend within the caps above, where the full result is too noisy (max_noise_gain) | noise |

Where the blur varies across the photo (a radius map), the output is then kept only where the map deblurs,
y + R ⊙ s (x̂ − y) with R its per-pixel share (Evidence.region: 0 in focus, so an in-focus region comes back as it
was); the checks judge the whole result, whose noise a region left as it was would dilute. w = min(caps), and the share s = h · w with the hedge h (hedge_share where a blind result's misfit was correlated,
hidd.no_harm.hedge). `reason` names the check(s) that bound w, '+'-joined, with '+hedge' where h < 1 (a share
kept), 'hedge' where only the hedge did, and 'full' where nothing held the result back. The noise check's cap lies
within the others', so it is named only where it is below them. Of several candidates the one kept is that with the
largest share (the first where they tie); a candidate after the first is taken only where it is finite.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hidd.camera.psf import LensPSF
from hidd.misfit import whiteness
from hidd.no_harm import BackOff, back_off, hedge
from hidd.stages.estimate import Evidence

FULL, HEDGE = "full", "hedge"  # the reasons where no cap bound the share


@dataclass(frozen=True)
class Candidate:
    """A photo's deblurred result and what it was deblurred with."""

    image: torch.Tensor  # (C, H, W) the full result
    lenses: tuple[LensPSF, ...] | None  # its lens PSF (one, or one per channel image); None: not one lens (a map)
    misfit_correlation: torch.Tensor  # (images_per_photo,) its calibration misfit's lag-1 autocorrelation (NaN: not
    # measured)


@dataclass(frozen=True)
class Selection:
    """What the guard keeps of one photo."""

    output: torch.Tensor  # (C, H, W): y + share (x̂ − y)
    share: float  # hedge included: 1 the candidate, 0 the photo
    reason: str  # the check(s) that bound the share (see the module docstring)
    candidate: int  # which candidate x̂ is (0 the first sampling's, 1 the second's)
    measured: BackOff  # the guard's measures of that candidate (noise gain, ringing, hedge)


def _in_focus(measured: BackOff, evidence: Evidence, cfg) -> float:
    return 0.0 if evidence.in_focus is not None and bool(evidence.in_focus[0]) else 1.0


def _trust(measured: BackOff, evidence: Evidence, cfg) -> float:
    return 1.0 if evidence.max_share is None else float(evidence.max_share[0])


def _ringing(measured: BackOff, evidence: Evidence, cfg) -> float:
    return cfg.ringing_share if bool(measured.rang[0]) else 1.0


def _noise(measured: BackOff, evidence: Evidence, cfg) -> float:
    gain = float(measured.noise_gain[0])
    return 1.0 if gain <= cfg.max_noise_gain else float(measured.share[0] / measured.hedge[0])  # NaN: too noisy


CHECKS = {"in-focus": _in_focus, "trust": _trust, "ringing": _ringing, "noise": _noise}  # reason → the cap it gives


def select(photo: torch.Tensor, candidates: list[Candidate], evidence: Evidence, cfg,
           judged: list[BackOff | None] | None = None) -> Selection:
    """The output of one photo (C, H, W), as it is compared and blended (gray where it is taken for gray), among its
    candidates, under its evidence (one photo's: Evidence.select) and the guard's settings (a SamplerConfig).
    judged: candidates' measures made already (judge_batch: a batch's first candidates at once), None where not."""
    best = None
    for index, candidate in enumerate(candidates):
        if index > 0 and not bool(torch.isfinite(candidate.image).all()):
            continue
        known = None if judged is None or index >= len(judged) else judged[index]
        measured = known if known is not None else judge(photo, candidate, evidence, cfg)
        if best is None or float(measured.share[0]) > float(best[1].share[0]):
            best = index, measured
    index, measured = best
    share = float(measured.share[0])
    output = within_region(photo[None], measured.images, evidence.region)[0]
    return Selection(output, share, reason(measured, evidence, cfg), index, measured)


def within_region(photos: torch.Tensor, results: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Results (B, C, H, W) kept only where their photos' blur model deblurs: y + R ⊙ (x̂ − y) with the per-pixel
    share R (B, H, W) of a radius map (Evidence.region: 0 where the map reads the photo in focus, which comes back as
    it was); the results themselves where there is no map (None)."""
    if region is None:
        return results
    photos, region = photos.to(results), region.to(results)[:, None]
    return photos + region * (results - photos)


def judge(photo: torch.Tensor, candidate: Candidate, evidence: Evidence, cfg) -> BackOff:
    """hidd.no_harm.back_off's outcome for one photo's candidate (a batch of one)."""
    return judge_batch(photo[None], [candidate], evidence, cfg)[0]


def judge_batch(photos: torch.Tensor, candidates: list[Candidate], evidence: Evidence, cfg) -> list[BackOff]:
    """judge of each photo (B, C, H, W) with its one candidate, under the batch's evidence: measured as one batch
    (hidd.no_harm.back_off), each photo's measures its own."""
    hedges = torch.cat([hedge(c.misfit_correlation.amax().reshape(1), cfg.hedge_share) for c in candidates]) \
        if evidence.blind else None
    images = torch.stack([c.image for c in candidates]).nan_to_num()
    measured = back_off(photos, images, evidence.tone, cfg.max_noise_gain, evidence.in_focus, evidence.max_share,
                        hedges, [c.lenses for c in candidates], cfg.ringing_share, photo_noise=evidence.photo_noise)
    return [measured.select(i) for i in range(len(candidates))]


def reason(measured: BackOff, evidence: Evidence, cfg) -> str:
    """The check(s) that bound a measured candidate's share (see the module docstring)."""
    caps = {name: check(measured, evidence, cfg) for name, check in CHECKS.items()}
    if caps["in-focus"] == 0:
        return "in-focus"
    kept = float(measured.share[0] / measured.hedge[0])  # w
    binding = [name for name, cap in caps.items() if cap < 1 and math.isclose(cap, kept)]
    if len(binding) > 1 and "noise" in binding:  # its cap lies within the others': they bound it
        binding.remove("noise")
    if float(measured.hedge[0]) < 1 and kept > 0:
        binding.append(HEDGE)
    return "+".join(binding) or FULL


def wants_second_sampling(selection: Selection, candidate: Candidate, evidence: Evidence, cfg) -> bool:
    """Whether the guard calls for a second sampling of a photo (sampler.noisy_retry_lambda): its blind result was too
    noisy, its misfit correlated in every image (a white one had its λ lowered already, and × noisy_retry_lambda of
    the correlated λ would overshoot it many times), and the guard could keep more of a second result."""
    measured = selection.measured
    too_noisy = not float(measured.noise_gain[0]) <= cfg.max_noise_gain  # NaN: read in focus, left out below
    correlated = bool((whiteness(candidate.misfit_correlation.nan_to_num(1.0)) == 0).all())
    could_keep_more = selection.share < _trust(measured, evidence, cfg) * float(measured.hedge[0])
    return (cfg.noisy_retry_lambda > 0 and evidence.blind and too_noisy and _in_focus(measured, evidence, cfg) > 0
            and correlated and could_keep_more)
