"""DnCNN (Zhang et al. 2017): residual learning with a plain deep CNN.

x̂ = y − R(y): the network R predicts what to remove from the photo (for denoising, the noise; trained here on
defocus pairs, the difference y − x that the blur and noise made). `depth` 3×3 convolutions of `features`
channels: the first with ReLU, the middle ones with batch normalisation and ReLU, the last linear — 17 layers of
64 channels in the paper's configuration (556 k parameters for colour; receptive field 35 px, enough for the
defocus radii of the benchmarks, ≤ 8 px).
"""
from __future__ import annotations

import torch
from torch import nn

from hidd.baselines.networks.base import NETWORKS, BaselineNetwork


def conv_stack(channels_in: int, channels_out: int, features: int, depth: int) -> nn.Sequential:
    """conv-ReLU, (depth − 2) × conv-BN-ReLU, conv: DnCNN's body (also FFDNet's)."""
    layers: list[nn.Module] = [nn.Conv2d(channels_in, features, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features),
                   nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(features, channels_out, 3, padding=1))
    return nn.Sequential(*layers)


@NETWORKS.register("dncnn")
class DnCNN(BaselineNetwork):
    def __init__(self, channels: int = 3, features: int = 64, depth: int = 17):
        super().__init__()
        if depth < 3:
            raise ValueError(f"model.depth: DnCNN needs at least 3 layers, got {depth}")
        self.body = conv_stack(channels, channels, features, depth)

    @classmethod
    def from_config(cls, model_cfg):
        return cls(model_cfg.channels, model_cfg.features, model_cfg.depth)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y - self.body(y)

    def restore(self, y, noise_level):
        return self(y)
