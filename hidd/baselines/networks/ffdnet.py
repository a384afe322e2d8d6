"""FFDNet (Zhang et al. 2018): a fast CNN with a tunable noise-level map.

The photo is pixel-unshuffled into 4C half-resolution channels, a constant map of its noise level σ is
appended, a DnCNN-style body (`depth` layers of `features` channels: 12 × 96 in the paper's colour network)
maps these 4C + 1 channels to 4C, and pixel shuffling restores the full resolution. Unlike DnCNN it predicts
the image itself, not the residual. σ is each photo's RMS noise level: in training the RMS of all the camera
added after the blur (hidd.baselines.pairs: noise, demosaicing, rounding, JPEG), when restoring the blind
flat-patch estimate of hidd.blind.noise. The two differ where JPEG and demosaicing errors sit at edges, which
flat patches do not see: on lens photos the map given when restoring is lower than in training (the network
then removes less), a mismatch any FFDNet user meets, who must supply σ.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hidd.baselines.networks.base import NETWORKS, BaselineNetwork
from hidd.baselines.networks.dncnn import conv_stack


@NETWORKS.register("ffdnet")
class FFDNet(BaselineNetwork):
    size_multiple = 2

    def __init__(self, channels: int = 3, features: int = 96, depth: int = 12):
        super().__init__()
        if depth < 3:
            raise ValueError(f"model.depth: FFDNet needs at least 3 layers, got {depth}")
        self.body = conv_stack(4 * channels + 1, 4 * channels, features, depth)

    @classmethod
    def from_config(cls, model_cfg):
        return cls(model_cfg.channels, model_cfg.features, model_cfg.depth)

    def forward(self, y: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        small = F.pixel_unshuffle(y, 2)
        noise_map = noise_level.to(y).reshape(-1, 1, 1, 1).expand(-1, 1, *small.shape[-2:])
        return F.pixel_shuffle(self.body(torch.cat([small, noise_map], dim=1)), 2)

    def restore(self, y, noise_level):
        return self(y, noise_level)
