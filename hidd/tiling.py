"""Tiled score evaluation: full-resolution photos with the network's memory bounded by a tile.

Only the network is tiled. `TiledScore` turns a score function on whole images into one that
crops overlapping tiles, runs them through the network in batches and blends the results with
smooth windows. The sampler around it keeps the whole image: its state, the data-consistency
step and every noise draw stay global, so tiles cannot disagree about noise.

Whether to tile is decided by one image's memory, never by its batch's: an image is evaluated whole
or on the same tiles whatever it is batched with (a seam would make its result depend on its batch).
A batch of whole images that would exceed the budget runs through the network in chunks of as many
images as it holds (`ChunkedScore`), each image's output what it would be alone.

Tiles are full-size (edge tiles are shifted inward) and start at multiples of the network's
`size_multiple`, so each sees the same resampling grid as the whole image would. In the overlap
of two tiles the weight passes from one to the other along a raised-cosine ramp, placed in the
middle of the overlap: the outer quarter of the overlap on each side takes no weight from the
tile whose edge is there, because near its edge a tile sees zero padding, not its neighbours.
A local operator of radius ≤ overlap / 4 is therefore reproduced exactly. The windows are
normalised to sum to 1 at every pixel. An image no larger than the tile is not tiled at all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hidd.memory import activation_bytes_per_pixel, default_budget_bytes
from hidd.sampling.base import ScoreFn

MAX_DEFAULT_OVERLAP = 64  # px; a quarter of the tile up to this
MIN_MEMORY_GB = 1 / 16  # --max-memory below this would cut even a small photo into a crowd of tiny tiles


@dataclass
class TilingConfig:
    """How to tile the score network (the hidd-reconstruct options --tile, --tile-overlap, ...)."""
    tile: int | None = None  # tile side in px, a multiple of the network's size_multiple;
    #                          None: automatic, only when the image would exceed the memory budget; 0: never tile
    overlap: int | None = None  # px shared by neighbouring tiles (a multiple of size_multiple);
    #                             None: a quarter of the tile, at most 64 px
    tile_batch: int = 4  # most tile crops per network call (fewer when the budget holds fewer)
    max_memory_gb: float | None = None  # the network's activation budget in GiB;
    #                                     None: 4 on CPU, 80 % of the free memory on CUDA


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one image size lie and how many crops go through the network at once."""
    tile_h: int  # tile height (the tile side, or the image height when that is smaller)
    tile_w: int
    starts_y: tuple[int, ...]  # top rows of the tile rows
    starts_x: tuple[int, ...]  # left columns of the tile columns
    overlap: int
    batch: int  # crops per network call

    @property
    def num_tiles(self) -> int:
        return len(self.starts_y) * len(self.starts_x)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def default_overlap(tile: int, multiple: int) -> int:
    """A quarter of the tile, at most MAX_DEFAULT_OVERLAP, in whole network multiples (< tile)."""
    return min(round_up(min(tile // 4, MAX_DEFAULT_OVERLAP), multiple), tile - multiple)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of size `tile` covering [0, length) with at least `overlap` shared px;
    the last tile is shifted inward to end at `length` (so it may overlap its neighbour more)."""
    if length <= tile:
        return [0]
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def _rise(width: int, margin: int) -> torch.Tensor:
    """Weight of the later of two tiles across their `width` shared px: 0 for `margin` px, a
    raised-cosine ramp, 1 for `margin` px. rise + rise.flip(0) == 1, so the earlier tile takes
    the flipped ramp."""
    ramp_len = width - 2 * margin
    k = torch.arange(ramp_len, dtype=torch.float64)
    ramp = torch.sin(0.5 * math.pi * (k + 0.5) / ramp_len) ** 2  # strictly inside (0, 1)
    return torch.cat([torch.zeros(margin, dtype=torch.float64), ramp, torch.ones(margin, dtype=torch.float64)])


def blend_windows(starts: list[int], tile: int, length: int, overlap: int) -> torch.Tensor:
    """(len(starts), tile) float64 weights along one axis, summing to 1 at every position."""
    margin = overlap // 4
    windows = torch.ones(len(starts), tile, dtype=torch.float64)
    for i in range(len(starts) - 1):
        shared = starts[i] + tile - starts[i + 1]
        rise = _rise(shared, margin)
        windows[i + 1, :shared] *= rise
        windows[i, tile - shared:] *= rise.flip(0)
    total = torch.zeros(length, dtype=torch.float64)
    for start, window in zip(starts, windows):
        total[start:start + tile] += window
    return torch.stack([window / total[start:start + tile] for start, window in zip(starts, windows)])


def _check_multiple(name: str, value: int, multiple: int) -> None:
    if value < 0 or value % multiple:
        raise ValueError(f"{name} {value}: must be a non-negative multiple of the network's size multiple {multiple}")


class ScoreTiler:
    """Decides, per network input shape, whether and how to tile, and wraps score functions."""

    def __init__(self, config: TilingConfig, *, multiple: int, bytes_per_pixel: float, budget_bytes: int):
        self.config = config
        self.multiple = multiple  # the network's size_multiple: tiles and overlaps are multiples of it
        self.bytes_per_pixel = bytes_per_pixel  # activation bytes per pixel of one network input
        self.budget_bytes = budget_bytes  # the network's activation budget per call
        if config.tile:
            _check_multiple("--tile", config.tile, multiple)
        if config.overlap is not None:
            _check_multiple("--tile-overlap", config.overlap, multiple)
            if config.tile and config.overlap >= config.tile:
                raise ValueError(f"--tile-overlap {config.overlap}: must be smaller than the tile {config.tile}")
        if config.tile_batch < 1:
            raise ValueError(f"--tile-batch {config.tile_batch}: must be at least 1")

    @classmethod
    def for_prior(cls, config: TilingConfig, prior) -> "ScoreTiler":
        """The tiler of a loaded `hidd.prior.Prior`: its network's multiple, estimate and device budget."""
        given = config.max_memory_gb
        if given is not None and not (math.isfinite(given) and given >= MIN_MEMORY_GB):
            raise ValueError(f"--max-memory {given:g}: give a budget of at least {MIN_MEMORY_GB:g} GiB (default: 4 on a "
                             "CPU, 80% of the free GPU memory)")
        budget = int(given * 2**30) if given is not None else default_budget_bytes(prior.device)
        return cls(config, multiple=prior.model.size_multiple,
                   bytes_per_pixel=activation_bytes_per_pixel(prior.config.model), budget_bytes=budget)

    def wrap(self, score_fn: ScoreFn, shape) -> ScoreFn:
        """For images of `shape` (B, C, H, W): a TiledScore where one image exceeds the budget (or tiles are asked
        for), else `score_fn` on as many whole images per call as the budget holds (ChunkedScore; any batch)."""
        plan = self.plan(shape)
        if plan is not None:
            return TiledScore(score_fn, plan)
        _, _, h, w = shape
        return ChunkedScore(score_fn, max(1, int(self.budget_bytes // (h * w * self.bytes_per_pixel))))

    def plan(self, shape) -> TilePlan | None:
        """The tiling of network inputs of `shape` (B, C, H, W), decided by one image's memory, or None to evaluate
        them whole."""
        _, _, h, w = shape
        fits_whole = h * w * self.bytes_per_pixel <= self.budget_bytes
        tile = self.config.tile
        if tile == 0 or (tile is None and fits_whole):
            return None
        if tile is None:
            tile = self._auto_tile(h, w)
        if tile >= h and tile >= w and fits_whole:
            return None
        overlap = self.config.overlap if self.config.overlap is not None else default_overlap(tile, self.multiple)
        th, tw = min(tile, h), min(tile, w)
        crops_that_fit = int(self.budget_bytes // (th * tw * self.bytes_per_pixel))
        return TilePlan(tile_h=th, tile_w=tw, starts_y=tuple(tile_starts(h, th, overlap)),
                        starts_x=tuple(tile_starts(w, tw, overlap)), overlap=overlap,
                        batch=max(1, min(self.config.tile_batch, crops_that_fit)))

    def _auto_tile(self, h: int, w: int) -> int:
        """Among tiles whose crop fits the budget: the fewest tiles (fewest seams, most context),
        then the smallest tile giving that count (least computation spent on overlaps).
        When not even the smallest tile fits, the smallest."""
        candidates = []
        for tile in range(self.multiple, round_up(max(h, w), self.multiple) + 1, self.multiple):
            overlap = self.config.overlap if self.config.overlap is not None else default_overlap(tile, self.multiple)
            if overlap >= tile:
                continue
            count = len(tile_starts(h, min(tile, h), overlap)) * len(tile_starts(w, min(tile, w), overlap))
            fits = min(tile, h) * min(tile, w) * self.bytes_per_pixel <= self.budget_bytes
            candidates.append((not fits, count, tile))
        if not candidates:
            raise ValueError(f"--tile-overlap {self.config.overlap}: leaves no tile size for a {h}x{w} image")
        fitting = [c for c in candidates if not c[0]]
        return min(fitting)[2] if fitting else min(c[2] for c in candidates)


class ChunkedScore:
    """score_fn(x, sigma) on at most `images` whole images per call, the results concatenated."""

    def __init__(self, score_fn: ScoreFn, images: int):
        self.score_fn = score_fn  # score on a batch of whole images
        self.images = images  # most images per call

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if len(x) <= self.images:
            return self.score_fn(x, sigma)
        sigma = sigma.reshape(-1).expand(len(x))
        return torch.cat([self.score_fn(x[i:i + self.images], sigma[i:i + self.images])
                          for i in range(0, len(x), self.images)])


class TiledScore:
    """score_fn(x, sigma) on overlapping tiles of x, `plan.batch` crops per call, blended.

    Crops are taken tile by tile, each tile from every image of the batch, and each crop is
    evaluated at its own image's σ. The output has x's shape, dtype and device.
    """

    def __init__(self, score_fn: ScoreFn, plan: TilePlan):
        self.score_fn = score_fn  # score on a batch of network-sized crops
        self.plan = plan
        self._windows: dict = {}  # (length, starts, tile, device) -> per-tile 1-D weights, reused every call

    def _axis_windows(self, length: int, starts, tile: int, device) -> torch.Tensor:
        key = (length, tuple(starts), tile, device)
        if key not in self._windows:
            self._windows[key] = blend_windows(list(starts), tile, length, self.plan.overlap).float().to(device)
        return self._windows[key]

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        plan = self.plan
        n, _, h, w = x.shape
        sigma = sigma.reshape(-1).expand(n)
        win_y = self._axis_windows(h, plan.starts_y, plan.tile_h, x.device)
        win_x = self._axis_windows(w, plan.starts_x, plan.tile_w, x.device)
        crops = [(iy, ix, image) for iy in range(len(plan.starts_y)) for ix in range(len(plan.starts_x))
                 for image in range(n)]
        out = torch.zeros_like(x)
        for first in range(0, len(crops), plan.batch):
            chunk = crops[first:first + plan.batch]
            boxes = [(plan.starts_y[iy], plan.starts_x[ix]) for iy, ix, _ in chunk]
            images = [image for _, _, image in chunk]
            batch = torch.stack([x[image, :, y0:y0 + plan.tile_h, x0:x0 + plan.tile_w]
                                 for image, (y0, x0) in zip(images, boxes)])
            scores = self.score_fn(batch, sigma[images])
            for (iy, ix, image), (y0, x0), score in zip(chunk, boxes, scores):
                weight = win_y[iy][:, None] * win_x[ix][None, :]
                out[image, :, y0:y0 + plan.tile_h, x0:x0 + plan.tile_w].addcmul_(score, weight)
        return out
