"""Defocus measurement operators y = A x + n for blur-aware data consistency, in the camera's light.

A camera blurs linear radiance before its tone curve Γ (hidd.camera), so for images x, y of encoded values
the operator is A x = Γ(k ∗ Γ⁻¹(x)): the data steps take Γ⁻¹ of the estimate and of y, solve in linear light
and map the result back with Γ (the curve 'none' gives the classic A x = k ∗ x). Radiance is never
negative, so the linear-light solution is clipped at 0 before Γ: a deconvolution undershoots next to
bright edges, and near black the curve's steep toe (slope 12.92 for sRGB) would turn a small negative
radiance into a large dark halo (on the linear-disk benchmark the clip is worth +2 dB).

An operator holds each image's blur (a PSF, a per-pixel radius map, or layers) and its noise-level function
(hidd.camera.noise: noise std against encoded intensity), with `noise_sigma` its RMS over the image. It is not
changed once built: what a sampling measures (hidd.sampling.calibration) is returned, and an operator with a
blind PSF's softening rescaled is a new one (`with_softening`). The images of a batch are independent: `select`
gives the operator of some of them alone, and each image's proximal step borders its frame by its own PSF's
half-width, so an image's solution does not depend on the images batched with it.

The proximal steps work in the Fourier domain on frames padded to 5-smooth sizes (`fast_frame`: 2, 3 and 5 are
FFTs' fastest factors; a frame of 1706 = 2·853 px would take a slow prime-size transform). Each operator keeps
its OTFs per frame size (`_cache`, for every level of a sampling), and a step builds |K|² + ρ once.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len

from hidd.camera.noise import NoiseLevelFunction
from hidd.camera.optics import (Layers, LayeredOptics, blur, blur_depth_varying, layer_radii, layer_weights, otf,
                                transmission)
from hidd.camera.psf import LensPSF, stack_psfs

BOUNDARIES = ("free", "reflect")  # sampler.boundary: the scene beyond the frame unknown, or mirrored
FREE_BOUNDARY_ITERATIONS = 15  # most fill-in rounds of the 'free' border (3 left visible ringing on 64–128 px crops)
FREE_BOUNDARY_TOLERANCE = 1e-4  # an image's fill-in stops once a round changes its solution by less (relative)
# rounds between checks whether every image stopped, by device type: a check reads a flag on the host, which on a
# GPU waits for it; elsewhere none (all rounds run, an image that stopped unchanged: the same results, no waits)
FREE_BOUNDARY_CHECKS = {"cpu": 1}
LAYER_SPACING = 1.0  # px between a depth-varying map's layers: a pixel, the finest radius a map resolves
CG_ITERATIONS = 40  # at most, per proximal step of a depth-varying blur
CG_TOLERANCE = 1e-4  # relative residual ‖r‖/‖b‖ at which conjugate gradients stop


def fast_frame(height: int, width: int, pad: int = 0) -> tuple[int, int]:
    """The smallest frame of 5-smooth sides (scipy.fft.next_fast_len for real transforms) that holds an image of
    height × width with `pad` px on every side."""
    return next_fast_len(height + 2 * pad, real=True), next_fast_len(width + 2 * pad, real=True)


def pad_to_frame(x: torch.Tensor, pad: int, frame: tuple[int, int], mode: str = "constant") -> torch.Tensor:
    """Images (…, H, W) padded onto `frame`: `pad` px before them in both axes, the rest of the frame after; mode
    as F.pad's ('reflect' falls back to 'replicate' where a side is too short to mirror)."""
    h, w = x.shape[-2:]
    pads = (pad, frame[1] - w - pad, pad, frame[0] - h - pad)
    if mode == "reflect" and max(pads) >= min(h, w):
        mode = "replicate"
    return F.pad(x, pads, mode=mode)


