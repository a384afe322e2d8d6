"""Training of the learned defocus map (hidd.blind.map_net): config and loop, on the CPU or one device.
(A training layer, beside hidd.train and hidd.baselines.train: hidd.blind holds only what a deblur reads.)

Each step draws `batch_size` scenes from a generator seeded by (training seed, step): a training photo, a square
crop of it, and a scene of that crop through a random lens camera (hidd.camera.scenes.sample_scene), so a resumed
run sees exactly the batches an uninterrupted one would have. The held-out photos (data.held_out, by stem) are
never read: they stay for the sharp false-alarm test (scripts/bench_defocus_map.py --sharp). With
training.workers > 0 the scenes are rendered by that many worker processes (a torch DataLoader over the steps, one
thread each) while the network trains on its device: batch `step` is still drawn from (seed, step), so the
workers change how fast a run goes, not what it trains on. On the CPU a run killed and resumed ends with the very
weights of one never stopped; on CUDA the convolutions' and the upsampling's backward passes are not deterministic,
so two GPU runs agree only to rounding. Loss: the radius's
absolute error (or, with training.quantile q ≠ ½, the pinball loss of its q-quantile) plus the Laplace negative
log-likelihood for the scale (map_net.map_loss); Adam, its rate decaying
linearly to 0 after lr_decay_from of the steps. With training.texture_weight k > 0 a pixel's radius term weighs
1 + k where its scene is textured (hidd.blind.texture: the half of the crop with the most gradient energy, on the
photo decoded from sRGB) and 1 − k elsewhere (then scaled to mean 1 per scene): the weights depend on the photo, not
on its true radii, so each pixel's minimiser stays about where it was (exactly, were the weight a function of what
the network sees at that pixel) and the network spends more of itself where a blur can be read.

A run starts from scratch, continues (`resume`), or starts from the weights of another defocus-map checkpoint
(`init`: an exported network or a run's rolling checkpoint, the same model.features and model.bands) at that
checkpoint's step, with a fresh optimiser: training.steps must exceed that step, the rate schedule is the new run's,
and its batches are the ones of steps it has not yet seen under the same training.seed.

The run lives in one work directory:
  config.yaml            the resolved config
  checkpoints/latest.pt  rolling checkpoint: weights, optimiser, step, RNG states (--resume continues from it)
  tb/                    TensorBoard: loss, learning rate, and on fixed evaluation scenes (drawn once from the
                         training photos with EVAL_SEED) the mean absolute error and the share of truly in-focus
                         pixels (r < 1) read ≥ FOCUS_RADIUS
  defocus_map.pt         the exported network (weights and config only), written at the end
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hidd import checkpoint
from hidd.blind.defocus_map import FOCUS_RADIUS
from hidd.blind.map_net import FEATURES, KIND, TRAINED_TONE, MapNet, laplace_nll, map_loss, save_network, valid_bands
from hidd.blind.texture import textured
from hidd.camera.scenes import FOCUS_TOP, SCENE_KINDS, sample_scene
from hidd.camera.tone import tone_curve
from hidd.config import (CONFIG_DIR, ConfigDocument, in_repository, load_config, resolve_config_path,
                         save_config)
from hidd.imageio import read_image, to_rgb
from hidd.metrics import IN_FOCUS_RADIUS
from hidd.rules import COUNT, NON_NEGATIVE, POSITIVE, SHARE, Rule, anything, check_section, each, number

MAP_CONFIG_DIR = CONFIG_DIR / "maps"  # the map's configs, by name

EVAL_SEED = "defocus-map-eval"  # the evaluation scenes' generator (fixed: the same scenes at every evaluation)
HELD_OUT = ["opencv_fruits", "opencv_graf1", "opencv_graf3", "opencv_messi5", "plasma_Kite", "plasma_Path"]


@dataclass
class MapDataConfig:
    photos: str = "data/corpus/photos"  # sharp training photos (PNG), read whole
    held_out: list[str] = field(default_factory=lambda: list(HELD_OUT))  # stems never trained on
    crop: int = 128  # side of the square crops the scenes are rendered from


@dataclass
class MapModelConfig:
    features: list[int] = field(default_factory=lambda: list(FEATURES))  # at scales 1, 1/2, 1/4, 1/8
    bands: int = 0  # log-spaced bands of the local spectrum the network also sees (0: none; else ≥ 2)


@dataclass
class MapScenesConfig:
    max_radius: float = 12.0  # px
    weights: list[float] = field(default_factory=lambda: [0.3, 0.25, 0.3, 0.15])  # uniform, tilt, subject, layers


@dataclass
class MapTrainingConfig:
    steps: int = 3000
    batch_size: int = 8
    lr: float = 2e-3
    lr_decay_from: float = 0.5  # fraction of the steps after which the rate decays linearly to 0
    latest_every: int = 50  # refresh the rolling checkpoint
    log_every: int = 10  # TensorBoard scalars
    eval_every: int = 250
    eval_scenes: int = 16
    quantile: float = 0.5  # the radius learnt is this quantile of those a photo allows (½: the median; map_loss)
    texture_weight: float = 0.0  # k: textured pixels' radius term weighs 1 + k, the rest 1 − k (module docstring)
    time_limit_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0: none
    threads: int = 1  # torch CPU threads; 0: torch's default
    workers: int = 0  # processes rendering the scenes (each batch the same whichever renders it); 0: this one
    seed: int = 0


@dataclass
class DefocusMapConfig(ConfigDocument):
    data: MapDataConfig = field(default_factory=MapDataConfig)
    model: MapModelConfig = field(default_factory=MapModelConfig)
    scenes: MapScenesConfig = field(default_factory=MapScenesConfig)
    training: MapTrainingConfig = field(default_factory=MapTrainingConfig)


def load_map_config(name_or_path: str | Path | None, overrides=()) -> DefocusMapConfig:
    """The config by path or by name from configs/maps/ (defocus_map), with `--set` overrides, strictly checked."""
    path = resolve_config_path(str(name_or_path), MAP_CONFIG_DIR) if name_or_path is not None else None
    cfg = load_config(path, overrides, base=DefocusMapConfig())
    check(cfg)
    return cfg


def _four_sizes(value) -> str | None:
    return None if len(value) == 4 and all(v >= 1 for v in value) else "four sizes ≥ 1 (scales 1, 1/2, 1/4, 1/8)"


def _scene_weights(value) -> str | None:
    if len(value) == len(SCENE_KINDS) and min(value) >= 0 and sum(value) > 0:
        return None
    return f"{len(SCENE_KINDS)} non-negative weights, not all 0 ({', '.join(SCENE_KINDS)})"


MAP_RULES: dict[type, dict[str, Rule]] = {  # what each value of a map training config may be (hidd.rules)
    MapDataConfig: {"photos": anything, "held_out": each(anything), "crop": number(16)},
    MapModelConfig: {"features": _four_sizes,
                     "bands": lambda v: None if valid_bands(v) else "0 (none) or a count of at least 2"},
    MapScenesConfig: {"max_radius": number(FOCUS_TOP), "weights": _scene_weights},  # (≥ a background's least blur)
    MapTrainingConfig: {
        "steps": COUNT, "batch_size": COUNT, "lr": POSITIVE, "lr_decay_from": SHARE, "latest_every": COUNT,
        "log_every": COUNT, "eval_every": COUNT, "eval_scenes": COUNT,
        "quantile": number(0, 1, open_low=True, open_high=True), "texture_weight": number(0, 1, open_high=True),
        "time_limit_minutes": NON_NEGATIVE,
        "threads": NON_NEGATIVE, "workers": NON_NEGATIVE, "seed": anything,
    },
}


def check(cfg: DefocusMapConfig) -> None:
    """ConfigError (one line, naming the key) for the first value of the config outside its rule (MAP_RULES)."""
    for name in ("data", "model", "scenes", "training"):
        section = getattr(cfg, name)
        check_section(section, MAP_RULES[type(section)], name)


def training_photos(cfg: MapDataConfig) -> list[torch.Tensor]:
    """The training photos (C, H, W) in [0, 1], sorted by name, the held-out stems left out (each must exist). A
    relative folder is taken from the working directory where it exists there, else from the repository's (as the
    prior's data.roots)."""
    folder = in_repository(cfg.photos)
    paths = sorted(p for p in folder.glob("*.png")) if folder.is_dir() else []
    if not paths:
        raise ValueError(f"{folder}: no PNG photos")
    missing = sorted(set(cfg.held_out) - {p.stem for p in paths})
    if missing:
        raise ValueError(f"{folder}: held-out photos not found: {', '.join(missing)}")
    photos = []
    for path in paths:
        if path.stem in cfg.held_out:
            continue
        pixels = to_rgb(read_image(path, allow_alpha=True).pixels)
        if min(pixels.shape[:2]) < cfg.crop:
            raise ValueError(f"{path}: smaller than data.crop {cfg.crop}")
        photos.append(torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float())
    return photos


