"""Stage 1 of a deblur, estimate: what the photos say of their blur and noise, before any sampling.

estimate(photos, cfg, layout) → (model, evidence):
- the model (`Model`): the photos as the network sees them (hidd.stages.layout) and their measurement model
  y = A x + n (hidd.measurement: each photo's given or blindly estimated PSF and its noise-level function, a
  hidd.operators.BlurOperator), or none for a consistency step without a blur model (sampler.consistency);
- the evidence (`Evidence`), per photo, that the no-harm guard weighs a result with (hidd.stages.select) and the
  report shows: the PSF radius, whether it sits at the top of the search, the share a half-trusted blur allows
  (max_share), whether the blind estimate read the photo in focus, and whether its colour is at its noise level
  (gray, hidd.colour), with the flat-patch noise level that test measured.
Every estimate is made per photo on that photo alone, so nothing here depends on the photos batched with it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

from hidd.batch import take
from hidd.blind.defocus_map import region_share
from hidd.camera.optics import Layers
from hidd.camera.tone import ToneCurve, tone_curve
from hidd.colour import colourless, gray as to_gray
from hidd.measurement import measurement_model
from hidd.operators import BlurOperator
from hidd.sampling.blur_consistency import needs_operator
from hidd.stages.layout import Layout, pad_to_multiple


@dataclass(frozen=True)
class Model:
    """What a sampling inverts: photos in the network's layout (B · images_per_photo images) and their measurement
    model, one entry per network image (None: a consistency step without one)."""

    y: torch.Tensor
    operator: BlurOperator | None
    layout: Layout

    def photos(self, index: list[int]) -> "Model":
        """The model of photos `index` (positions in the batch) alone."""
        rows = self.layout.rows(index)
        return Model(take(self.y, rows), None if self.operator is None else self.operator.select(rows), self.layout)


@dataclass(frozen=True)
class Evidence:
    """What the estimates found of each photo (B,), and whether its results are judged as blind ones."""

    tone: ToneCurve  # the camera's tone curve (sampler.tone_curve), the guard's noise measure's
    blind: bool  # the blur was estimated (not given, no radius map) and the guard is on: results are hedged, and a
    # result too noisy may be sampled again
    radius: torch.Tensor | None = None  # PSF radius (a radius map's mean); None: no blur model
    at_bound: torch.Tensor | None = None  # bool: the blind radius is the largest searched (the blur may be larger)
    max_share: torch.Tensor | None = None  # float64: the most of the deblurring that may be kept (< 1: a blur read
    # from the photo's edges alone, hidd.blind.defocus); None: no blur model
    in_focus: torch.Tensor | None = None  # bool: the blind estimate read no blur; None: not judged (guard off, or a
    # given blur)
    gray: torch.Tensor | None = None  # bool: its colour is at its noise level (hidd.colour); None: not tested
    region: torch.Tensor | None = None  # (B, H, W) in [0, 1]: the share of a deblurring each pixel may keep where
    # the blur varies across the photo (a radius map: 0 in focus, hidd.blind.defocus_map.region_share); None: all
    photo_noise: torch.Tensor | None = None  # float64: its flat-patch noise where the colour test measured it (NaN:
    # not measured, or a gray photo, whose gray differs from its colour's)

    def select(self, index: list[int]) -> "Evidence":
        """The evidence of photos `index` (positions in the batch)."""
        def rows(value):
            return value[torch.as_tensor(index, dtype=torch.long)] if isinstance(value, torch.Tensor) else value
        return replace(self, **{f.name: rows(getattr(self, f.name)) for f in fields(self)})

    def grayed(self, x: torch.Tensor, index: list[int] | None = None) -> torch.Tensor:
        """Photos (B', C, H, W), those of the batch's `index` (all where None), projected onto gray where the colour
        test took the photo for gray (hidd.colour), as they are elsewhere."""
        if self.gray is None:
            return x
        return to_gray(x, self.gray if index is None else self.gray[index])


def estimate(photos: torch.Tensor, cfg, layout: Layout, *, radius_map: torch.Tensor | None = None,
             layers: list[Layers] | None = None,
             stage: Callable[[str], None] = lambda name: None) -> tuple[Model, Evidence]:
    """The model and evidence of photos (B, C, H, W) in [0, 1] under a SamplerConfig (see the module docstring).
    radius_map: a known per-pixel defocus radius (B, H, W) instead of the estimate (needs sampler.radius_map).
    layers: instead, each photo's known layered scene (hidd.camera.Layers, coverages (L, H, W)): the blur with
    occlusion (hidd.operators.LayeredBlur). stage(name) is told what it is doing (reading colour, estimating the
    blur)."""
    b, c = photos.shape[:2]
    tone = tone_curve(cfg.tone_curve, cfg.gamma)
    gray = photo_noise = None
    if cfg.gray_photos and c == 3:
        stage("reading colour")
        gray, photo_noise = colourless(photos, tone)
        photo_noise = torch.where(gray, torch.nan, photo_noise)  # a gray photo's differs from its colour's
    y = layout.to_network(photos)
    if (radius_map is not None or layers is not None) and not needs_operator(cfg.consistency):
        raise ValueError("a known radius map or known layers need a blur-aware consistency "
                         "(sampler.consistency: prox or gradient)")
    size = tuple(photos.shape[-2:])
    if radius_map is not None and tuple(radius_map.shape[-2:]) != size:
        raise ValueError(f"known radius map of shape {tuple(radius_map.shape)} for photos {tuple(photos.shape)}")
    if layers is not None:  # as the maps: padded like y, one per network image
        if len(layers) != b or any(tuple(scene.alphas.shape[-2:]) != size for scene in layers):
            raise ValueError(f"known layers: one per photo of {size[0]}×{size[1]}, got "
                             f"{[tuple(scene.alphas.shape) for scene in layers]} for {b} photos")
        layers = [Layers(pad_to_multiple(scene.alphas.to(y.device, torch.float32), layout.multiple)[0], scene.radii)
                  for scene in layers for _ in range(layout.images_per_photo)]
    if radius_map is not None:  # padded like y; one map per network image (a 1-channel prior sees C per photo)
        radius_map = pad_to_multiple(radius_map.to(y.device, torch.float32)[:, None], layout.multiple)[0]
        radius_map = radius_map.repeat_interleave(layout.images_per_photo, dim=0)[:, 0]
    operator = None
    if needs_operator(cfg.consistency):
        stage("estimating the blur")
        operator = measurement_model(y, cfg, radius_map, layers)
    guarded = operator is not None and cfg.max_noise_gain > 0
    blind = guarded and cfg.radius <= 0 and radius_map is None and layers is None  # (a blind radius map too)
    evidence = Evidence(tone=tone, blind=blind, gray=gray, photo_noise=photo_noise)
    if operator is not None:  # one value per photo (a 1-channel prior sees its C channels as C images)
        radius = operator.radius.reshape(b, -1).mean(dim=1).cpu()
        evidence = replace(evidence, radius=radius, at_bound=operator.at_bound.reshape(b, -1).any(dim=1).cpu(),
                           max_share=operator.max_share.reshape(b, -1).amin(dim=1).cpu(),
                           in_focus=radius == 0 if blind else None)
        field = operator.radius_field
        if field is not None:  # in focus where the map reads no blur: that part of the photo is kept as it is
            h, w = layout.photo_shape[1:]  # a 1-channel prior's channel images each have a map: the most deblurred
            region = region_share(field[:, 0, :h, :w]).reshape(b, layout.images_per_photo, h, w).amax(dim=1)
            evidence = replace(evidence, region=region.cpu())
    return Model(y, operator, layout), evidence
