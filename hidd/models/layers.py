"""Building blocks of the NCSN++ score network (Song et al., 2021).

Initialisation follows score_sde: every conv / dense weight is drawn from DDPM's
`variance_scaling(scale, 'fan_avg', 'uniform')`, biases start at zero, and the layers that close
a residual branch get `init_scale` (0 → near-zero) so that each block starts close to identity.

Resampling uses the FIR filter of StyleGAN2 (upfirdn2d), written with plain convolutions so that
nothing has to be compiled.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .norm import GroupNorm

_SKIP_SCALE = 1.0 / math.sqrt(2.0)  # keeps the variance of a residual sum at that of its inputs


def default_init_(weight: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """In-place DDPM init: uniform with variance `scale / mean(fan_in, fan_out)`.

    `weight` has PyTorch's layout (out, in, *kernel). A scale of 0 is replaced by 1e-10, as in
    score_sde, so "zero-initialised" layers still break symmetry.
    """
    scale = scale or 1e-10
    receptive_field = math.prod(weight.shape[2:])
    fan_avg = (weight.shape[0] + weight.shape[1]) * receptive_field / 2
    bound = math.sqrt(3.0 * scale / fan_avg)
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def conv3x3(in_ch: int, out_ch: int, init_scale: float = 1.0) -> nn.Conv2d:
    """3x3 'same' convolution with DDPM init."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
    default_init_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def conv1x1(in_ch: int, out_ch: int, init_scale: float = 1.0) -> nn.Conv2d:
    """1x1 convolution with DDPM init.

    Also serves as DDPM's NIN ("network in network") layer, which is the same per-pixel dense map;
    NINs are created with `init_scale=0.1`.
    """
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=1)
    default_init_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def dense(in_features: int, out_features: int) -> nn.Linear:
    """Fully connected layer with DDPM init."""
    linear = nn.Linear(in_features, out_features)
    default_init_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def group_norm(channels: int) -> GroupNorm:
    """GroupNorm with groups of at least 4 channels (at most 32 groups), as in NCSN++ (hidd.models.norm)."""
    return GroupNorm(num_groups=min(channels // 4, 32), num_channels=channels, eps=1e-6)


class GaussianFourierProjection(nn.Module):
    """Random Fourier features [sin(2π W s), cos(2π W s)] of a scalar s (here log σ).

    W ~ N(0, scale²) is fixed at construction: it is a buffer, saved with the model but never
    trained. The features are always computed in fp32, since bf16 cannot resolve 2π W s.
    """

    def __init__(self, embedding_size: int, scale: float):
        super().__init__()
        self.register_buffer("W", torch.randn(embedding_size) * scale)

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, 2 * embedding_size)
        with torch.autocast(s.device.type, enabled=False):
            proj = s.float()[:, None] * self.W.float()[None, :] * (2 * math.pi)
            return torch.cat([proj.sin(), proj.cos()], dim=-1)


class NoiseLevelEmbedding(nn.Module):
    """σ -> conditioning vector: Fourier features of log σ, then a two-layer MLP (SiLU between).

    The resblocks apply their own SiLU before projecting it, so the output stays pre-activation.
    """

    def __init__(self, nf: int, fourier_scale: float):
        super().__init__()
        self.fourier = GaussianFourierProjection(nf, fourier_scale)
        self.dense1 = dense(2 * nf, 4 * nf)
        self.dense2 = dense(4 * nf, 4 * nf)

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, 4 * nf)
        return self.dense2(F.silu(self.dense1(self.fourier(sigma.log()))))


