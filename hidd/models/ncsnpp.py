"""NCSN++ score network for the continuous VE-SDE (Song et al., 2021, configs/ve/ncsnpp_continuous).

A U-Net of BigGAN residual blocks with FIR resampling, conditioned on the noise level σ through
Gaussian Fourier features of log σ. Two image pyramids run beside it: the input image, FIR-
downsampled and summed into the encoder features at every level ("input_skip"), and the
output, predicted at every decoder level and FIR-upsampled into the next ("output_skip").
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (AttnBlock, Combine, FIRDownsample, FIRUpsample, NoiseLevelEmbedding, ResnetBlock, conv3x3,
                     group_norm)


class DownLevel(nn.Module):
    """One encoder resolution: residual blocks (each followed by attention if enabled), then,
    except at the coarsest level, a downsampling block and the merge of the input pyramid."""

    def __init__(self, in_ch: int, out_ch: int, *, num_res_blocks: int, attention: bool, downsample: bool,
                 image_channels: int, block_args: dict, attn_args: dict):
        super().__init__()
        self.res_blocks = nn.ModuleList(
            ResnetBlock(in_ch if i == 0 else out_ch, out_ch, **block_args) for i in range(num_res_blocks)
        )
        self.attn_blocks = (
            nn.ModuleList(AttnBlock(out_ch, **attn_args) for _ in range(num_res_blocks)) if attention else None
        )
        if downsample:
            self.downsample = ResnetBlock(out_ch, out_ch, resample="down", **block_args)
            self.pyramid_down = FIRDownsample(block_args["fir_kernel"])
            self.combine = Combine(image_channels, out_ch)
        else:
            self.downsample = None

    def forward(self, h, temb, pyramid, skips: list):
        """Push this level's skip features onto `skips`; return the next level's (h, pyramid)."""
        for i, block in enumerate(self.res_blocks):
            h = block(h, temb)
            if self.attn_blocks is not None:
                h = self.attn_blocks[i](h)
            skips.append(h)
        if self.downsample is not None:
            pyramid = self.pyramid_down(pyramid)
            h = self.combine(pyramid, self.downsample(h, temb))
            skips.append(h)
        return h, pyramid


class MiddleBlock(nn.Module):
    """Bottleneck at the coarsest resolution: residual block, attention, residual block."""

    def __init__(self, channels: int, *, block_args: dict, attn_args: dict):
        super().__init__()
        self.res1 = ResnetBlock(channels, channels, **block_args)
        self.attn = AttnBlock(channels, **attn_args)
        self.res2 = ResnetBlock(channels, channels, **block_args)

    def forward(self, h, temb):
        return self.res2(self.attn(self.res1(h, temb)), temb)


class UpLevel(nn.Module):
    """One decoder resolution: `num_res_blocks + 1` residual blocks, each fed a skip from the
    encoder, optional attention, this level's contribution to the output pyramid, and, except at
    full resolution, an upsampling block."""

    def __init__(self, in_ch: int, out_ch: int, skip_chs: Sequence[int], *, attention: bool, coarsest: bool,
                 upsample: bool, image_channels: int, block_args: dict, attn_args: dict, init_scale: float):
        super().__init__()
        blocks = []
        for skip_ch in skip_chs:
            blocks.append(ResnetBlock(in_ch + skip_ch, out_ch, **block_args))
            in_ch = out_ch
        self.res_blocks = nn.ModuleList(blocks)
        self.attn = AttnBlock(out_ch, **attn_args) if attention else None
        # The coarsest level starts the output pyramid; the others add to its upsampled value.
        self.pyramid_up = None if coarsest else FIRUpsample(block_args["fir_kernel"])
        self.out_norm = group_norm(out_ch)
        self.out_conv = conv3x3(out_ch, image_channels, init_scale=init_scale)
        self.upsample = ResnetBlock(out_ch, out_ch, resample="up", **block_args) if upsample else None

    def forward(self, h, temb, pyramid, skips: list):
        """Pop this level's skip features from `skips`; return the next level's (h, pyramid)."""
        for block in self.res_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
        if self.attn is not None:
            h = self.attn(h)
        out = self.out_conv(F.silu(self.out_norm(h)))
        pyramid = out if self.pyramid_up is None else self.pyramid_up(pyramid) + out
        if self.upsample is not None:
            h = self.upsample(h, temb)
        return h, pyramid


class NCSNpp(nn.Module):
    """NCSN++ score network s(x, σ) ≈ ∇ₓ log p_σ(x), fully convolutional.

    Inputs of any H×W that are multiples of `size_multiple` are accepted; `image_size` only says
    at which levels attention sits (those whose feature size at that resolution is listed in
    `attn_resolutions`), so the model can be trained on crops and applied to whole images.
    """

    def __init__(self, *,
                 channels: int = 3,  # image channels, in and out (1 for grayscale, 3 for colour)
                 image_size: int = 256,  # training resolution that attn_resolutions refer to
                 nf: int = 128,  # base channel count; level l has nf * ch_mult[l] channels
                 ch_mult: Sequence[int] = (1, 1, 2, 2, 2, 2, 2),  # one entry per resolution level
                 num_res_blocks: int = 2,  # residual blocks per level in the encoder (+1 in the decoder)
                 attn_resolutions: Sequence[int] = (16,),  # feature sizes (at image_size) with self-attention
                 dropout: float = 0.0,  # dropout inside the residual blocks
                 fir_kernel: Sequence[float] = (1, 3, 3, 1),  # FIR taps for all up/downsampling
                 skip_rescale: bool = True,  # scale residual sums by 1/sqrt(2)
                 fourier_scale: float = 16.0,  # std of the Fourier frequencies of the log σ embedding
                 init_scale: float = 0.0,  # init scale of the convs closing residual branches and outputs
                 centered: bool = False,  # inputs already in [-1, 1]; if False they are in [0, 1]
                 scale_by_sigma: bool = True):  # divide the output by σ, so the net itself predicts σ·score
        super().__init__()
        num_levels = len(ch_mult)
        level_chs = [nf * m for m in ch_mult]
        self.centered = centered
        self.scale_by_sigma = scale_by_sigma
        self.size_multiple = 2 ** (num_levels - 1)

        block_args = dict(temb_dim=4 * nf, fir_kernel=tuple(fir_kernel), dropout=dropout,
                          skip_rescale=skip_rescale, init_scale=init_scale)
        attn_args = dict(skip_rescale=skip_rescale, init_scale=init_scale)
        attention = [image_size // 2 ** level in attn_resolutions for level in range(num_levels)]

        self.noise_embed = NoiseLevelEmbedding(nf, fourier_scale)
        self.conv_in = conv3x3(channels, nf)

        # Channel counts of the skip stack, in push order, to size the decoder's inputs.
        skip_chs = [nf]
        encoder = []
        in_ch = nf
        for level, ch in enumerate(level_chs):
            last = level == num_levels - 1
            encoder.append(DownLevel(in_ch, ch, num_res_blocks=num_res_blocks, attention=attention[level],
                                     downsample=not last, image_channels=channels,
                                     block_args=block_args, attn_args=attn_args))
            skip_chs += [ch] * (num_res_blocks + (0 if last else 1))
            in_ch = ch
        self.encoder = nn.ModuleList(encoder)

        self.middle = MiddleBlock(in_ch, block_args=block_args, attn_args=attn_args)

        decoder = []
        for level in reversed(range(num_levels)):
            level_skips = [skip_chs.pop() for _ in range(num_res_blocks + 1)]
            decoder.append(UpLevel(in_ch, level_chs[level], level_skips, attention=attention[level],
                                   coarsest=level == num_levels - 1, upsample=level > 0,
                                   image_channels=channels, block_args=block_args, attn_args=attn_args,
                                   init_scale=init_scale))
            in_ch = level_chs[level]
        # Indexed by level like the encoder (decoder[0] is full resolution), run in reverse.
        self.decoder = nn.ModuleList(reversed(decoder))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Score at noisy images x (B, C, H, W) with noise std sigma (B,); returns (B, C, H, W) in fp32."""
        height, width = x.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f"input size {height}x{width} is not a multiple of {self.size_multiple} "
                             f"(2 ** (len(ch_mult) - 1)); pad or crop the image")
        sigma = sigma.float().reshape(-1).expand(x.shape[0])  # a single σ may be given for the batch
        temb = self.noise_embed(sigma)

        if not self.centered:
            x = 2 * x - 1  # [0, 1] -> [-1, 1]

        h = self.conv_in(x)
        pyramid = x
        skips = [h]
        for level in self.encoder:
            h, pyramid = level(h, temb, pyramid, skips)

        h = self.middle(h, temb)

        pyramid = None
        for level in reversed(self.decoder):
            h, pyramid = level(h, temb, pyramid, skips)

        out = pyramid.float()
        if self.scale_by_sigma:
            out = out / sigma[:, None, None, None]
        return out
