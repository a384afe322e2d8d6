"""CycleGAN (Zhu et al. 2017): unpaired translation between defocused and sharp photos.

Two generators, G: blurred → sharp (the restorer) and F: sharp → blurred, and two PatchGAN discriminators,
D_sharp and D_blurred, trained with least-squares GAN losses, the cycle losses ‖F(G(b)) − b‖₁, ‖G(F(s)) − s‖₁
(weight `cycle_weight`) and the identity losses ‖G(s) − s‖₁, ‖F(b) − b‖₁ (weight `identity_weight` × that).
The losses live in hidd.baselines.train; this module holds the networks.

Generator: the ResNet generator of the paper, scaled down — c7s1-f, d2f, d4f, `blocks` residual blocks,
u2f, uf, c7s1-C, instance norm — with a global residual (output = input + body), so that training starts from
the identity: a short CPU training cannot afford to learn to copy the photo first. Discriminator: the 70×70
PatchGAN (C64-C128-C256-C512, here `features`·1,2,4,8), one real/fake score per patch.
"""
from __future__ import annotations

from torch import nn

from hidd.baselines.networks.base import NETWORKS, BaselineNetwork


class ResidualBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features))

    def forward(self, x):
        return x + self.body(x)


def norm_relu(conv: nn.Module, features: int) -> list[nn.Module]:
    return [conv, nn.InstanceNorm2d(features), nn.ReLU(True)]


class ResnetGenerator(nn.Module):
    """Photo (B, C, H, W) → photo, H and W multiples of 4."""

    def __init__(self, channels: int = 3, features: int = 24, blocks: int = 3):
        super().__init__()
        f = features
        layers = [nn.ReflectionPad2d(3), *norm_relu(nn.Conv2d(channels, f, 7), f),
                  *norm_relu(nn.Conv2d(f, 2 * f, 3, stride=2, padding=1), 2 * f),
                  *norm_relu(nn.Conv2d(2 * f, 4 * f, 3, stride=2, padding=1), 4 * f),
                  *[ResidualBlock(4 * f) for _ in range(blocks)],
                  *norm_relu(nn.ConvTranspose2d(4 * f, 2 * f, 3, stride=2, padding=1, output_padding=1), 2 * f),
                  *norm_relu(nn.ConvTranspose2d(2 * f, f, 3, stride=2, padding=1, output_padding=1), f),
                  nn.ReflectionPad2d(3), nn.Conv2d(f, channels, 7)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x)


class PatchDiscriminator(nn.Module):
    """The 70×70 PatchGAN: a map of real/fake scores, one per overlapping patch."""

    def __init__(self, channels: int = 3, features: int = 32):
        super().__init__()
        f = features
        self.body = nn.Sequential(
            nn.Conv2d(channels, f, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(f, 2 * f, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * f), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * f, 4 * f, 4, stride=2, padding=1), nn.InstanceNorm2d(4 * f), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * f, 8 * f, 4, stride=1, padding=1), nn.InstanceNorm2d(8 * f), nn.LeakyReLU(0.2, True),
            nn.Conv2d(8 * f, 1, 4, stride=1, padding=1))

    def forward(self, x):
        return self.body(x)


@NETWORKS.register("cyclegan")
class CycleGAN(BaselineNetwork):
    """The four networks; `restore` runs the blurred → sharp generator."""

    size_multiple = 4
    trains_unpaired = True

    def __init__(self, channels: int = 3, features: int = 24, blocks: int = 3, disc_features: int = 32):
        super().__init__()
        self.to_sharp = ResnetGenerator(channels, features, blocks)  # G
        self.to_blurred = ResnetGenerator(channels, features, blocks)  # F
        self.judge_sharp = PatchDiscriminator(channels, disc_features)  # D_sharp
        self.judge_blurred = PatchDiscriminator(channels, disc_features)  # D_blurred

    @classmethod
    def from_config(cls, model_cfg):
        return cls(model_cfg.channels, model_cfg.features, model_cfg.depth, model_cfg.disc_features)

    def restore(self, y, noise_level):
        return self.to_sharp(y)

    def restorer(self):
        return self.to_sharp