def draw_batch(rng: random.Random, photos: list[torch.Tensor], cfg: DefocusMapConfig,
               count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` scenes: photos (B, C, S, S) and true radii (B, S, S)."""
    ys, rs, size = [], [], cfg.data.crop
    for _ in range(count):
        photo = rng.choice(photos)
        top, left = rng.randrange(photo.shape[1] - size + 1), rng.randrange(photo.shape[2] - size + 1)
        crop = photo[:, top:top + size, left:left + size]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        scene = sample_scene(rng, crop, max_radius=cfg.scenes.max_radius, weights=tuple(cfg.scenes.weights))
        ys.append(scene.photo)
        rs.append(scene.radius)
    return torch.stack(ys), torch.stack(rs)


class StepBatches(torch.utils.data.Dataset):
    """Batch `step` of a run: draw_batch from a generator seeded by (training seed, step), so any process renders
    the same batch for a step."""

    def __init__(self, photos: list[torch.Tensor], cfg: DefocusMapConfig):
        self.photos, self.cfg = photos, cfg

    def __len__(self) -> int:
        return self.cfg.training.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.cfg.training
        return draw_batch(random.Random(f"{t.seed}-{step}"), self.photos, self.cfg, t.batch_size)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # a rendering worker: the processes, not threads, run side by side


TRAINING_KIND = "defocus_map_training"  # a run's rolling checkpoint (an exported network is map_net.KIND)


def texture_weights(y: torch.Tensor, k: float) -> torch.Tensor | None:
    """Per-pixel weights (B, H, W) of photos y (B, C, H, W) as their file encodes them: 1 + k where textured
    (hidd.blind.texture, on the grey of y decoded from TRAINED_TONE), 1 − k elsewhere; None for k = 0."""
    if not k:
        return None
    grey = tone_curve(TRAINED_TONE).decode(y.clamp(0, 1)).mean(1)
    weights = 1 + k * (2 * textured(grey).to(y.dtype) - 1)
    return weights / weights.mean((-2, -1), keepdim=True)  # mean 1 per scene, also where less than half is textured


def _init_weights(net: MapNet, init: str | Path) -> int:
    """Load the weights of defocus-map checkpoint `init` into net (strictly); returns its step."""
    state = checkpoint.load(init)
    if state.get("kind") not in (KIND, TRAINING_KIND):
        raise checkpoint.CheckpointError(f"{init}: not a defocus map checkpoint (kind {state.get('kind')!r})")
    checkpoint.load_weights_strict(net, state["model"], str(init))
    return int(state.get("step", 0))


def learning_rate(t: MapTrainingConfig, step: int) -> float:
    start = int(t.lr_decay_from * t.steps)
    return t.lr if step < start else t.lr * max(0.0, (t.steps - step) / max(1, t.steps - start))


def evaluate(net: MapNet, scenes: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """Mean absolute error (px) and the share of truly in-focus pixels (r < 1) read ≥ FOCUS_RADIUS."""
    net.eval()
    with torch.no_grad():
        radius, _ = net(scenes[0])
    net.train()
    radius, true = radius.cpu(), scenes[1].cpu()
    sharp = true < IN_FOCUS_RADIUS
    return {"mae": float((radius - true).abs().mean()),
            "in_focus_read_defocused": float((radius[sharp] >= FOCUS_RADIUS).float().mean()) if sharp.any() else 0.0}


def train_map(cfg: DefocusMapConfig, workdir: str | Path, *, resume: bool = False,
              device: torch.device | str | None = None, init: str | Path | None = None) -> Path:
    """Train (or continue, or start from `init`'s weights) a run in `workdir` on `device` (None: the CPU;
    scripts/train_defocus_map.py's --device picks CUDA where there is one); returns the exported network's path
    (module docstring)."""
    from torch.utils.tensorboard import SummaryWriter

    workdir = Path(workdir)
    latest = checkpoint.run_checkpoint(workdir, resume, init)
    t = cfg.training
    if t.threads:
        torch.set_num_threads(t.threads)
    photos = training_photos(cfg.data)
    device = torch.device(device or "cpu")
    torch.manual_seed(t.seed)
    net = MapNet(tuple(cfg.model.features), bands=cfg.model.bands).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=t.lr)
    step, warm_start = 0, None
    if resume:
        state = checkpoint.load(latest)
        checkpoint.load_weights_strict(net, state["model"], str(latest))
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        checkpoint.set_rng_state(state["rng"])
        warm_start = state.get("warm_start")
    elif init is not None:
        warm_start = checkpoint.warm_start_record(init, _init_weights(net, init), t.steps)
        step = warm_start["step"]
    workdir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, workdir / "config.yaml")
    eval_scenes = tuple(v.to(device) for v in draw_batch(random.Random(EVAL_SEED), photos, cfg, t.eval_scenes))
    batches = torch.utils.data.DataLoader(StepBatches(photos, cfg), batch_size=None, sampler=range(step, t.steps),
                                          num_workers=t.workers, worker_init_fn=_one_thread,
                                          generator=torch.Generator().manual_seed(t.seed),  # not the global RNG
                                          pin_memory=device.type == "cuda")
    writer = SummaryWriter(str(workdir / "tb"), purge_step=step)
    kill_at, deadline = checkpoint.run_limits(t.time_limit_minutes)
    if warm_start and not resume:
        writer.add_text("warm_start", checkpoint.warm_start_text(warm_start), step)

    def save() -> None:
        checkpoint.save_atomic({"kind": TRAINING_KIND, "config": cfg.to_dict(), "model": net.state_dict(),
                                "optimizer": opt.state_dict(), "step": step, "rng": checkpoint.rng_state(),
                                "warm_start": warm_start}, latest)

    bar = tqdm(total=t.steps, initial=step, desc="defocus map", dynamic_ncols=True)
    net.train()
    for y, true in batches:
        y, true = y.to(device, non_blocking=True), true.to(device, non_blocking=True)
        for group in opt.param_groups:
            group["lr"] = learning_rate(t, step)
        radius, scale = net(y)
        loss = map_loss(radius, scale, true, t.quantile, texture_weights(y, t.texture_weight))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % t.log_every == 0:
            radius, scale = radius.detach(), scale.detach()
            writer.add_scalar("train/loss", loss.item(), step)
            writer.add_scalar("train/nll", laplace_nll(radius, scale, true).item(), step)
            writer.add_scalar("train/mae", (radius - true).abs().mean().item(), step)
            writer.add_scalar("train/lr", opt.param_groups[0]["lr"], step)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % t.eval_every == 0 or step == t.steps:
            for key, value in evaluate(net, eval_scenes).items():
                writer.add_scalar(f"eval/{key}", value, step)
        out_of_time = time.monotonic() > deadline
        if step % t.latest_every == 0 or step == t.steps or step == kill_at or out_of_time:
            save()
        if step == kill_at:
            raise KeyboardInterrupt(f"{checkpoint.KILL_AT_STEP_ENV}={kill_at}")
        if out_of_time:
            break
    bar.close()
    writer.close()
    out = workdir / "defocus_map.pt"
    save_network(net, out, cfg.to_dict(), step=step, **({"warm_start": warm_start} if warm_start else {}))
    return out