@dataclass(frozen=True)
class FreeFrame:
    """The 'free' border's frame of an image of h × w blurred by PSFs of half-width p: the image p px in from the
    frame's top-left corner, the frame's sides 5-smooth (fast_frame). u is solved on all of it, the data seen only
    inside; the start (the anchor of the pixels no data sees) is u0 reflect-padded."""
    h: int
    w: int
    p: int

    @classmethod
    def around(cls, image: torch.Tensor, psfs) -> "FreeFrame":
        """The frame of images (…, H, W) for PSFs (…, K, K) of any sizes: p the widest half-width."""
        return cls(*image.shape[-2:], max(k.shape[-1] for k in psfs) // 2)

    @property
    def shape(self) -> tuple[int, int]:
        return fast_frame(self.h, self.w, self.p)

    def embed(self, x: torch.Tensor, mode: str = "constant") -> torch.Tensor:
        """Images (…, h, w) placed in the frame, padded as pad_to_frame's `mode`."""
        return pad_to_frame(x, self.p, self.shape, mode)

    def start(self, u0: torch.Tensor) -> torch.Tensor:
        return self.embed(u0, "reflect")

    def crop(self, u: torch.Tensor) -> torch.Tensor:
        """The image (…, h, w) inside frames (…, H', W')."""
        return u[..., self.p:self.p + self.h, self.p:self.p + self.w]


def lens_psfs(lenses: list[LensPSF], dtype=torch.float32, device=None) -> tuple[torch.Tensor, list[int]]:
    """The grey PSF of each lens (channel scale 1) centre-padded to one size and stacked (B, 1, K, K), and
    each lens's own half-width (its kernel's K_i // 2 before the padding)."""
    kernels = [lens.kernels(1, dtype, device) for lens in lenses]
    return stack_psfs(kernels), [kernel.shape[-1] // 2 for kernel in kernels]


def _select(value, index: list[int], count: int):
    """Entries `index` of an operator's attribute where it holds one per image (of `count`), else the value itself."""
    if isinstance(value, NoiseLevelFunction):
        parts = (value.shot, value.read, value.floor)
        return NoiseLevelFunction(value.tone, *(_select(v, index, count) for v in parts))
    if isinstance(value, torch.Tensor) and value.ndim and len(value) == count:
        return value[torch.as_tensor(index, dtype=torch.long, device=value.device)]
    if isinstance(value, list) and len(value) == count:
        return [value[i] for i in index]
    return value


def reflect_periodic(x: torch.Tensor) -> torch.Tensor:
    """(…, H, W) → (…, 2H−2, 2W−2): x followed by its mirror image without the edge rows, in both axes.

    The result is periodic and continuous, and its circular convolution with a symmetric PSF, cropped to H×W,
    equals hidd.camera.optics.blur's reflect-boundary convolution: FFT solves on it are exact for that forward
    model and have no wrap-around discontinuity to ring at.
    """
    x = torch.cat([x, x.flip(-2)[..., 1:-1, :]], dim=-2)
    return torch.cat([x, x.flip(-1)[..., 1:-1]], dim=-1)


def check_boundary(boundary: str) -> str:
    """sampler.boundary, refused in one line unless one of BOUNDARIES."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"sampler.boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
    return boundary


class BlurOperator:
    """A defocus measurement model of a batch in a camera's light; subclasses define the blur."""

    def __init__(self, noise: NoiseLevelFunction, radius: torch.Tensor, noise_sigma: torch.Tensor,
                 at_bound: torch.Tensor | None = None, max_share: torch.Tensor | None = None):
        self.noise = noise  # noise std of each image against encoded intensity (hidd.camera.noise)
        self.tone = noise.tone  # the camera's tone curve: blur acts on tone.decode(x)
        self.radius = radius  # (B,) PSF radius per image (the mean radius for spatially varying blur), for reports
        self.noise_sigma = noise_sigma  # (B,) RMS noise std of each image on the encoded scale
        # (B,) whether a blind radius sits at the top of its search range (the blur may be larger)
        self.at_bound = torch.zeros(radius.shape, dtype=torch.bool) if at_bound is None else at_bound
        # (B,) the share of each image's deblurring that may be kept: < 1 where its blur is half-trusted (a blind
        # reading from its edges alone, hidd.blind.defocus)
        self.max_share = torch.ones(radius.shape, dtype=torch.float64) if max_share is None else max_share
        self._cache = {}  # what the proximal step reuses at every level (OTFs per frame): a copy starts a new one

    def linear(self, u: torch.Tensor) -> torch.Tensor:
        """The blur k ∗ u of linear-light images (B, C, H, W)."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A x = Γ(k ∗ Γ⁻¹(x)) for encoded images (B, C, H, W)."""
        return self.tone.encode(self.linear(self.tone.decode(x)))

    def prox(self, x0: torch.Tensor, y: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        """argmin_x ‖A x − y‖² + ρ ‖x − x0‖² with ρ (B,) per image; only where a closed form exists."""
        raise ValueError(f"{type(self).__name__} has no closed-form proximal step; use sampler.consistency gradient")

    @property
    def lenses(self) -> list[LensPSF] | None:
        """Each image's lens PSF where its blur is one lens (given or estimated); None: it is not (a radius map)."""
        return None

    @property
    def radius_field(self) -> torch.Tensor | None:
        """Each image's blur radius per pixel (B, 1, H, W) where it varies across the image; None: one blur each."""
        return None

    def with_softening(self, factor: torch.Tensor) -> "BlurOperator":
        """This operator with the softening of each image's blindly estimated PSF multiplied by factor (B,): a new
        one where a PSF changes, else this one. Operators without estimated PSFs (given, or a radius map) keep
        theirs."""
        return self

    def select(self, index: list[int]) -> "BlurOperator":
        """The operator of images `index` (positions in this batch) alone: every attribute that holds one entry per
        image (a tensor or list as long as the batch, the noise-level function) is taken at `index`; the rest (tone
        curve, border model, a lens shared by all) is shared."""
        part = copy.copy(self)
        for name, value in vars(self).items():
            setattr(part, name, _select(value, index, len(self.radius)))
        part._cache = {}
        return part

    def data_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇ ½‖A x − y‖² = Aᵀ(A x − y), the adjoint taken by autograd (exact: boundaries and tone curve included)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            residual = self(x) - y
            (grad,) = torch.autograd.grad(0.5 * residual.square().sum(), x)
        return grad


class UniformBlur(BlurOperator):
    """One PSF per image (or per image and channel), the same all over it; reflect boundaries for the forward blur.

    The proximal step is the closed form in linear light, u = Γ⁻¹(x), v = Γ⁻¹(y):
        U = (conj(K) V + ρ U0) / (|K|² + ρ),   x = Γ(max(u, 0)),
    with one ρ per image (see hidd.sampling.blur_consistency for its value). The image border (`boundary`):
    - 'free': the scene beyond the frame is unknown, as in any real photo: u is solved on the frame padded by
      its PSF's own half-width (`half_widths`: images of one width are solved together, so an image's solution
      does not depend on the PSFs batched with it), where v is the valid part of a circular blur (exact: no
      pixel of v wraps around),
      and the unobserved ring of the blurred image is filled in from the current solution, round by round
      (an EM for the missing border data; cf. Reeves 2005, "Fast image restoration without boundary
      artifacts"), until a round changes the solution by less than FREE_BOUNDARY_TOLERANCE, at most
      FREE_BOUNDARY_ITERATIONS rounds (`_prox_free_at`). The estimate, reflect-padded, anchors the ring. The
      frame is padded on to 5-smooth sides (`fast_frame`); pixels beyond the ring see no data either.
    - 'reflect': v is assumed to be the reflect-boundary blur of u (how synthetic benchmarks make it): one
      exact solve on the reflect-periodic extension (see `reflect_periodic`). On crops of real scenes the
      mismatch at the borders rings into the image.
    """

    def __init__(self, psf: torch.Tensor, noise: NoiseLevelFunction, radius: torch.Tensor, noise_sigma: torch.Tensor,
                 *, boundary: str = "free", at_bound: torch.Tensor | None = None,
                 estimated: list[LensPSF] | None = None, fitted: list[bool] | None = None,
                 max_share: torch.Tensor | None = None, given: list[LensPSF] | None = None,
                 half_widths: list[int] | None = None):
        super().__init__(noise, radius, noise_sigma, at_bound, max_share)
        if psf.ndim == 3:
            psf = psf[:, None]
        self.psf = psf  # (B, C or 1, K, K) PSFs summing to one, odd K
        # each image's own PSF half-width (≤ K // 2: the stack pads smaller PSFs with zeros); None: K // 2 for all
        self.half_widths = half_widths or [psf.shape[-1] // 2] * psf.shape[0]
        self.boundary = check_boundary(boundary)  # how the proximal step treats the image border (class docstring)
        self.estimated = estimated  # the blindly estimated lens of each image, its PSF drawn from it (None: given)
        self.given = given  # the lens of each image where the config gives it (None: estimated, or only a PSF given)
        # per image, whether that lens's softening was fitted to the photo (with_softening scales only those);
        # a softening set by a model (hidd.blind.defocus's spread of radii) is kept
        self.fitted = fitted if fitted is not None else [True] * len(estimated or [])

    @property
    def lenses(self):
        return self.estimated if self.estimated is not None else self.given

    def with_softening(self, factor):
        if self.estimated is None:
            return self
        lenses = [replace(lens, softening=lens.softening * f) if fitted else lens
                  for lens, f, fitted in zip(self.estimated, factor.tolist(), self.fitted)]
        if lenses == self.estimated:
            return self
        softened = copy.copy(self)
        softened.psf, softened.half_widths = lens_psfs(lenses, self.psf.dtype, self.psf.device)
        softened.estimated = lenses
        softened._cache = {}
        return softened

    def linear(self, u):
        return self._by_half_width(lambda p, psf, part: blur(part, psf), u)

    def _groups(self, like: torch.Tensor) -> list[tuple[int, torch.Tensor | None, torch.Tensor]]:
        """The images whose PSFs share a half-width p, once per device and dtype: (p, their batch positions on the
        device of `like` or None for all, their PSFs cut to 2p + 1 in its dtype)."""
        key = ("groups", like.device, like.dtype)
        if key not in self._cache:
            psf = self.psf.to(device=like.device, dtype=like.dtype)
            k = psf.shape[-1] // 2
            if all(p == k for p in self.half_widths):
                self._cache[key] = [(k, None, psf)]
            else:
                self._cache[key] = []
                for p in sorted(set(self.half_widths)):
                    index = torch.tensor([i for i, q in enumerate(self.half_widths) if q == p], device=like.device)
                    self._cache[key].append((p, index, psf[index][..., k - p:k + p + 1, k - p:k + p + 1]))
        return self._cache[key]

    def _by_half_width(self, solve, *images: torch.Tensor) -> torch.Tensor:
        """solve(p, psf, *images) on each group of images whose PSFs share a half-width p, the PSFs cut to it, in
        batch order again: images (B, …) each (the B images of this operator, or a tensor per image such as ρ)."""
        groups = self._groups(images[0])
        if len(groups) == 1:
            p, _, psf = groups[0]
            return solve(p, psf, *images)
        parts = [solve(p, psf, *(x[index] for x in images)) for p, index, psf in groups]
        order = torch.cat([index for _, index, _ in groups])
        return torch.cat(parts)[torch.argsort(order)]

    def _otf(self, p: int, psf: torch.Tensor, frame: tuple[int, int]) -> torch.Tensor:
        """The OTF (B', C|1, H, W/2+1) of the half-width-p group's PSFs psf on a frame, computed once."""
        key = ("otf", p, frame, psf.device, psf.dtype)
        if key not in self._cache:
            self._cache[key] = otf(psf, frame)
        return self._cache[key]

    def prox(self, x0, y, rho):
        """The closed form of the class docstring, on Γ⁻¹ of the estimate and of y, mapped back by Γ."""
        rho = rho.to(x0.dtype).reshape(-1, 1, 1, 1)
        return self.tone.encode(self.solve_linear(self.tone.decode(x0), self.tone.decode(y), rho).clamp_min(0))

    def solve_linear(self, u0: torch.Tensor, v: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        """argmin_u ‖k ∗ u − v‖² + ρ ‖u − u0‖² in linear light, ρ (B, 1, 1, 1), with the border model `boundary`."""
        solve = self._prox_free_at if self.boundary == "free" else self._prox_reflect_at
        return self._by_half_width(solve, u0, v, rho)

    def _solve(self, p, psf, v, u0, rho):
        """The periodic Fourier-domain solve on frames v, u0 of the same size, the group's PSFs psf."""
        shape = tuple(v.shape[-2:])
        k = self._otf(p, psf, shape)  # B, C|1, H, W/2+1
        spectrum = (k.conj() * torch.fft.rfft2(v) + rho * torch.fft.rfft2(u0)) / (k.abs() ** 2 + rho)
        return torch.fft.irfft2(spectrum, s=shape)

    def _prox_reflect_at(self, p, psf, u0, v, rho):
        h, w = u0.shape[-2:]
        return self._solve(p, psf, reflect_periodic(v), reflect_periodic(u0), rho)[..., :h, :w]

    def _prox_free_at(self, p, psf, u0, v, rho):
        """The 'free' border's solve of images whose PSFs psf (B, C|1, 2p + 1, 2p + 1) have half-width p: u on the
        frame padded by p (and on to 5-smooth sides), the data v inside, the rest of k ∗ u filled in each round.

        A round is U ← (conj(K) F[m v + (1 − m) (k ∗ u)] + ρ U0) / (|K|² + ρ), m the frame's mask, in the Fourier
        domain (two FFTs a round); each image stops once a round changes its spectrum by less than
        FREE_BOUNDARY_TOLERANCE of its norm, or after FREE_BOUNDARY_ITERATIONS rounds."""
        if p == 0:
            return self._solve(p, psf, v, u0, rho)
        h, w = u0.shape[-2:]
        framed = FreeFrame(h, w, p)
        frame = framed.shape
        k = self._otf(p, psf, frame)
        denominator = k.abs() ** 2 + rho
        u0_spectrum = torch.fft.rfft2(framed.start(u0))
        data = k.conj() * torch.fft.rfft2(framed.embed(v)) + rho * u0_spectrum
        unobserved = 1 - framed.embed(torch.ones((1, 1, h, w), dtype=u0.dtype, device=u0.device))
        spectrum, done = u0_spectrum, torch.zeros(u0.shape[0], 1, 1, 1, dtype=torch.bool, device=u0.device)
        check = FREE_BOUNDARY_CHECKS.get(u0.device.type, 0)
        for i in range(FREE_BOUNDARY_ITERATIONS):
            ring = unobserved * torch.fft.irfft2(k * spectrum, s=frame)  # k ∗ u where no data is
            new = (data + k.conj() * torch.fft.rfft2(ring)) / denominator
            change = (new - spectrum).abs().square().sum(dim=(1, 2, 3), keepdim=True)
            converged = change <= FREE_BOUNDARY_TOLERANCE**2 * new.abs().square().sum(dim=(1, 2, 3), keepdim=True)
            spectrum = torch.where(done, spectrum, new)
            done = done | converged
            if check and (i + 1) % check == 0 and bool(done.all()):
                break
        return framed.crop(torch.fft.irfft2(spectrum, s=frame))


class ImageByImageBlur(BlurOperator):
    """A blur whose proximal step is solved image by image (each has its own map or layers): `solve_linear`; each
    image's PSF shape is `lenses_shape[image]`, scaled to any radius."""

    lenses_shape: list[LensPSF]

    def psf_of_radius(self, radius: float, channels: int, image: int = 0) -> torch.Tensor:
        """Image `image`'s PSF (C|1, K, K) at `radius`."""
        return self.lenses_shape[image].with_radius(radius).kernels(channels)

    def _one_layer(self, image: int, psf: torch.Tensor, u0: torch.Tensor, v: torch.Tensor, rho) -> torch.Tensor:
        """solve_linear for image `image` blurred by one PSF (1, C|1, K, K) over the whole frame: UniformBlur's
        closed form (its border)."""
        layer = UniformBlur(psf, self.noise, self.radius[image:image + 1], self.noise_sigma[image:image + 1],
                            boundary=self.boundary)
        return layer.solve_linear(u0, v, torch.as_tensor(rho, dtype=u0.dtype, device=u0.device).reshape(1, 1, 1, 1))

    def prox(self, x0, y, rho):
        rho = rho.to(x0.dtype).reshape(-1)
        u0, v = self.tone.decode(x0), self.tone.decode(y)
        u = torch.empty_like(u0)
        for image in range(u0.shape[0]):
            u[image:image + 1] = self.solve_linear(image, u0[image:image + 1], v[image:image + 1], rho[image])
        return self.tone.encode(u.clamp_min(0))

    def solve_linear(self, image: int, u0: torch.Tensor, v: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """argmin_u ‖A u − v‖² + ρ ‖u − u0‖² in linear light for image `image` of the batch (u0, v: (1, C, H, W));
        ρ a number or a 0-dimensional tensor."""
        raise NotImplementedError


class DepthVaryingBlur(ImageByImageBlur):
    """Spatially varying defocus from a per-pixel radius map: hidd.camera.optics.blur_depth_varying's layered blur,
    at radius r the PSF `lens` scaled to r (a disk by default), the map cut into layers of radii r_l:

        A u = Σ_l W_l ⊙ (k_l ∗ u),

    W_l the per-pixel weights interpolating between the two layers whose radii bracket the pixel's (they sum to
    one). Its proximal step in linear light, argmin_u ‖A u − v‖² + ρ ‖u − u0‖², solves the normal equations

        (AᵀA + ρ I) u = Aᵀ v + ρ u0,   Aᵀ r = Σ_l k_lᵀ ∗ (W_l ⊙ r),

    by preconditioned conjugate gradients (an FFT per layer and iteration), to a relative residual of CG_TOLERANCE
    or CG_ITERATIONS steps: exact, up to that tolerance, for the layered model, at depth edges too. The
    preconditioner is (Σ_l w̄_l |K_l|² + ρ)⁻¹ in the Fourier domain, w̄_l the layers' mean weights: the normal
    operator's circulant approximation where the weights vary slowly. A map with one radius is UniformBlur,
    whose closed form this then calls. Borders as UniformBlur's: 'free' solves for u on the frame
    padded by the widest PSF's half-width (data only inside the frame, the ring anchored to u0 reflect-padded),
    'reflect' for u on the frame with mirrored borders (the adjoint taken by autograd).
    """

    def __init__(self, radius_map: torch.Tensor, noise: NoiseLevelFunction, noise_sigma: torch.Tensor, *,
                 lens: LensPSF | list[LensPSF] | None = None, levels: int | None = None, boundary: str = "free"):
        super().__init__(noise, radius_map.flatten(1).mean(dim=1), noise_sigma)
        lens = lens or LensPSF(1.0)
        self.radius_map = radius_map  # (B, 1, H, W) radius in pixels at each pixel
        # each image's PSF shape (one lens for all, or one per image); its radius is replaced by the map's
        self.lenses_shape = lens if isinstance(lens, list) else [lens] * radius_map.shape[0]
        self.levels = levels  # layers spanning each map's range; None: one per LAYER_SPACING px
        self.boundary = check_boundary(boundary)  # the border model of the proximal step (see the class docstring)

    @property
    def radius_field(self):
        return self.radius_map

    def _layers(self, image: int, like: torch.Tensor) -> tuple[list[float], torch.Tensor]:
        """The layer radii of image `image`'s map and their weights (1, L, H, W), once per device and dtype."""
        key = ("layers", image, like.device, like.dtype)
        if key not in self._cache:
            radius_map = self.radius_map[image:image + 1].to(like)
            levels = self.levels
            if levels is None:
                span = float(radius_map.max() - radius_map.min())
                levels = max(1, math.ceil(span / LAYER_SPACING) + 1)
            radii = layer_radii(radius_map, levels)
            self._cache[key] = radii, layer_weights(radius_map, radii)
        return self._cache[key]

    def linear(self, u):
        out = torch.empty_like(u)
        for image in range(u.shape[0]):
            radii, _ = self._layers(image, u)
            out[image:image + 1] = blur_depth_varying(u[image:image + 1], self.radius_map[image:image + 1],
                                                      lambda r: self.psf_of_radius(r, u.shape[1], image), levels=radii)
        return out

    def solve_linear(self, image: int, u0: torch.Tensor, v: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """argmin_u ‖A u − v‖² + ρ ‖u − u0‖² in linear light for image `image` of the batch (u0, v: (1, C, H, W));
        ρ a number or a 0-dimensional tensor."""
        radii, weights = self._layers(image, u0)
        channels = u0.shape[1]
        psfs = [self.psf_of_radius(r, channels, image).to(u0) for r in radii]
        if len(radii) == 1:
            return self._one_layer(image, psfs[0][None], u0, v, rho)
        if self.boundary == "free":
            return _layered_cg_free(u0, v, rho, psfs, weights)
        return _layered_cg_reflect(u0, v, rho, psfs, weights)


class LayeredBlur(ImageByImageBlur):
    """Defocus of layered scenes with occlusion, as the camera renders them (hidd.camera.optics.blur_layered, whose
    docstring has the maths): each image's layers from far to near, with coverages α_l and radii r_l, the PSF at
    radius r the image's `lens` scaled to r,

        A u = Σ_l (k_l ∗ (α_l u_l)) Π_{m>l} (1 − k_m ∗ α_m),   u_l = T_l u + (1 − T_l) h_l(u),

    linear in u for fixed coverages (the fill h_l behind nearer layers is a normalised convolution of u). The gather
    model (DepthVaryingBlur) spreads an in-focus subject's colour over the blurred background beside it; this one
    hides the background behind the subject and lets a defocused subject spill over what lies behind it.

    Its proximal step in linear light solves the normal equations (AᵀA + ρ I) u = Aᵀ v + ρ u0 by preconditioned
    conjugate gradients, Aᵀ taken by autograd, to a relative residual of CG_TOLERANCE or CG_ITERATIONS steps:
    exact, up to that tolerance, on data the camera made with these layers. The preconditioner is
    (Σ_l v̄_l |K_l|² + ρ)⁻¹ in the Fourier domain, v̄_l layer l's mean visible share α_l T_l. One layer of coverage
    one is UniformBlur, whose closed form this then calls. Borders as DepthVaryingBlur's: 'free' solves for u on the
    frame padded by the widest PSF's half-width and on to 5-smooth sides (the coverages continued by replication;
    data only inside the frame, the padding anchored to u0 reflect-padded; the fill behind a nearer layer reaches the
    whole frame, so unlike the gather model's the solution moves, slightly, with the frame's size), 'reflect' for u
    on the frame. The layers are given (a benchmark's truth, or a depth map's); no estimator reads them from a photo.
    """

    def __init__(self, layers: list[Layers], noise: NoiseLevelFunction, noise_sigma: torch.Tensor, *,
                 lens: LensPSF | list[LensPSF] | None = None, boundary: str = "free"):
        for scene in layers:
            if scene.alphas.ndim != 3:
                raise ValueError(f"LayeredBlur: each image's coverages must be (L, H, W), got shape "
                                 f"{tuple(scene.alphas.shape)}")
        fields = torch.stack([scene.radius_map()[None] for scene in layers])
        super().__init__(noise, fields.flatten(1).mean(dim=1), noise_sigma)
        self.layers = layers  # each image's layers, far to near
        self.field = fields  # (B, 1, H, W) the radius a pinhole sees at each pixel
        lens = lens or LensPSF(1.0)
        self.lenses_shape = lens if isinstance(lens, list) else [lens] * len(layers)  # each image's PSF shape
        # per image, whether it is one layer covering the frame (the closed form)
        self.whole = [len(scene.radii) == 1 and bool((scene.alphas == 1).all()) for scene in layers]
        self.boundary = check_boundary(boundary)

    @property
    def radius_field(self):
        return self.field

    def _psfs(self, image: int, like: torch.Tensor) -> list[torch.Tensor]:
        """Image `image`'s PSF (1, C|1, K, K) of each layer, on the device and in the dtype of `like`, once per them."""
        key = ("psfs", image, like.device, like.dtype, like.shape[1])
        if key not in self._cache:
            self._cache[key] = [self.psf_of_radius(r, like.shape[1], image).to(like)[None]
                                for r in self.layers[image].radii]
        return self._cache[key]

    def _optics(self, image: int, like: torch.Tensor, frame: FreeFrame | None = None):
        """Image `image`'s layered blur (hidd.camera.optics.LayeredOptics) on the image, or with its coverages placed
        in the 'free' border's `frame` (replicated), once per device, dtype and frame."""
        key = ("optics", image, like.device, like.dtype, like.shape[1], frame)
        if key not in self._cache:
            alphas = self.layers[image].alphas.to(like)[None]
            if frame is not None:
                alphas = frame.embed(alphas, "replicate")
            self._cache[key] = LayeredOptics(alphas, self._psfs(image, like), like=like)
        return self._cache[key]

    def linear(self, u):
        return torch.cat([self._optics(i, u)(u[i:i + 1]) for i in range(u.shape[0])])

    def solve_linear(self, image: int, u0: torch.Tensor, v: torch.Tensor, rho: float | torch.Tensor) -> torch.Tensor:
        """argmin_u ‖A u − v‖² + ρ ‖u − u0‖² in linear light for image `image` of the batch (u0, v: (1, C, H, W));
        ρ a number or a 0-dimensional tensor."""
        if self.whole[image]:
            return self._one_layer(image, self._psfs(image, u0)[0], u0, v, rho)
        if self.boundary == "reflect":
            shape = tuple(u0.shape[-2:])
            return _autograd_cg(self._optics(image, u0), u0, v, rho, self._preconditioner(image, u0, shape, rho))
        frame = FreeFrame.around(u0, self._psfs(image, u0))
        optics = self._optics(image, u0, frame)
        solved = _autograd_cg(lambda u: frame.crop(optics(u)), frame.start(u0), v, rho,
                              self._preconditioner(image, u0, frame.shape, rho))
        return frame.crop(solved)

    def _preconditioner(self, image: int, like: torch.Tensor, shape: tuple[int, int], rho):
        """The class docstring's preconditioner of image `image` on a frame of `shape`: the layers' OTFs and mean
        visible shares once per device, dtype and frame."""
        key = ("spectra", image, like.device, like.dtype, like.shape[1], shape)
        if key not in self._cache:
            alphas = self.layers[image].alphas.to(like)[None]
            visible = (alphas * transmission(alphas))[0][:, None]  # (L, 1, H, W)
            self._cache[key] = _padded_otfs([k[0] for k in self._psfs(image, like)], shape), visible
        otfs, visible = self._cache[key]
        return _preconditioner(otfs, visible, rho, shape)


def _padded_otfs(psfs: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
    """OTFs (L, C|1, H, W/2+1) of PSFs (C|1, K_l, K_l) of different sizes on a frame of `shape`."""
    size = max(p.shape[-1] for p in psfs)
    return torch.stack([otf(F.pad(p, [(size - p.shape[-1]) // 2] * 4), shape) for p in psfs])


def _preconditioner(otfs: torch.Tensor, weights: torch.Tensor, rho: float, shape: tuple[int, int]):
    """r ↦ F⁻¹[F r / (Σ_l w̄_l |K_l|² + ρ)]: the layers' OTFs (L, C|1, H, W/2+1) weighted by their mean weights (of
    weights (L, 1, H', W')) on a frame of `shape`."""
    mean_power = (weights.flatten(1).mean(dim=1).reshape(-1, 1, 1, 1) * otfs.abs() ** 2).sum(dim=0, keepdim=True)
    return lambda r: torch.fft.irfft2(torch.fft.rfft2(r) / (mean_power + rho), s=shape)


def _conjugate_gradients(normal, rhs: torch.Tensor, start: torch.Tensor, precondition) -> torch.Tensor:
    """Solve normal(u) = rhs (a symmetric positive definite map) by preconditioned CG from `start`."""
    u = start
    residual = rhs - normal(u)
    z = precondition(residual)
    direction = z
    rz = (residual * z).sum()
    scale = rhs.square().sum().sqrt().clamp_min(1e-30)
    for _ in range(CG_ITERATIONS):
        if residual.square().sum().sqrt() <= CG_TOLERANCE * scale:
            break
        applied = normal(direction)
        step = rz / (direction * applied).sum().clamp_min(1e-30)
        u = u + step * direction
        residual = residual - step * applied
        z = precondition(residual)
        rz, previous = (residual * z).sum(), rz
        direction = z + (rz / previous.clamp_min(1e-30)) * direction
    return u


def _layered_cg_free(u0, v, rho, psfs, weights):
    """DepthVaryingBlur's proximal step with the 'free' border: u on the frame padded by the widest half-width p (and
    on to 5-smooth sides: pixels further out see no data, so the solution inside is the same)."""
    frame = FreeFrame.around(u0, psfs)
    shape = frame.shape
    otfs = _padded_otfs(psfs, shape)  # L, C|1, H', W'/2+1
    weights = weights[0][:, None]  # L, 1, H, W

    def forward(u):  # (1, C, H', W') → (1, C, H, W): Σ_l W_l ⊙ crop(k_l ∗ u)
        layers = frame.crop(torch.fft.irfft2(otfs * torch.fft.rfft2(u), s=shape))
        return (weights * layers).sum(dim=0, keepdim=True)

    def adjoint(r):  # (1, C, H, W) → (1, C, H', W'): Σ_l k_lᵀ ∗ pad₀(W_l ⊙ r)
        spread = frame.embed(weights * r)
        return torch.fft.irfft2((otfs.conj() * torch.fft.rfft2(spread)).sum(dim=0, keepdim=True), s=shape)

    start = frame.start(u0)
    solved = _conjugate_gradients(lambda u: adjoint(forward(u)) + rho * u, adjoint(v) + rho * start, start,
                                  _preconditioner(otfs, weights, rho, shape))
    return frame.crop(solved)


def _layered_cg_reflect(u0, v, rho, psfs, weights):
    """DepthVaryingBlur's proximal step with the 'reflect' border (the camera's): u on the frame itself."""
    weights = weights[0][:, None]

    def forward(u):
        return sum(weights[i:i + 1, 0:1] * blur(u, k[None]) for i, k in enumerate(psfs))

    shape = tuple(u0.shape[-2:])
    return _autograd_cg(forward, u0, v, rho, _preconditioner(_padded_otfs(psfs, shape), weights, rho, shape))


def _autograd_cg(forward, start: torch.Tensor, v: torch.Tensor, rho, precondition) -> torch.Tensor:
    """argmin_u ‖forward(u) − v‖² + ρ ‖u − start‖² for a linear `forward` (its adjoint taken by autograd), by
    preconditioned conjugate gradients on the normal equations from `start`."""
    def normal(u):
        with torch.enable_grad():
            u = u.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(0.5 * forward(u).square().sum(), u)
        return grad + rho * u.detach()

    with torch.enable_grad():
        u = torch.zeros_like(start, requires_grad=True)
        (adjoint_v,) = torch.autograd.grad((forward(u) * v).sum(), u)
    return _conjugate_gradients(normal, adjoint_v + rho * start, start, precondition)
