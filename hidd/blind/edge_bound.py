"""How sharp a uniformly defocused photo's edges can be: the test of a blur estimate against the photo itself.

A spectral fit (hidd.blind.psf_fit) sees the photo's power spectrum only, and a sharp photo whose spectrum
happens to look blurred fools it (smooth gradients of sky and water with few sharp lines). But a disk of
radius r cannot leave a sharp edge anywhere: a step of height h becomes a ramp 2r px wide whose steepest slope
is the disk's line-spread peak, 2h/(πr). So with R the range of y within ± r px of a pixel (the whole step at
the ramp's centre),

    ρ = |∇y| · r / R ≤ 2/π ≈ 0.64,

less for a softened lens. Noise, thin features seen through a hard-edged disk (its line spread has steep
sides) and a lens that is not a disk raise it, so `edge_sharpness` reads a high quantile (EDGE_QUANTILE) of ρ
over the STRONG_EDGE_FRACTION of pixels of strongest local range, and a blur is contradicted only above
MAX_EDGE_SHARPNESS, a margin above 2/π.

The bound assumes a scene without point lights. A small bright source seen through the lens is the PSF
itself, a disc whose rim is as steep as the lens's softening lets it be (bokeh): ρ ≈ r / softening. So the
discs of lights are left out: connected regions brighter than HIGHLIGHT_FACTOR × the mean of their
(4⌈r⌉+1)² neighbourhood that fit in a disc of radius r + HIGHLIGHT_REACH, widened by that radius (the bright
side of a scene's edge extends further and stays in). An image with too little left (MIN_EVIDENCE)
contradicts nothing. Dense lights whose discs overlap defeat this; hidd.blind.defocus therefore asks the test
only where the spectrum alone is least sure (a blur that only a coarser scale saw, and the tiles' shared
blur), and a contradicted blur leaves the photo as it is: the safe side. The test loses its power for small
radii: central differences bound |∇y| by about R/√2, so ρ ≤ r/√2 and no radius under 2 px can be rejected.

The same test reads a blur where the spectrum cannot (hidd.blind.defocus's last resort): `edge_read_radius`
is the radius up to which ρ stays within EDGE_READ_LEVEL (just above a disk's 2/π), in steps of
EDGE_READ_STEP. A blurred edge's ρ grows in proportion to r once r passes its blur, so the reading is its blur,
biased by the lens's shape (a bright rim lowers the line spread's peak and reads long, a soft edge reads
short). Textured photos read short at larger blurs, their strongest local ranges spanning several features:
the safe side.

y is lightly smoothed first (EDGE_SMOOTHING) so that pixel noise does not count as edges; gradients are
central differences, the range a (2⌈r⌉+1)² max − min filter, all on the grey linear-light image.

Computation. Every per-pixel step runs in torch on the images' own device, over all photos of a batch at once
(`edge_sharpness_batch`, `edge_read_radius_batch`), in float32, or in float64 for float64 images (the
reference: scipy.ndimage's results to rounding). The filters are hidd.blind.filters' (ndimage's borders). The
`count` pixels of largest range are those above the count-th largest range, with ties at that value taken in
raster order (first rows first), so the choice is deterministic. The lights' regions are the 4-connected
components of the bright mask (scipy.ndimage.label's), found by hooking each component's roots to the least
root across its edges and jumping pointers until every edge joins one root; a region's bounding box from the
min/max of its rows and columns. Squared distances between pixels are whole numbers, so widening the lights by
r + HIGHLIGHT_REACH is a dilation by the disc {dy² + dx² ≤ (r + HIGHLIGHT_REACH)²}: per row offset dy a run of
±⌊√((r + HIGHLIGHT_REACH)² − dy²)⌋ px (running sums), shifted by ±dy.

Each constant's kind and the photos behind it: docs/DECISIONS.md; the measurements that set them:
docs/BENCHMARKS.md, "Development notes moved from docstrings".
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from hidd.blind import filters
from hidd.blind.spectrum import as_batch, gray_batch

MAX_EDGE_SHARPNESS = 1.3  # ρ's quantile above which a blur of radius r is contradicted (blurred ≤ 1.11, misread ≥ 1.65)
EDGE_QUANTILE = 0.995  # ... taken over
STRONG_EDGE_FRACTION = 0.03  # ... the pixels with the largest local range (flat areas say nothing)
EDGE_SMOOTHING = 0.5  # px: std of the Gaussian applied before the gradients
HIGHLIGHT_FACTOR = 1.5  # a region this × brighter than its neighbourhood's mean, and disc-sized, is a light
HIGHLIGHT_REACH = 2.0  # px beyond the radius r around such a pixel
MIN_EVIDENCE = 0.01  # fraction of the image that must remain for the test to say anything
EDGE_READ_LEVEL = 0.7  # edge_read_radius: the largest r whose ρ stays within this (a disk of radius r: 2/π ≈ 0.64)
EDGE_READ_STEP = 0.5  # px between the radii it tries


def edge_sharpness(linear: torch.Tensor, radius: float) -> float:
    """The EDGE_QUANTILE of ρ = |∇y| · radius / (local range of y within ± ⌈radius⌉ px) over the
    STRONG_EDGE_FRACTION of pixels with the largest local range, leaving out the discs of point lights, for an
    image (C, H, W) or (H, W) in LINEAR light on any device (see the module docstring). About 2/π or less if
    the image is a disk blur of that radius; more if its edges are sharper; 0 if the lights leave too little."""
    return float(edge_sharpness_batch(as_batch(linear, "edge_sharpness"), [radius])[0])


def edge_sharpness_batch(linear: torch.Tensor, radii: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """edge_sharpness of each photo of a batch (B, C, H, W) in LINEAR light at its own radius (B,): (B,) on the
    photos' device, float32 (float64 for float64 photos); the window filters run once per distinct radius."""
    radii = [float(r) for r in torch.as_tensor(radii, dtype=torch.float64).flatten().tolist()]
    if len(radii) != linear.shape[0]:
        raise ValueError(f"edge_sharpness: {len(radii)} radii for {linear.shape[0]} photos")
    for radius in radii:
        _check_radius(radius)
    gray, slope = _smoothed_slope(linear, "edge_sharpness")
    sharpness = torch.zeros(len(radii), dtype=gray.dtype, device=gray.device)
    for radius in sorted(set(radii)):
        pick = torch.tensor([i for i, r in enumerate(radii) if r == radius], device=gray.device)
        sharpness[pick] = _sharpness(gray[pick], slope[pick], radius)
    return sharpness


