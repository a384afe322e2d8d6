"""Blurring images with PSFs: the optical transfer function, FFT convolution, depth-varying blur.

Images are (B, C, H, W). A PSF argument may be
- (K, K): the same PSF for every image and channel;
- (B, K, K): one per image (the same for its channels);
- (B, C, K, K) or (B, 1, K, K): one per image and channel.
K is odd and the PSF's centre is at K // 2. Everything follows the image's device and dtype and is
differentiable, so the same operators make data and serve the sampler's data-consistency steps.

Two models of defocus that varies over the frame:

**Gather** (`blur_depth_varying`, a per-pixel radius map r(p)): the image blurred at a few radii r_i, each
output pixel interpolating between the two whose radii bracket its own, y(p) = Σ_i w_i(p) (k_{r_i} ∗ x)(p).
Each pixel sees the whole scene through its own PSF; occlusion at depth edges is ignored (a sharp subject's
colour spreads over the blurred background next to it). Right where depth varies smoothly (a tilted plane).

**Layers with occlusion** (`blur_layered`, scenes whose depth order is known; Hasinoff & Kutulakos, "A
layer-based restoration framework for variable-aperture photography", ICCV 2007, and layered depth-of-field
rendering). The scene is L fronto-parallel layers l = 0 … L−1, from far to near, each with a coverage α_l
(H, W) in [0, 1] (its opaque pixels; soft at edges) and a PSF k_l; the farthest is usually the whole frame,
α_0 = 1. The all-in-focus photo x is what a pinhole sees, so layer l is seen where nothing nearer covers it:

    T_l = Π_{m>l} (1 − α_m)          (the transmission of the layers in front of l; T_{L−1} = 1)
    v_l = α_l T_l                      (layer l's visible share of each pixel; Σ_l v_l = 1 when α_0 = 1)

What is hidden behind nearer layers is not in x: the layer continues behind them with the colour of its own
visible pixels nearby, by normalised convolution with its own PSF, backed by a pull-push fill (for depths the
PSF does not reach):

    h_l = (k_l ∗ (v_l x) + τ c_l) / (k_l ∗ v_l + τ),    τ = FILL_TAU = 1e-3
    c_l = push-pull of (v_l x, v_l): both halved (area means) down to one pixel, then back up with
          c_j = (N_j + τ_p up(c_{j+1})) / (D_j + τ_p),  τ_p = 1/16, `up` bilinear
    x_l = T_l x + (1 − T_l) h_l       (a pixel's photo where the layer is seen, its fill where it is hidden)

Each layer is blurred as a premultiplied image and the layers are composited far to near ("over"):

    y = Σ_l (k_l ∗ (α_l x_l)) Π_{m>l} (1 − k_m ∗ α_m)

i.e. y ← k_l ∗ (α_l x_l) + (1 − k_l ∗ α_l) y from l = 0 on. For the usual subject scene, a background
(α_0 = 1, PSF k_b) behind a subject α (PSF k_s), that is

    y = k_s ∗ (α x) + (1 − k_s ∗ α) · k_b ∗ ((1 − α) x + α h_b),  h_b ≈ k_b ∗ ((1 − α) x) / k_b ∗ (1 − α):

a pixel near an in-focus subject (k_s = δ) sees the background blurred as if the subject were not there (its
cone of rays passes beside the subject, so nothing of the subject reaches it), and the subject itself stays
sharp where α = 1; a blurred subject in front spreads over the background as a semi-transparent rim. For fixed
masks y is linear in x; with one layer (α_0 = 1) it is k_0 ∗ x exactly; a flat image stays flat. With binary
masks and every k_l = δ it returns x; at a soft edge (0 < α < 1) the pixel's mixed colour counts for both
layers (x_l there mixes the two), so even then it differs from x within that edge (≤ 1 px for the benchmarks).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def as_batched_psf(psf: Tensor) -> Tensor:
    """Any accepted PSF layout as (B or 1, C or 1, K, K), broadcastable over images (B, C, H, W)."""
    if psf.ndim == 2:
        return psf[None, None]
    if psf.ndim == 3:
        return psf[:, None]
    if psf.ndim == 4:
        return psf
    raise ValueError(f"expected a PSF (K, K), (B, K, K) or (B, C, K, K), got shape {tuple(psf.shape)}")


def otf(psf: Tensor, shape: tuple[int, int], *, full: bool = False) -> Tensor:
    """Optical transfer function: FFT of the PSF zero-padded to ``shape`` with its centre at (0, 0).

    psf: (…, K, K) with odd sizes. Returns the ``rfft2`` half spectrum (…, H, W // 2 + 1), matching
    :func:`blur`; ``full=True`` returns the ``fft2`` (…, H, W).
    """
    kh, kw = psf.shape[-2:]
    h, w = shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"PSF sizes must be odd, got {tuple(psf.shape[-2:])}")
    if kh > h or kw > w:
        raise ValueError(f"PSF {kh}x{kw} larger than the image {h}x{w}")
    padded = F.pad(psf, (0, w - kw, 0, h - kh))
    # move the PSF centre to the origin so the filter introduces no shift
    padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.fft2(padded) if full else torch.fft.rfft2(padded)


def blur(x: Tensor, psf: Tensor, *, boundary: str = "reflect") -> Tensor:
    """Convolve images (B, C, H, W) with PSFs (layouts in the module docstring), via FFT.

    boundary: ``'reflect'`` pads by the PSF radius with mirrored content, filters and crops back (no
    wrap-around at borders; equals ``F.conv2d`` on a reflect-padded input); ``'circular'`` is the plain
    periodic FFT convolution.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    return Convolution(psf, tuple(x.shape[-2:]), boundary=boundary, like=x)(x)


class Convolution:
    """`blur` by one PSF of images of one size (H, W), its OTF on the padded frame computed once."""

    def __init__(self, psf: Tensor, size: tuple[int, int], *, boundary: str = "reflect", like: Tensor):
        psf = as_batched_psf(psf.to(device=like.device, dtype=like.dtype))
        self.ph, self.pw = psf.shape[-2] // 2, psf.shape[-1] // 2
        self.size = size
        if boundary == "reflect":
            self.mode = "reflect" if self.ph < size[0] and self.pw < size[1] else "replicate"
            shape = (size[0] + 2 * self.ph, size[1] + 2 * self.pw)
        elif boundary == "circular":
            self.mode, shape = None, size
        else:
            raise ValueError(f"boundary must be 'reflect' or 'circular', got {boundary!r}")
        self.shape = shape
        self.otf = otf(psf, shape)

    def __call__(self, x: Tensor) -> Tensor:
        pad = self.mode is not None and (self.ph or self.pw)
        xp = F.pad(x, (self.pw, self.pw, self.ph, self.ph), mode=self.mode) if pad else x
        y = torch.fft.irfft2(torch.fft.rfft2(xp) * self.otf, s=self.shape)
        if self.mode is not None:
            y = y[..., self.ph:self.ph + self.size[0], self.pw:self.pw + self.size[1]]
        return y


def layer_radii(radius_map: Tensor, levels: int | Sequence[float]) -> list[float]:
    """The radii of the blur layers of a radius map: `levels` of them spanning its range, or the radii given."""
    if isinstance(levels, int):
        lo, hi = radius_map.min().item(), radius_map.max().item()
        return torch.linspace(lo, hi, levels if hi > lo else 1, dtype=torch.float64).tolist()
    return sorted(set(float(r) for r in levels))


def layer_weights(radius_map: Tensor, radii: list[float]) -> Tensor:
    """Per-pixel weights (…, L, H, W) of L layers of radii `radii` for a radius map (…, 1, H, W): each pixel
    interpolates linearly between the two layers whose radii bracket its own (weights sum to 1)."""
    if len(radii) == 1:
        return torch.ones_like(radius_map)
    table = torch.tensor(radii, dtype=radius_map.dtype, device=radius_map.device)
    r = radius_map.clamp(radii[0], radii[-1]).contiguous()
    j = torch.searchsorted(table, r).clamp(1, len(radii) - 1)  # upper bracketing layer; the lower is j - 1
    t = (r - table[j - 1]) / (table[j] - table[j - 1])
    return torch.cat([torch.where(j == i, t, 0.0) + torch.where(j - 1 == i, 1 - t, 0.0) for i in range(len(radii))],
                     dim=-3)


def blur_depth_varying(x: Tensor, radius_map: Tensor, psf_of_radius: Callable[[float], Tensor], *,
                       levels: int | Sequence[float] = 8, boundary: str = "reflect") -> Tensor:
    """Spatially varying defocus from a per-pixel radius map (B, 1, H, W) or (H, W).

    psf_of_radius(r) gives the PSF ((K, K) or (C, K, K)) of radius r. The image is blurred with a few
    discrete radii (layers: `levels` of them spanning the map's range, or the radii given) and each output
    pixel interpolates linearly between the two layers whose radii bracket its own (`layer_weights`).
    Occlusion at depth edges is ignored (a blurred foreground does not spill over the background): the usual
    layered-blur simplification.
    """
    if radius_map.ndim == 2:
        radius_map = radius_map[None, None]
    radius_map = radius_map.to(device=x.device, dtype=x.dtype)
    radii = layer_radii(radius_map, levels)
    weights = layer_weights(radius_map, radii)
    out = torch.zeros_like(x)
    for i, radius in enumerate(radii):
        psf = psf_of_radius(radius).to(device=x.device, dtype=x.dtype)
        out = out + weights[:, i:i + 1] * blur(x, psf[None] if psf.ndim == 3 else psf, boundary=boundary)
    return out


def as_layer_alphas(alphas: Tensor | Sequence[Tensor], x: Tensor) -> Tensor:
    """Layer coverages as (B or 1, L, H, W) on x's device and dtype: a tensor (L, H, W) or (B, L, H, W), or a
    sequence of L masks (H, W) or (B, 1, H, W)."""
    if not isinstance(alphas, Tensor):
        alphas = torch.cat([a[None, None] if a.ndim == 2 else a for a in alphas], dim=1)
    if alphas.ndim == 3:
        alphas = alphas[None]
    if alphas.ndim != 4 or alphas.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"layer coverages must be (L, H, W) or (B, L, H, W) of the image's {tuple(x.shape[-2:])}, "
                         f"got shape {tuple(alphas.shape)}")
    return alphas.to(device=x.device, dtype=x.dtype)


