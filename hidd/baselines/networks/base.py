"""The interface of the learned baselines: a network that maps a defocused photo to a sharp one.

Every baseline is a `torch.nn.Module` whose `restore(y, noise_level)` takes photos y (B, C, H, W) in [0, 1]
and each photo's RMS noise level (B,) (used by FFDNet's noise map, ignored by the others) and returns the
restored photos, unclipped. `size_multiple` is the side any input must be a multiple of (the caller pads).
Networks are built by name from the `model` section of a baseline config (`hidd.baselines.config`).
"""
from __future__ import annotations

import abc

import torch
from torch import nn

from hidd.registry import Registry

NETWORKS = Registry("baseline network", key="model.name")


class BaselineNetwork(nn.Module, abc.ABC):
    """A feed-forward restorer; subclasses register with @NETWORKS.register(name)."""

    size_multiple = 1  # inputs are padded to a multiple of this
    trains_unpaired = False  # True: trained on unpaired blurred and sharp images (CycleGAN), else on pairs

    @classmethod
    @abc.abstractmethod
    def from_config(cls, model_cfg) -> "BaselineNetwork":
        """The network of a `BaselineModelConfig`."""

    @abc.abstractmethod
    def restore(self, y: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        """Sharp estimates of photos y (B, C, H, W) in [0, 1] with RMS noise levels (B,)."""

    def restorer(self) -> nn.Module:
        """The module whose weights a shipped checkpoint holds (CycleGAN: its blurred → sharp generator only)."""
        return self


def build_network(model_cfg) -> BaselineNetwork:
    return NETWORKS.get(model_cfg.name).from_config(model_cfg)
