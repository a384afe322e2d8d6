"""The last line of defence of a blind deblur: detect a result that amplified noise or rings, and back off.

A deconvolution that trusts its data too much (noise under-estimated, a PSF that does not match, JPEG
error read as detail) turns noise and compression artefacts into grain and ringing, and a prior asked to
restore detail that the blur erased invents texture. Both show where the scene is flat: the weak-texture
noise level (hidd.blind.noise, the flattest patches of each intensity) of the result rises above the
photo's. So a result x̂ whose flat-patch noise exceeds `limit` (sampler.max_noise_gain) × the photo's y is
backed off to the blend

    y + w (x̂ − y),   w the largest of BLEND_SHARES whose flat-patch noise is within BLEND_NOISE_GAIN ×
                     the photo's (and within `limit` × where that is lower),

and to y itself, unchanged, where none is. The blend keeps the deblurring's sharper edges at a fraction of
its noise. Its error e_y + w (e_x̂ − e_y) is convex in w, ‖e(w)‖² ≤ (1 − w) ‖e_y‖² + w ‖e_x̂‖²: a blend
loses at most w times what the full result loses, and can beat both ends. A blend must be as clean as
the results that beat their input (BLEND_NOISE_GAIN), not merely within the limit.

Before it blends, hidd.deblur samples a photo whose result is too noisy once more, trusting the prior more
(sampler.noisy_retry_lambda), and this guard then judges the second result the same way; the one it keeps
more of is kept.

A blur that the blind estimate only half trusts (read from the photo's edges alone, hidd.blind.defocus)
caps the share: at most its `max_share` of the deblurring is kept, and the blends above are capped too.

A blind result is also hedged: where the model does not explain the photo, only `hedge_share` of it is kept,

    y + h (x̂ − y),   h = hedge_share + (1 − hedge_share) · white,

white 1 where the data step's calibration misfit y − A x̂₀ is white (its lag-1 autocorrelation c ≤ 0.35: the
model explains the photo up to white noise), 0 where it is correlated (c ≥ 0.55: demosaicing, JPEG, a lens the
PSF family does not match), linear in between (hidd.misfit; the ramp that also sets λ); a misfit never
measured (sampler.noise_calibration 0, or a σ grid that ends above it) counts as correlated.
Why: the error of y + h (x̂ − y) is quadratic in h, with its minimum at h* = ⟨x − y, x̂ − y⟩ / ‖x̂ − y‖². Where
the PSF is right, h* ≈ 1 and h = 0.9 costs (1 − h)² = 1 % of the MSE the deblurring removed (+3 dB → +2.96 dB);
where it is wrong the result overshoots, and h* falls below 1. The hedge multiplies the guard's share:
y + h w (x̂ − y), w as above (decided on the full result: a hedged blend is only less noisy).

A result that rings is halved too: where its spectrum piles power up at its blur's first OTF notch, more than
MAX_NOTCH_EXCESS above the spectrum's smooth trend (hidd.ringing), at most `ringing_share` of it is kept (a cap,
like `max_share`, that the noise blends respect). Deconvolution ringing lies where the blur's OTF nearly
vanishes, which the data step cannot see and the flat-patch noise above does not reach (it rings along edges
and around lights, and the flattest patches lie elsewhere). The measure sees ringing at the first notch only,
and takes a periodic texture whose period lies there for ringing; halving costs such a photo part of its gain,
not more. A photo a 1-channel prior deblurs channel by channel is judged by its worst channel, each at its own
lens.

The flat-patch noise levels are measured on the images' device, in float32 (float64 for float64 images), the photos,
the results and the blends of a batch each as one batch (hidd.blind.noise.estimate_nlfs).

A photo that the blind PSF estimate finds in focus is returned unchanged, unmeasured: there the sampler would
only denoise, which costs detail (so hidd.deblur does not sample it at all).

Each constant's kind and the development photos behind it: docs/DECISIONS.md; the measurements that set them:
docs/BENCHMARKS.md, "Development notes moved from docstrings".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from hidd.blind.noise import estimate_nlfs
from hidd.blind.spectrum import working
from hidd.camera.psf import LensPSF
from hidd.camera.tone import ToneCurve
from hidd.misfit import whiteness
from hidd.ringing import notch_excess

BLEND_SHARES = (0.75, 0.5, 0.25)  # the shares w of the deblurring tried, in turn, when the full result is too noisy
BLEND_NOISE_GAIN = 1.5  # ... and the noise gain a blend may have (at most the limit): that of results better than y
MAX_NOTCH_EXCESS = 1.2  # a result whose power at its blur's first OTF notch exceeds its spectrum's trend by more
# (natural log of the ratio: 3.3×) rings (hidd.ringing; development results that gained ≤ 1.12 where more than half
# was kept, sharp references ≤ 0.94 at the 95th percentile, results the blur model did not explain up to 3.29)
MEASURED_VALUES = 2**26  # the most image values whose flat-patch noise is measured at once (memory, not results)


def flat_noise_levels(images: torch.Tensor, tone: ToneCurve) -> torch.Tensor:
    """(B,) RMS weak-texture noise level of images (B, C, H, W) in [0, 1], float64 on their device (measured there in
    float32, in float64 for float64 images), as many images at a time as MEASURED_VALUES allows."""
    images = working(images)
    return torch.cat([estimate_nlfs(part, tone).level(part).to(torch.float64)
                      for part in images.split(_measured_at_once(images))])


def _measured_at_once(images: torch.Tensor) -> int:
    """How many of images (B, C, H, W) fit MEASURED_VALUES (at least one)."""
    return max(1, MEASURED_VALUES // max(1, images[0].numel()))


def flat_noise_level(image: torch.Tensor, tone: ToneCurve) -> float:
    """RMS weak-texture noise level of one image (C, H, W) in [0, 1]."""
    return float(flat_noise_levels(image[None], tone)[0])


def noise_gain(y: torch.Tensor, result: torch.Tensor, tone: ToneCurve,
               photo_noise: list[float] | torch.Tensor | None = None) -> torch.Tensor:
    """Per image (B,), float64 on the host: the result's flat-patch noise level over the photo's (photo_noise: those
    of y, if measured)."""
    if photo_noise is None or len(photo_noise) == 0:
        photo_noise = flat_noise_levels(y, tone)
    photo_noise = torch.as_tensor(photo_noise, dtype=torch.float64).cpu()
    return flat_noise_levels(result, tone).cpu() / photo_noise


def hedge(misfit_correlation: torch.Tensor, hedge_share: float) -> torch.Tensor:
    """Per image (B,): the share h of a blind result kept, hedge_share where the calibration misfit's lag-1
    autocorrelation (B,) is correlated or unmeasured (NaN), 1 where it is white, linear in between."""
    white = whiteness(misfit_correlation.double().nan_to_num(1.0))
    return hedge_share + (1 - hedge_share) * white


@dataclass(frozen=True)
class BackOff:
    """What the guard returns for a batch."""

    images: torch.Tensor  # (B, C, H, W): y + share · (x̂ − y) per image
    noise_gain: torch.Tensor  # (B,) the full-strength result's flat-patch noise over the photo's; NaN: read in focus
    share: torch.Tensor  # (B,) the share of the deblurring kept, hedge included: 1 the result, 0 the photo unchanged
    hedge: torch.Tensor  # (B,) the hedge h in it (1: none); share / hedge is the guard's own share w
    notch_excess: torch.Tensor  # (B,) the full result's ringing (hidd.ringing, log power ratio); NaN: not measured
    rang: torch.Tensor  # (B,) bool: the ringing capped the share at ringing_share

    def select(self, index: int) -> "BackOff":
        """Image `index`'s outcome, as a batch of one."""
        return BackOff(*(getattr(self, f.name)[index:index + 1] for f in fields(self)))