FILL_TAU = 1e-3  # τ of a hidden layer's fill: where its PSF reaches no visible pixel, the pull-push fill decides


def pull_push(num: Tensor, den: Tensor, tau: float = 1 / 16) -> Tensor:
    """A fill of num / den everywhere (den ≥ 0, a confidence): both averaged down by halves to one pixel, then
    back up, each level c = (num + τ up(c_coarser)) / (den + τ). Linear in num; 0 where den is 0 everywhere."""
    levels = [(num, den)]
    while max(levels[-1][0].shape[-2:]) > 1:
        h, w = levels[-1][0].shape[-2:]
        size = ((h + 1) // 2, (w + 1) // 2)
        levels.append((F.adaptive_avg_pool2d(levels[-1][0], size), F.adaptive_avg_pool2d(levels[-1][1], size)))
    n, d = levels[-1]
    fill = n / d.clamp_min(torch.finfo(d.dtype).tiny) * (d > 0)
    for n, d in reversed(levels[:-1]):
        up = F.interpolate(fill, size=n.shape[-2:], mode="bilinear", align_corners=False)
        fill = (n + tau * up) / (d + tau)
    return fill


def transmission(alphas: Tensor) -> Tensor:
    """T_l = Π_{m>l} (1 − α_m) for coverages (…, L, H, W) from far to near: how much of layer l the nearer ones
    leave in sight (1 for the nearest)."""
    behind = torch.flip(torch.cumprod(torch.flip(1 - alphas[..., 1:, :, :], [-3]), dim=-3), [-3])
    return torch.cat([behind, torch.ones_like(alphas[..., :1, :, :])], dim=-3)


@dataclass(frozen=True)
class Layers:
    """A layered scene for `blur_layered`: coverages from far to near, (L, H, W) or (B, L, H, W), and each layer's
    defocus radius (px; the PSFs come from a lens, `hidd.camera.Camera.linear_blur`)."""

    alphas: Tensor
    radii: tuple[float, ...]

    def __post_init__(self):
        if self.alphas.ndim not in (3, 4) or self.alphas.shape[-3] != len(self.radii):
            raise ValueError(f"Layers: {len(self.radii)} radii for coverages of shape {tuple(self.alphas.shape)}")

    @classmethod
    def subject(cls, alpha: Tensor, background: float, subject: float = 0.0) -> "Layers":
        """A subject of coverage alpha ((H, W) or (B, 1, H, W)) at radius `subject` before a whole-frame background
        at radius `background`."""
        alpha = alpha[None] if alpha.ndim == 2 else alpha
        return cls(torch.cat([torch.ones_like(alpha), alpha], dim=-3), (float(background), float(subject)))

    def visible(self) -> Tensor:
        """Each layer's visible share v_l = α_l T_l of every pixel, shaped like `alphas`."""
        return self.alphas * transmission(self.alphas)

    def radius_map(self) -> Tensor:
        """The radius a pinhole sees at each pixel, Σ_l v_l r_l ((H, W) or (B, 1, H, W), as `alphas` is batched):
        the subject's radius on the subject, the background's elsewhere, mixed along a soft edge."""
        radii = torch.tensor(self.radii, dtype=self.alphas.dtype, device=self.alphas.device)[:, None, None]
        return (self.visible() * radii).sum(dim=-3, keepdim=self.alphas.ndim == 4)


def blur_layered(x: Tensor, alphas: Tensor | Sequence[Tensor], psfs: Sequence[Tensor], *,
                 boundary: str = "reflect") -> Tensor:
    """Defocus of a layered scene with occlusion (the module docstring): layers from far to near, coverages
    `alphas` ((L, H, W), (B, L, H, W) or L masks; usually the farthest all ones) and one PSF per layer (any
    layout of the module docstring). Linear in x for fixed coverages; with one layer of coverage 1, blur(x, k)."""
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    return LayeredOptics(as_layer_alphas(alphas, x), psfs, boundary=boundary, like=x)(x)


class LayeredOptics:
    """`blur_layered` for fixed coverages (B or 1, L, H, W) and PSFs, as a map of images x (B, C, H, W): what does
    not depend on x (the PSFs' OTFs, k_l ∗ α_l, the fills' denominators k_l ∗ v_l + τ) computed once, on the device
    and in the dtype of `like`."""

    def __init__(self, alphas: Tensor, psfs: Sequence[Tensor], *, boundary: str = "reflect", like: Tensor):
        if alphas.shape[1] != len(psfs):
            raise ValueError(f"{alphas.shape[1]} layer coverages but {len(psfs)} PSFs")
        alphas = alphas.to(device=like.device, dtype=like.dtype)
        seen = transmission(alphas)
        size = tuple(alphas.shape[-2:])
        self.layers = []  # per layer: its convolution, coverage, 1 − k ∗ α, and (v, T, k ∗ v + τ) where it is hidden
        for level, psf in enumerate(psfs):
            convolve = Convolution(psf, size, boundary=boundary, like=like)
            alpha = alphas[:, level:level + 1]
            fill = None
            if level < len(psfs) - 1:  # something in front: the hidden part continues the layer's visible colours
                visible = alpha * seen[:, level:level + 1]
                fill = visible, seen[:, level:level + 1], convolve(visible) + FILL_TAU
            self.layers.append((convolve, alpha, 1 - convolve(alpha), fill))

    def __call__(self, x: Tensor) -> Tensor:
        y = torch.zeros_like(x)
        for convolve, alpha, uncovered, fill in self.layers:
            layer = x
            if fill is not None:  # x_l = T x + (1 − T) h, h the normalised convolution backed by the pull-push fill
                visible, seen, denominator = fill
                num = visible * x
                hidden = (convolve(num) + FILL_TAU * pull_push(num, visible)) / denominator
                layer = seen * x + (1 - seen) * hidden
            y = convolve(alpha * layer) + uncovered * y
        return y


def disparity_to_radius(disparity, focus_disparity: float, max_radius: float):
    """Defocus radius map |d − d_focus|, scaled so that its maximum equals ``max_radius``.

    The thin-lens blur radius is proportional to |1/z − 1/z_focus|, i.e. to the disparity difference.
    Works on numpy arrays and torch tensors alike.
    """
    diff = abs(disparity - focus_disparity)
    peak = diff.max()
    return diff * 0 if peak == 0 else diff * (max_radius / peak)