def _fir_kernel(taps: Sequence[float]) -> torch.Tensor:
    """Separable 2-D FIR kernel, normalised to unit DC gain, shape (1, 1, n, n)."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim != 1 or len(k) < 2 or len(k) % 2:
        raise ValueError(f"fir_kernel must be a 1-D sequence of even length, got {list(taps)}")
    k2 = torch.outer(k, k)
    return (k2 / k2.sum())[None, None]


class FIRDownsample(nn.Module):
    """Halve H and W: low-pass with the FIR kernel, then keep every other sample.

    Same result as StyleGAN2's `upfirdn2d(x, k, down=2)` with its centred zero padding; the kernel
    is flipped because upfirdn2d convolves while conv2d correlates. No parameters.
    """

    def __init__(self, fir_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        # Not persistent: it is derived from the constructor arguments, so keep it out of checkpoints.
        self.register_buffer("kernel", _fir_kernel(fir_kernel).flip(-1, -2), persistent=False)
        n = self.kernel.shape[-1]
        self.padding = ((n - 1) // 2, (n - 2) // 2)  # (before, after), centres the filter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        before, after = self.padding
        x = F.pad(x, (before, after, before, after))
        weight = self.kernel.to(x.dtype).expand(c, -1, -1, -1)
        return F.conv2d(x, weight, stride=2, groups=c)


class FIRUpsample(nn.Module):
    """Double H and W: zero-insertion followed by the FIR kernel (gain 4 keeps the mean).

    A stride-2 transposed depthwise convolution does both steps at once and matches StyleGAN2's
    `upfirdn2d(x, k, up=2)`. No parameters.
    """

    def __init__(self, fir_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.register_buffer("kernel", _fir_kernel(fir_kernel) * 4, persistent=False)
        self.padding = self.kernel.shape[-1] // 2 - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(c, -1, -1, -1)
        return F.conv_transpose2d(x, weight, stride=2, padding=self.padding, groups=c)


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels (DDPM's block, NCSN++ variant with skip rescale)."""

    def __init__(self, channels: int, *, skip_rescale: bool = True, init_scale: float = 0.0):
        super().__init__()
        self.norm = group_norm(channels)
        self.q = conv1x1(channels, channels, init_scale=0.1)
        self.k = conv1x1(channels, channels, init_scale=0.1)
        self.v = conv1x1(channels, channels, init_scale=0.1)
        self.proj_out = conv1x1(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        h = self.norm(x)

        def tokens(t: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 1, HW, C)
            # Contiguous tokens let SDPA pick its fused (flash) kernel: on CPU strided ones fall back
            # to the math path, which materialises the (HW)² attention matrix (GBs on a photo).
            return t.reshape(b, c, height * width).transpose(1, 2).unsqueeze(1).contiguous()

        # SDPA's default scale 1/sqrt(C) is the one of the reference.
        h = F.scaled_dot_product_attention(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)))
        h = h.squeeze(1).transpose(1, 2).reshape(b, c, height, width)
        out = x + self.proj_out(h)
        return out * _SKIP_SCALE if self.skip_rescale else out


class ResnetBlock(nn.Module):
    """BigGAN-style residual block conditioned on the noise embedding, optionally resampling.

    When `resample` is 'up' or 'down', both branches are FIR-resampled right after the first
    normalisation, and the shortcut gets a 1x1 conv.
    """

    def __init__(self, in_ch: int, out_ch: int | None = None, *, temb_dim: int, resample: str | None = None,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1), dropout: float = 0.0,
                 skip_rescale: bool = True, init_scale: float = 0.0):
        super().__init__()
        out_ch = out_ch or in_ch
        if resample == "up":
            self.resample = FIRUpsample(fir_kernel)
        elif resample == "down":
            self.resample = FIRDownsample(fir_kernel)
        elif resample is None:
            self.resample = None
        else:
            raise ValueError(f"resample must be 'up', 'down' or None, got {resample!r}")
        self.norm1 = group_norm(in_ch)
        self.conv1 = conv3x3(in_ch, out_ch)
        self.temb_proj = dense(temb_dim, out_ch)  # per-channel bias from the noise level
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(out_ch, out_ch, init_scale=init_scale)
        self.shortcut = conv1x1(in_ch, out_ch) if in_ch != out_ch or resample else None
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.conv1(h)
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.shortcut is not None:
            x = self.shortcut(x)
        out = x + h
        return out * _SKIP_SCALE if self.skip_rescale else out


class Combine(nn.Module):
    """Merge the input-image pyramid into the features: 1x1 conv to `out_ch` channels, then sum."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = conv1x1(in_ch, out_ch)

    def forward(self, pyramid: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.conv(pyramid) + h