def back_off(y: torch.Tensor, result: torch.Tensor, tone: ToneCurve, limit: float,
             in_focus: torch.Tensor | None = None, max_share: torch.Tensor | None = None,
             hedges: torch.Tensor | None = None, lenses: list[tuple[LensPSF, ...] | None] | None = None,
             ringing_share: float = 1.0, photo_noise: torch.Tensor | None = None) -> BackOff:
    """The result x̂ (B, C, H, W) where its noise gain over y is within `limit`; elsewhere the blend y + w (x̂ − y)
    at the largest w of BLEND_SHARES whose gain is within min(limit, BLEND_NOISE_GAIN), or y where none is; y where
    in_focus (B,) bool is set, whose result is not measured (its gain is NaN). max_share (B,): the most of each
    image's deblurring that may be kept (a half-trusted blur: 0.5), default 1. A gain that cannot be measured (NaN)
    counts as too noisy. hedges (B,): each image's hedge h (see `hedge`), default 1; the share kept is h w.
    lenses: each image's lens PSF, one for all its channels or one per channel (a 1-channel prior's), at whose first
    OTF notch the result's ringing is measured (the worst channel's); None: its blur is not one lens (a radius map).
    Where it exceeds MAX_NOTCH_EXCESS, w is capped at ringing_share (1: no cap). photo_noise (B,): each photo's
    flat_noise_level where measured already (NaN: measure it here)."""
    y = y.to(result)
    in_focus = torch.zeros(len(y), dtype=torch.bool) if in_focus is None else in_focus.cpu()
    max_share = torch.ones(len(y), dtype=torch.float64) if max_share is None else max_share.cpu().double()
    hedges = torch.ones(len(y), dtype=torch.float64) if hedges is None else hedges.cpu().double()
    lenses = lenses or [None] * len(y)
    gain = torch.full((len(y),), float("nan"), dtype=torch.float64)
    share = torch.zeros(len(y), dtype=torch.float64)
    judged = torch.nonzero(~in_focus).flatten().tolist()
    ringing, rang = _ringing(result, judged, lenses, ringing_share)
    cap = torch.where(rang, max_share.clamp_max(ringing_share), max_share)
    if judged:
        level = _photo_levels(y, judged, tone, photo_noise)  # every blend is compared with it
        gain[judged] = flat_noise_levels(result[judged], tone).cpu() / level[judged]
        share[judged] = cap[judged]
        noisy = [i for i in judged if not gain[i] <= limit]
        share[noisy] = _largest_clean_shares(y, result, tone, level, noisy, cap, min(limit, BLEND_NOISE_GAIN))
    return BackOff(blend(y, result, share * hedges), gain, share * hedges, hedges, ringing, rang)