def edge_read_radius(linear: torch.Tensor, max_radius: float) -> float:
    """The blur the image's edges allow: the largest radius r ≤ max_radius (EDGE_READ_STEP apart) up to which
    edge_sharpness stays within EDGE_READ_LEVEL, for an image (C, H, W) or (H, W) in LINEAR light on any
    device; 0 if even the first step is too sharp or the image has nothing to judge (see the module docstring)."""
    return float(edge_read_radius_batch(as_batch(linear, "edge_read_radius"), max_radius)[0])


def edge_read_radius_batch(linear: torch.Tensor, max_radius: float) -> torch.Tensor:
    """edge_read_radius of each photo of a batch (B, C, H, W) in LINEAR light: (B,) on the photos' device. The
    radii are tried in turn over the photos still reading; a photo stops at its first radius too sharp."""
    gray, slope = _smoothed_slope(linear, "edge_read_radius")
    readings = torch.zeros(gray.shape[0], dtype=gray.dtype, device=gray.device)
    reading = torch.arange(gray.shape[0], device=gray.device)  # the photos whose reading goes on
    window, high, low, bright = 1, gray, gray, None
    for step in range(1, math.floor((max_radius + 1e-9) / EDGE_READ_STEP) + 1):
        candidate = step * EDGE_READ_STEP
        if window < _window(candidate):
            while window < _window(candidate):  # grown by 3×3 filters: max over (w + 2)² = 3×3 max of the w² max
                window, high, low = window + 2, filters.maximum_filter(high, 3), filters.minimum_filter(low, 3)
            bright = _bright(gray, window)
        rho = _sharpness(gray, slope, candidate, high - low, bright)
        within = (rho > 0) & (rho <= EDGE_READ_LEVEL)  # 0: nothing left to judge, which allows no reading either
        readings[reading[within]] = candidate
        if not bool(within.all()):
            keep = within.nonzero().squeeze(1)
            if not keep.numel():
                break
            reading, gray, slope, high, low, bright = (t[keep] for t in (reading, gray, slope, high, low, bright))
    return readings


