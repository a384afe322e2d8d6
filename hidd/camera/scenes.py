"""Depth-varying scenes for the camera: where the defocus radius comes from, as a map or as layers.

Two layouts, the camera benchmark's (scripts/make_benchmark.py, conditions (c) and (d)):
- `tilted_plane`: the disparity of a plane tilted along a random direction θ, d(x, y) = cos θ · x + sin θ · y on
  [−1, 1]², rendered gathered (hidd.camera.optics.blur_depth_varying; no occlusion) with the radius
  |d − d_focus| scaled to a top radius (hidd.camera.disparity_to_radius);
- `subject_mask`: a subject's coverage α, one blob covering SUBJECT_SHARE of the frame: low-pass noise
  (Gaussian, σ = size / 10) plus a bump about a random centre, thresholded at `supersample`× the resolution, its
  largest connected region with its holes filled, averaged down (an edge about 1 px soft); rendered layered with
  occlusion (hidd.camera.optics.Layers, blur_layered).

`sample_scene` draws one training scene of a sharp crop (the learned defocus map's, hidd.blind.map_net) from these
and a uniform blur, every draw from one `random.Random` in a fixed order, through a random lens camera
(hidd.camera.draws.lens_camera: blades, aberration, lateral colour, softening 0.3–1 px, Poisson–Gaussian noise,
demosaicing, JPEG 75–95). Its kinds (SCENE_KINDS), radius r ∈ [0, max_radius]:
  uniform   one radius for the frame; with probability IN_FOCUS_SHARE r = 0 (only the lens's softening);
  tilt      a tilted plane, in focus along a line d_focus ∈ [−1, 1], top radius U(FOCUS_TOP, max_radius);
  subject   an in-focus subject (r = 0) before a background at U(FOCUS_TOP, max_radius), with occlusion;
  layers    a subject and a background, each at its own radius U(0, max_radius) (both may be defocused).
The true radius map is what a pinhole sees at each pixel (Layers.radius_map: mixed along a soft edge).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from hidd.camera.draws import lens_camera
from hidd.camera.optics import Layers, disparity_to_radius
from hidd.camera.pipeline import Camera

SUBJECT_SHARE = (0.2, 0.45)  # the share of the frame a subject covers
SCENE_KINDS = ("uniform", "tilt", "subject", "layers")
IN_FOCUS_SHARE = 0.4  # of the uniform scenes: in focus (r = 0: the lens's softening only)
FOCUS_TOP = 2.0  # px: the least top radius of a tilt and the least background radius behind an in-focus subject
SCENE_LEVELS = 11  # radius layers of a tilted plane's gathered blur (as the camera benchmark's)


def tilted_plane(rng: random.Random, size: int) -> torch.Tensor:
    """Disparity of a plane tilted along a random direction: it falls linearly across the frame."""
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return np.cos(angle) * xx + np.sin(angle) * yy


def subject_mask(rng: random.Random, size: int, supersample: int = 4) -> np.ndarray:
    """A random subject's coverage α (size, size) in [0, 1]: one blob covering SUBJECT_SHARE of the frame (the module
    docstring), each pixel the share of its supersample² sub-pixels inside (an edge about 1 px soft)."""
    noise = np.random.default_rng(rng.randrange(2**32))
    yy, xx = np.mgrid[0:size, 0:size] / size
    for _ in range(100):
        share = rng.uniform(*SUBJECT_SHARE)
        cy, cx = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65)
        field = ndimage.gaussian_filter(noise.standard_normal((size, size)), size / 10, mode="reflect")
        field = field / field.std() + 2.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.25 ** 2))
        fine = ndimage.zoom(field, supersample, order=1)
        inside = fine > np.quantile(fine, 1 - share)
        labels, count = ndimage.label(inside)
        if count == 0:
            continue
        largest = labels == 1 + np.argmax(ndimage.sum_labels(inside, labels, range(1, count + 1)))
        alpha = ndimage.binary_fill_holes(largest).reshape(size, supersample, size, supersample).mean(axis=(1, 3))
        if SUBJECT_SHARE[0] <= alpha.mean() <= SUBJECT_SHARE[1]:
            return alpha
    raise ValueError(f"no subject of {SUBJECT_SHARE[0]:.0%}–{SUBJECT_SHARE[1]:.0%} of the frame in 100 draws")


@dataclass(frozen=True)
class Scene:
    """A rendered training scene: the photo the camera took and the true radius per pixel."""

    photo: torch.Tensor  # (C, H, W) encoded values in [0, 1], as the file holds them
    radius: torch.Tensor  # (H, W) true disk radius, px (0 in focus)
    kind: str
    camera: Camera


def sample_scene(rng: random.Random, sharp: torch.Tensor, *, max_radius: float = 12.0,
                 kinds: tuple[str, ...] = SCENE_KINDS, weights: tuple[float, ...] | None = None) -> Scene:
    """One scene (the module docstring) of a sharp square crop (C, S, S) of encoded values, every draw from `rng`
    (the noise too): the same rng state and crop give the same scene."""
    if sharp.ndim != 3 or sharp.shape[-1] != sharp.shape[-2]:
        raise ValueError(f"sample_scene: expected a square crop (C, S, S), got {tuple(sharp.shape)}")
    unknown = set(kinds) - set(SCENE_KINDS)
    if unknown or not kinds:
        raise ValueError(f"sample_scene: unknown scene kinds {sorted(unknown)} (choose from {', '.join(SCENE_KINDS)})")
    if max_radius < FOCUS_TOP:
        raise ValueError(f"sample_scene: max_radius must be ≥ {FOCUS_TOP}, got {max_radius}")
    size = sharp.shape[-1]
    kind = rng.choices(kinds, weights=weights)[0]
    generator = torch.Generator().manual_seed(rng.randrange(2**63))
    x = sharp[None].float()
    if kind == "uniform":
        r = 0.0 if rng.random() < IN_FOCUS_SHARE else rng.uniform(0.0, max_radius)
        camera = lens_camera(rng, r)
        photo, radius = camera.render(x, generator=generator), torch.full((size, size), r)
    elif kind == "tilt":
        top, focus = rng.uniform(FOCUS_TOP, max_radius), rng.uniform(-1.0, 1.0)
        radius = disparity_to_radius(tilted_plane(rng, size), focus, top).float()
        camera = lens_camera(rng, 1.0)
        photo = camera.render(x, radius_map=radius, levels=SCENE_LEVELS, generator=generator)
    else:
        alpha = torch.from_numpy(subject_mask(rng, size)).float()
        if kind == "subject":
            background, near = rng.uniform(FOCUS_TOP, max_radius), 0.0
        else:
            background, near = rng.uniform(0.0, max_radius), rng.uniform(0.0, max_radius)
        camera = lens_camera(rng, background)
        layers = Layers.subject(alpha, background, near)
        photo, radius = camera.render(x, layers=layers, generator=generator), layers.radius_map()
    return Scene(photo[0].float(), radius.float(), kind, camera)
