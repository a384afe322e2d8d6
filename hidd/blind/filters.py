"""Image filters of the blind estimates in torch, on the images' own device and dtype, with scipy.ndimage's borders.

Every filter takes images (…, H, W) and filters the last two axes; leading axes are a batch (photos, channels).
They reproduce scipy.ndimage's results to rounding, so that a decision measured with ndimage does not move:

- `gaussian_filter(x, σ, mode, truncate)`: the separable kernel exp(−t² / 2σ²) / Σ on t ∈ [−r, r],
  r = ⌊truncate · σ + ½⌋ (ndimage's radius);
- `uniform_filter(x, size)`: the mean over a size × size window (odd size), by running sums: along each axis
  (S[i + size] − S[i]) / size with S the cumulative sum in float64 (whatever x's dtype), so its cost and its rounding
  do not grow with the window;
- `maximum_filter` / `minimum_filter(x, size)`: the max / min over a size × size window (odd size), separable, each
  axis by van Herk / Gil–Werman: cut into blocks of `size`, a window starting at i spans the end of one block and
  the start of the next, so its max is max(suffix max at i, prefix max at i + size − 1): three passes whatever the
  window (exact: a max involves no rounding);
- `gradient(x)`: numpy.gradient's (∂y, ∂x): central differences (x[i+1] − x[i−1]) / 2 inside, one-sided
  differences at the first and last row and column.

Borders: mode "reflect" is ndimage's half-sample symmetric extension (… c b a | a b c …), "nearest" repeats the
edge (… a a | a b c …). A window's max or min under "reflect" equals that over the window clipped to the image
(every reflected pixel mirrors one inside the window), so the rank filters pad with ∓∞ instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("reflect", "nearest")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"filter border mode must be one of {', '.join(MODES)}, got {mode!r}")


def _check_odd(size: int, who: str) -> None:
    if size < 1 or size % 2 != 1:
        raise ValueError(f"{who}: the window size must be odd and positive, got {size}")


def _pad_axis(x: torch.Tensor, pad: int, dim: int, mode: str) -> torch.Tensor:
    """x extended by `pad` samples on both ends of axis `dim` with ndimage's border `mode`."""
    if pad == 0:
        return x
    n = x.shape[dim]
    index = torch.arange(-pad, n + pad, device=x.device)
    if mode == "nearest":
        index = index.clamp(0, n - 1)
    else:  # half-sample symmetric, periodic with period 2n beyond one reflection
        index = index % (2 * n)
        index = torch.where(index >= n, 2 * n - 1 - index, index)
    return x.index_select(dim, index)


def _separable(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate the last two axes of x (…, H, W) with the 1-D `kernel` (odd length) along each, ndimage borders: a
    weighted sum of the kernel's shifted slices (on a CPU several times faster than a convolution of one channel)."""
    if x.ndim < 2:
        raise ValueError(f"filters take images (…, H, W), got a tensor of shape {tuple(x.shape)}")
    pad, taps = kernel.numel() // 2, kernel.tolist()

    def along(v: torch.Tensor, dim: int) -> torch.Tensor:
        v = _pad_axis(v, pad, dim, mode)
        n = v.shape[dim] - 2 * pad
        out = v.narrow(dim, 0, n) * taps[0]
        for shift, tap in enumerate(taps[1:], start=1):
            out.add_(v.narrow(dim, shift, n), alpha=tap)
        return out

    return along(along(x, x.ndim - 2), x.ndim - 1)


def gaussian_kernel(sigma: float, truncate: float = 4.0, dtype=torch.float64) -> torch.Tensor:
    """ndimage's 1-D Gaussian: exp(−t²/2σ²) on t ∈ [−r, r], r = int(truncate σ + ½), normalised to sum 1."""
    if not sigma > 0:
        raise ValueError(f"gaussian filter: sigma must be > 0, got {sigma}")
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def gaussian_filter(x: torch.Tensor, sigma: float, mode: str = "reflect", truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter of the last two axes of x (…, H, W) (see the module docstring)."""
    _check_mode(mode)
    return _separable(x, gaussian_kernel(sigma, truncate), mode)


def uniform_filter(x: torch.Tensor, size: int, mode: str = "reflect") -> torch.Tensor:
    """scipy.ndimage.uniform_filter of the last two axes of x (…, H, W) over an odd size × size window."""
    _check_mode(mode)
    _check_odd(size, "uniform filter")

    def along_last(v: torch.Tensor) -> torch.Tensor:
        sums = F.pad(_pad_axis(v, size // 2, v.ndim - 1, mode).double().cumsum(-1), (1, 0))
        return ((sums[..., size:] - sums[..., :-size]) / size).to(v.dtype)

    return along_last(along_last(x).transpose(-1, -2)).transpose(-1, -2)


def maximum_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """scipy.ndimage.maximum_filter (mode "reflect") of the last two axes of x (…, H, W), odd size × size window."""
    _check_odd(size, "maximum filter")
    pad = size // 2
    x = F.pad(x, (pad, pad, pad, pad), value=float("-inf"))  # within the image only (see the module docstring)
    return _running_max(_running_max(x, size).transpose(-1, -2), size).transpose(-1, -2)


def _running_max(x: torch.Tensor, size: int) -> torch.Tensor:
    """The max of every `size` consecutive values along the last axis of x (van Herk / Gil–Werman)."""
    n = x.shape[-1] - size + 1
    length = -(-x.shape[-1] // size) * size
    blocks = F.pad(x, (0, length - x.shape[-1]), value=float("-inf")).unflatten(-1, (length // size, size))
    prefix = blocks.cummax(-1).values.flatten(-2)
    suffix = blocks.flip(-1).cummax(-1).values.flip(-1).flatten(-2)
    return torch.maximum(suffix[..., :n], prefix[..., size - 1:size - 1 + n])


def minimum_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """scipy.ndimage.minimum_filter (mode "reflect") of the last two axes of x (…, H, W), odd size × size window."""
    return -maximum_filter(-x, size)


def gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """numpy.gradient of the last two axes of x (…, H, W) (each at least 2 long): (∂/∂row, ∂/∂column)."""
    if min(x.shape[-2:]) < 2:
        raise ValueError(f"gradient: images must be at least 2x2, got {tuple(x.shape[-2:])}")

    def along(dim: int) -> torch.Tensor:
        n = x.shape[dim]
        inner = (x.narrow(dim, 2, n - 2) - x.narrow(dim, 0, n - 2)) / 2
        first = x.narrow(dim, 1, 1) - x.narrow(dim, 0, 1)
        last = x.narrow(dim, n - 1, 1) - x.narrow(dim, n - 2, 1)
        return torch.cat([first, inner, last], dim)

    return along(x.ndim - 2), along(x.ndim - 1)