def _check_radius(radius: float) -> None:
    if not radius > 0:
        raise ValueError(f"edge sharpness: the radius must be > 0, got {radius}")


def _window(radius: float) -> int:
    """The side of the square window within ± ⌈radius⌉ px."""
    return 2 * math.ceil(radius) + 1


def _smoothed_slope(linear: torch.Tensor, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The grey linear-light photos (B, H, W) lightly smoothed (EDGE_SMOOTHING), and their gradient magnitude."""
    gray = gray_batch(linear, who)
    if not bool(torch.isfinite(gray).all()):
        raise ValueError(f"{who}: the image has non-finite values")
    gray = filters.gaussian_filter(gray, EDGE_SMOOTHING)
    return gray, torch.hypot(*filters.gradient(gray))


def _sharpness(gray: torch.Tensor, slope: torch.Tensor, radius: float, local_range: torch.Tensor | None = None,
               bright: torch.Tensor | None = None) -> torch.Tensor:
    """edge_sharpness (B,) of grey photos (B, H, W) already smoothed, with their gradient magnitude (and their
    range over the window of `radius` and their bright pixels (_bright), if already known)."""
    _check_radius(radius)
    window = _window(radius)
    if local_range is None:
        local_range = filters.maximum_filter(gray, window) - filters.minimum_filter(gray, window)
    if bright is None:
        bright = _bright(gray, window)
    judged = ~_light_discs(bright, radius).flatten(1)
    size = judged.shape[1]
    count = judged.sum(dim=1).clamp(max=max(1, round(STRONG_EDGE_FRACTION * size)))  # a share of the whole image
    strong = _largest(torch.where(judged, local_range.flatten(1), -math.inf), count)
    ratio = slope.flatten(1) * radius / local_range.flatten(1).clamp(min=1e-12)
    rho = _top_quantile(torch.where(strong, ratio, -math.inf), count, EDGE_QUANTILE)
    evident = judged.sum(dim=1).double() / size >= MIN_EVIDENCE
    return torch.where(evident, rho, torch.zeros_like(rho))


def _largest(values: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: each row's count[b] largest values (at most its finite ones; −∞ never), ties at the cut taken
    in raster order."""
    top = values.topk(max(1, int(count.max())), dim=1).values
    cut = top.gather(1, (count[:, None] - 1).clamp(min=0))
    cut = torch.where(count[:, None] > 0, cut, math.inf)
    above = values > cut
    tied = (values == cut) & (values > -math.inf)
    return above | (tied & (tied.cumsum(dim=1) <= count[:, None] - above.sum(dim=1, keepdim=True)))


def _top_quantile(values: torch.Tensor, count: torch.Tensor, q: float) -> torch.Tensor:
    """numpy.quantile(·, q) (linear) of each row's `count` finite values of (B, N), the rest −∞; q near 1, so
    only the top ⌈(1 − q) · count⌉ + 2 values are sorted."""
    count = count.to(torch.float64)
    index = count * q + (1 + q * (1 - 2)) - 1  # numpy's virtual index for the linear method
    below = index.floor().clamp(min=0)
    gamma = (index - below).to(values.dtype)
    last = (count - 1).clamp(min=0)
    ranks = torch.stack([last - below, last - (below + 1).clamp(max=last)], dim=1).long()  # from the top
    top = values.topk(min(values.shape[1], math.ceil((1 - q) * float(count.max())) + 2), dim=1).values
    low, high = top.gather(1, ranks.clamp(min=0, max=top.shape[1] - 1)).unbind(1)
    step = high - low
    quantile = torch.where(gamma >= 0.5, high - step * (1 - gamma), low + step * gamma)  # numpy's _lerp
    return torch.where(count > 0, quantile, torch.zeros_like(quantile))


def _bright(gray: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W) bool: the pixels brighter than HIGHLIGHT_FACTOR × the mean of their (2 window − 1)² neighbourhood."""
    return gray > HIGHLIGHT_FACTOR * filters.uniform_filter(gray, 2 * window - 1)


def _light_discs(bright: torch.Tensor, radius: float) -> torch.Tensor:
    """(B, H, W) bool: pixels within radius + HIGHLIGHT_REACH of a point light's disc: a connected region of bright
    pixels (_bright) that fits in that disc (the bright side of a scene's edge extends further and stays in the
    test)."""
    lights = small_regions(bright, 2 * (radius + HIGHLIGHT_REACH))
    if not bool(lights.any()):
        return lights
    return disc_dilation(lights, radius + HIGHLIGHT_REACH)


def small_regions(mask: torch.Tensor, span: float) -> torch.Tensor:
    """(B, H, W) bool: the 4-connected regions of a mask (B, H, W) whose bounding box is at most `span` px
    high and wide (scipy.ndimage.label and find_objects; see the module docstring)."""
    b, h, w = mask.shape
    pixels = mask.flatten().nonzero().squeeze(1)  # the mask's pixels in raster order; nodes 0 … K − 1
    right = _flat_index(mask[..., :-1] & mask[..., 1:], h, w)  # pixels whose right neighbour is in the mask too
    down = _flat_index(mask[:, :-1] & mask[:, 1:], h, w)
    first = torch.searchsorted(pixels, torch.cat([right, down]))
    second = torch.searchsorted(pixels, torch.cat([right + 1, down + w]))
    root = _component_roots(pixels.numel(), first, second)
    rows, cols = pixels // w % h, pixels % w
    fits = (_extent(rows, root) <= span) & (_extent(cols, root) <= span)
    small = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
    small[pixels[fits[root]]] = True
    return small.reshape(b, h, w)


def _flat_index(pairs: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The raster indices in (B, h, w) of the True pixels of `pairs` (B, ≤ h, ≤ w), a crop at the top left."""
    photo, row, col = pairs.nonzero().unbind(1)
    return (photo * h + row) * w + col


def _component_roots(nodes: int, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Each node's component's least node, for a graph of `nodes` nodes with edges first[i] — second[i]: roots
    hooked to the least root across their edges, then pointers jumped until every edge joins one root."""
    root = torch.arange(nodes, device=first.device)
    while True:
        a, b = root[first], root[second]
        if bool((a == b).all()):
            return root
        least = torch.minimum(a, b)
        root.scatter_reduce_(0, a, least, "amin")
        root.scatter_reduce_(0, b, least, "amin")
        while True:  # a root only ever moves to a lesser one: jumps end with every node on its root
            jumped = root[root]
            if bool((jumped == root).all()):
                break
            root = jumped


def _extent(coordinate: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """Per root, max − min + 1 of its nodes' coordinate (a bounding box's side)."""
    size = root.numel()
    top = torch.full((size,), -1, dtype=coordinate.dtype, device=coordinate.device)
    bottom = torch.full((size,), torch.iinfo(coordinate.dtype).max, dtype=coordinate.dtype, device=coordinate.device)
    top = top.scatter_reduce(0, root, coordinate, "amax")
    bottom = bottom.scatter_reduce(0, root, coordinate, "amin")
    return top - bottom + 1


def disc_dilation(mask: torch.Tensor, reach: float) -> torch.Tensor:
    """(B, H, W) bool: the pixels within Euclidean distance `reach` of a pixel of the mask (B, H, W)."""
    limit = reach * reach
    grown = torch.zeros_like(mask)
    for dy in range(min(math.floor(reach), mask.shape[-2] - 1) + 1):  # rows beyond the image reach nothing
        half = math.isqrt(math.floor(limit - dy * dy))
        while half * half + dy * dy > limit:
            half -= 1
        while (half + 1) ** 2 + dy * dy <= limit:
            half += 1
        rows = _dilate_rows(mask, half)
        grown[:, dy:] |= rows[:, :mask.shape[1] - dy]
        grown[:, :mask.shape[1] - dy] |= rows[:, dy:]
    return grown


def _dilate_rows(mask: torch.Tensor, half: int) -> torch.Tensor:
    """(B, H, W) bool: the mask widened by `half` px left and right along its rows (running sums)."""
    if half == 0:
        return mask
    sums = F.pad(mask.to(torch.int32), (half + 1, half)).cumsum(dim=-1, dtype=torch.int32)
    return (sums[..., 2 * half + 1:] - sums[..., :mask.shape[-1]]) > 0