def _ringing(result: torch.Tensor, index: list[int], lenses: list, ringing_share: float) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    """(B,) each result's of `index` notch excess at its lenses (NaN: not measured), and (B,) bool whether it rang
    (above MAX_NOTCH_EXCESS, with a ringing_share below 1)."""
    ringing = torch.full((len(result),), math.nan, dtype=torch.float64)
    for i in index:
        if lenses[i] is not None:
            ringing[i] = _worst_notch_excess(result[i], lenses[i])
    return ringing, (ringing > MAX_NOTCH_EXCESS) & (ringing_share < 1)


def _photo_levels(y: torch.Tensor, index: list[int], tone: ToneCurve, photo_noise: torch.Tensor | None) -> torch.Tensor:
    """(B,) float64 on the host: photo_noise (B,) where finite, flat_noise_levels of the photos y (B, C, H, W) of
    `index` measured (as one batch) where not, NaN elsewhere."""
    known = torch.full((len(y),), math.nan, dtype=torch.float64) if photo_noise is None else photo_noise
    known = known.to("cpu", torch.float64).clone()
    missing = [i for i in index if not math.isfinite(known[i])]
    if missing:
        known[missing] = flat_noise_levels(y[missing], tone).cpu()
    return known


def _worst_notch_excess(image: torch.Tensor, lenses: tuple[LensPSF, ...]) -> float:
    """hidd.ringing.notch_excess of an image (C, H, W) under its one lens, or its largest over channels with one lens
    each; NaN where none is measured."""
    if len(lenses) == 1:
        return notch_excess(image, lenses[0])
    measured = [value for channel, lens in zip(image, lenses) if not math.isnan(value := notch_excess(channel, lens))]
    return max(measured, default=math.nan)


def _largest_clean_shares(y: torch.Tensor, result: torch.Tensor, tone: ToneCurve, photo_noise: torch.Tensor,
                          index: list[int], cap: torch.Tensor, bar: float) -> torch.Tensor:
    """For each image i of `index`: the largest w of BLEND_SHARES, each capped at cap[i], whose blend of y[i] and
    result[i] has at most `bar` × the photo's noise photo_noise[i]; 0 if none has. Every blend is measured, as many
    at a time as MEASURED_VALUES allows, each made just before it is measured. (len(index),) float64."""
    tried = [(i, w) for i in index for w in sorted({min(w, float(cap[i])) for w in BLEND_SHARES}, reverse=True)
             if w > 0]
    found = {}
    if tried:
        rows, shares = [i for i, _ in tried], torch.tensor([w for _, w in tried], dtype=torch.float64)
        step = _measured_at_once(y)
        levels = [flat_noise_levels(blend(y[part], result[part], shares[start:start + step]), tone).cpu()
                  for start in range(0, len(rows), step) for part in [rows[start:start + step]]]
        gains = torch.cat(levels) / photo_noise[rows]
        for (i, w), clean in zip(tried, (gains <= bar).tolist()):
            if clean and i not in found:  # the largest share comes first
                found[i] = w
    return torch.tensor([found.get(i, 0.0) for i in index], dtype=torch.float64)


def blend(y: torch.Tensor, result: torch.Tensor, share: float | torch.Tensor) -> torch.Tensor:
    """y + share (result − y): one share, or one per image (B,); exactly y at 0 (whatever the result holds) and
    exactly the result at 1 (torch.lerp)."""
    weight = torch.as_tensor(share, dtype=result.dtype, device=result.device)
    weight = weight.reshape(-1, *([1] * (result.ndim - 1))) if weight.ndim else weight
    return torch.where(weight == 0, y, torch.lerp(y, result, weight))
