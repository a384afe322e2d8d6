"""Configuration of a learned baseline's training run (the same strict YAML / `--set` system as hidd.config).

  data         the sharp images (as the score prior's: hidd.config.DataConfig; image_size is the crop side)
  model        which network and its size
  degradation  the camera model the training pairs are drawn from (hidd.baselines.pairs)
  training     optimiser, length, checkpoints, logging
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


from hidd.config import CONFIG_DIR, ConfigDocument, DataConfig, from_dict, load_config, resolve_config_path

BASELINE_CONFIG_DIR = CONFIG_DIR / "baselines"


@dataclass
class BaselineModelConfig:
    name: str = "dncnn"  # 'dncnn', 'ffdnet' or 'cyclegan' (hidd.baselines.networks)
    channels: int = 3  # image channels in and out
    features: int = 64  # feature maps per layer (CycleGAN: of the generator's first layer)
    depth: int = 17  # convolution layers (CycleGAN: residual blocks of each generator)
    disc_features: int = 32  # CycleGAN: feature maps of the discriminator's first layer


@dataclass
class DegradationConfig:
    model: str = "camera"  # 'camera': conditions (a) and (b) half and half; 'srgb-disk': disk on sRGB values
    radius_min: float = 1.5  # defocus radius drawn uniformly from [radius_min, radius_max] pixels
    radius_max: float = 8.0
    noise_min: float = 0.002  # 'srgb-disk' and condition (a): white noise std drawn from [noise_min, noise_max]
    noise_max: float = 0.01


@dataclass
class BaselineTrainingConfig:
    steps: int = 20_000  # optimiser steps
    batch_size: int = 16
    lr: float = 1e-3  # Adam learning rate (CycleGAN: 2e-4 is usual)
    lr_decay_from: float = 0.5  # fraction of the steps after which the rate decays linearly to 0
    warmup: int = 200  # after a warm start (--init): steps over which the rate ramps up linearly from 0
    cycle_weight: float = 10.0  # CycleGAN: weight of the cycle-consistency losses
    identity_weight: float = 0.5  # CycleGAN: identity losses, as a fraction of cycle_weight
    latest_every: int = 100  # refresh the rolling `latest` checkpoint (resume after a kill)
    log_every: int = 20  # TensorBoard scalars
    eval_every: int = 200  # PSNR on held-out pairs (fixed draws)
    eval_pairs: int = 16  # held-out pairs drawn once from the held-out images
    time_limit_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0: no limit
    threads: int = 0  # torch CPU threads; 0: torch's default
    seed: int = 0


@dataclass
class BaselineConfig(ConfigDocument):
    data: DataConfig = field(default_factory=lambda: DataConfig(image_size=64))
    model: BaselineModelConfig = field(default_factory=BaselineModelConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    training: BaselineTrainingConfig = field(default_factory=BaselineTrainingConfig)


def load_baseline_config(name_or_path: str | Path | None, overrides=()) -> BaselineConfig:
    """A baseline config by path or by name from configs/baselines/, with `--set` overrides, strictly checked."""
    path = None
    if name_or_path is not None:
        path = resolve_config_path(str(name_or_path), BASELINE_CONFIG_DIR)
    return load_config(path, overrides, base=BaselineConfig())


def baseline_config_from_dict(values: dict) -> BaselineConfig:
    """The config stored in a baseline checkpoint, strictly checked."""
    return from_dict(values, BaselineConfig())
