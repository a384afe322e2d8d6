"""Running a trained learned baseline on photos: the same call and result as hidd.deblur.Deblurrer.

`load_baseline(method, path)` reads a baseline checkpoint strictly: a training checkpoint (the whole network,
for CycleGAN all four parts) or a shipped one (`restorer_only`: just the module that restores). A score-prior
checkpoint, or another method's, is refused in one line.

`BaselineDeblurrer(y)` pads each batch (reflect) to the network's size multiple, gives FFDNet each photo's
blind RMS noise level (hidd.blind.noise, sRGB tone curve: what a camera photo has; the other networks ignore
it), runs the network once (NFE 1) and crops back.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hidd import checkpoint
from hidd.baselines.config import BaselineConfig, baseline_config_from_dict
from hidd.baselines.networks import NETWORKS, BaselineNetwork, build_network
from hidd.camera.tone import tone_curve
from hidd.config import ConfigError, in_repository
from hidd.deblur import DeblurResult
from hidd.no_harm import flat_noise_level
from hidd.stages.layout import pad_to_multiple

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints"


def default_checkpoint(method: str) -> Path:
    """checkpoints/METHOD.pt, the small checkpoint shipped for each learned baseline."""
    return CHECKPOINT_DIR / f"{method}.pt"


@dataclass
class Baseline:
    network: BaselineNetwork  # in eval mode
    config: BaselineConfig
    device: torch.device


def baseline_checkpoint(method: str, path: str | Path | None = None) -> Path:
    """The checkpoint file of `method`: `path` (a shipped one from any folder), or its shipped checkpoint."""
    return in_repository(path) if path is not None else default_checkpoint(method)


def load_baseline(method: str, path: str | Path | None = None, device: str | torch.device = "cpu") -> Baseline:
    """The trained `method` network (dncnn, ffdnet, cyclegan) from `path` (default: its shipped checkpoint)."""
    NETWORKS.get(method)  # an unknown method names the valid ones
    path = baseline_checkpoint(method, path)
    state = checkpoint.load(path)
    stored = state.get("baseline")
    if stored is None:
        raise checkpoint.CheckpointError(f"{path}: a score-prior checkpoint, not a {method} baseline "
                                         f"(run it without --method, or give {method}'s checkpoint)")
    if stored != method:
        raise checkpoint.CheckpointError(f"{path}: a {stored} checkpoint, not {method} (use --method {stored})")
    try:
        cfg = baseline_config_from_dict(state["config"])
    except ConfigError as e:
        raise checkpoint.CheckpointError(f"{path}: its stored config is invalid: {e}") from None
    network = build_network(cfg.model)
    target = network.restorer() if state.get("restorer_only") else network
    checkpoint.load_weights_strict(target, state["model"], str(path))
    device = torch.device(device)
    return Baseline(network=network.to(device).eval().requires_grad_(False), config=cfg, device=device)


def export_state(state: dict) -> dict:
    """A training checkpoint reduced to what restoring needs: the restorer's weights, the config, the step."""
    cfg = baseline_config_from_dict(state["config"])
    network = build_network(cfg.model)
    checkpoint.load_weights_strict(network, state["model"], "training checkpoint")
    return {"baseline": state["baseline"], "restorer_only": True, "model": network.restorer().state_dict(),
            "step": state["step"], "config": state["config"]}


def blind_noise_level(y: torch.Tensor) -> torch.Tensor:
    """Each photo's RMS noise level (B,) from its flattest patches (hidd.blind.noise via hidd.no_harm)."""
    tone = tone_curve("srgb")
    return torch.tensor([flat_noise_level(image, tone) for image in y], device=y.device, dtype=y.dtype)


class BaselineDeblurrer:
    """Restores batches y (B, C, H, W) in [0, 1] with a learned baseline; call signature of Deblurrer."""

    def __init__(self, baseline: Baseline):
        self.baseline = baseline
        self.needs_noise_level = baseline.config.model.name == "ffdnet"

    @torch.no_grad()
    def __call__(self, y: torch.Tensor, *, seed: int = 0, callback=None, radius_map=None,
                 progress=None) -> DeblurResult:
        """seed, callback, radius_map and progress are accepted for Deblurrer's signature: a single forward pass has
        no randomness, no iterates, no blur model and no stages to report."""
        network = self.baseline.network
        y = y.to(self.baseline.device, torch.float32)
        if y.shape[1] != self.baseline.config.model.channels:
            raise ValueError(f"the {self.baseline.config.model.name} network expects "
                             f"{self.baseline.config.model.channels}-channel images, got {y.shape[1]} channels")
        level = blind_noise_level(y) if self.needs_noise_level else torch.zeros(y.shape[0], device=y.device)
        padded, (h, w) = pad_to_multiple(y, network.size_multiple)
        restored = network.restore(padded, level)[..., :h, :w]
        problems = [None if torch.isfinite(image).all() else "the network's output is not finite; nothing written"
                    for image in restored]
        return DeblurResult(images=restored.nan_to_num().clamp(0, 1), nfe=1, noise_sigma=level.cpu() if
                            self.needs_noise_level else None, problems=problems)
