"""A trained score prior ready for sampling: EMA weights, its config and SDE, on a device."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from hidd import checkpoint
from hidd.config import (PRESET_DIR, Config, ConfigError, apply_overrides, in_repository, load_config, preset_names,
                         resolve_config_path)
from hidd.models import build_model
from hidd.sde import SDE, build_sde

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "hidd-default.pt"
TRAINING_ONLY = ("data", "training")  # config sections that sampling a trained model never reads


@dataclass
class Prior:
    model: torch.nn.Module  # score network s_θ(x, σ) with EMA weights, in eval mode
    config: Config  # the checkpoint's config with any overrides applied
    sde: SDE
    device: torch.device


def apply_preset(cfg: Config, name: str) -> Config:
    """Sampler settings of a named preset (configs/presets/NAME.yaml) on top of `cfg`."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"--preset {name}: unknown preset; choose from {', '.join(preset_names())}")
    return load_config(path, base=cfg)


def resolve_checkpoint(path: str | Path | None) -> Path:
    if path is not None:
        return in_repository(path)
    if not DEFAULT_CHECKPOINT.is_file():
        raise checkpoint.CheckpointError(
            f"{DEFAULT_CHECKPOINT}: no default checkpoint is shipped yet; train one with hidd-train "
            "and pass --checkpoint WORKDIR/checkpoints/latest.pt")
    return DEFAULT_CHECKPOINT


def load_prior(path: str | Path | None = None, *, config_path: str | Path | None = None, preset: str | None = None,
               overrides=(), device: str | torch.device = "cpu") -> Prior:
    """Load a checkpoint strictly; then (in this order) a config file, a preset and --set overrides on top.

    Only the sampler section is meant to change; a changed model section makes the strict load fail. With neither
    a config file nor a preset the sampler is the one the checkpoint stores (the shipped checkpoint's: the paper's
    1000-step predictor–corrector), not hidd-reconstruct's default: for that, preset=hidd.config.DEFAULT_PRESET.
    """
    path = resolve_checkpoint(path)
    state = checkpoint.load(path)
    if "baseline" in state:
        raise checkpoint.CheckpointError(f"{path}: a {state['baseline']} baseline checkpoint, not a score prior; "
                                         f"run it with --method {state['baseline']}")
    cfg = stored = checkpoint.config_of(state, path)
    if config_path is not None:
        cfg = load_config(resolve_config_path(str(config_path)), base=cfg)
    if preset is not None:
        cfg = apply_preset(cfg, preset)
    cfg = apply_overrides(cfg, overrides)
    for section in TRAINING_ONLY:  # a setting that would change nothing is refused, as a typo is
        before, after = dataclasses.asdict(getattr(stored, section)), dataclasses.asdict(getattr(cfg, section))
        changed = next((key for key in after if after[key] != before[key]), None)
        if changed is not None:
            raise ConfigError(f"{section}.{changed}: the {section} section is the checkpoint's training record and "
                              "changes nothing when sampling; set sampler (or sde) keys")
    model = build_model(cfg)
    weights = state["ema"]["weights"] if "ema" in state else state["model"]
    checkpoint.load_weights_strict(model, weights, str(path))
    device = torch.device(device)
    # The sampler walks N = sampler.num_steps discrete levels; training's num_scales does not bind it.
    sde = build_sde(dataclasses.replace(cfg.sde, num_scales=cfg.sampler.num_steps))
    return Prior(model=model.to(device).eval().requires_grad_(False), config=cfg, sde=sde, device=device)
