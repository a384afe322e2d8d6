"""Training loop of the learned baselines (hidd-train-baseline): one process, one device.

The run lives in one work directory, like the score prior's (hidd.train):
  config.yaml            the resolved config
  checkpoints/latest.pt  rolling checkpoint: weights, optimisers, step, RNG states (--resume continues from it)
  tb/                    TensorBoard: losses, learning rate, held-out PSNR of the restored and the input crops

Each step reads sharp crops from the resumable seeded stream (hidd.data_stream) and synthesises their defocused
versions with a camera drawn from a seed of (training seed, step) (hidd.baselines.pairs), so a resumed run
sees exactly the batches an uninterrupted one would have. The synthesis runs in the DataLoader's workers
(data.num_workers; 0: in the training process), a whole step's batch per item, so that on a GPU the camera
model keeps up. Unpaired training (CycleGAN) reads twice the batch: the first half is the sharp side, the
second half is blurred: disjoint crops, never a pair.

A new run can start from another checkpoint's weights (`init`): a training checkpoint's whole network, or an
exported one's restorer (CycleGAN's other generator and discriminators then start afresh), its step, and new
optimisers: how training continues from a checkpoint small enough to travel.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from hidd import checkpoint
from hidd.baselines.losses import objective_for
from hidd.baselines.networks import build_network
from hidd.baselines.pairs import synthesize
from hidd.config import save_config
from hidd.data import train_val_datasets
from hidd.data_stream import ResumableSampler, SeededItems, fixed_items
from hidd.devices import resolve_device
from hidd.metrics import psnr

EVAL_SEED = 1_000_003  # the held-out pairs' camera draws (fixed: the same pairs at every evaluation)


class StepItems(Sampler):
    """(step, the step's `per_step` (index, seed) items) from a ResumableSampler, step after step."""

    def __init__(self, items: ResumableSampler, per_step: int, first_step: int):
        self.items, self.per_step, self.first_step = items, per_step, first_step

    def __iter__(self):
        stream, step = iter(self.items), self.first_step
        while True:
            yield step, [next(stream) for _ in range(self.per_step)]
            step += 1


class StepPairs(Dataset):
    """One step's training batch: (sharp, blurred, noise level), the blurred side synthesised with the step's seed."""

    def __init__(self, dataset, cfg, unpaired: bool):
        self.items, self.cfg, self.unpaired = SeededItems(dataset), cfg, unpaired

    def __len__(self):
        return len(self.items)

    def __getitem__(self, item):
        step, items = item
        crops = torch.stack([self.items[i] for i in items])
        half = self.cfg.training.batch_size
        sharp, source = (crops[:half], crops[half:]) if self.unpaired else (crops, crops)
        blurred, level = synthesize(source, self.cfg.degradation, hash((self.cfg.training.seed, step)) & 0x7FFF_FFFF)
        return sharp, blurred, level


def warm_start(network, init: str | Path, name: str) -> int:
    """Load checkpoint `init` (a training one: the whole network; an exported one: its restorer) strictly into
    `network`; returns its step."""
    state = checkpoint.load(init)
    if state.get("baseline") != name:
        raise checkpoint.CheckpointError(f"{init}: not a {name} checkpoint ({state.get('baseline', 'a score prior')})")
    target = network.restorer() if state.get("restorer_only") else network
    checkpoint.load_weights_strict(target, state["model"], str(init))
    return int(state["step"])


def learning_rate(tc, step: int, warm_from: int | None = None) -> float:
    """Constant, then linear decay to 0 over the last (1 − lr_decay_from) of the steps; after a warm start at step
    `warm_from`, ramped up linearly over the `warmup` steps from there (Adam's moments start at zero: full steps at
    once would throw the loaded weights off)."""
    start = tc.lr_decay_from * tc.steps
    rate = tc.lr if step < start else tc.lr * max(0.0, (tc.steps - step) / max(tc.steps - start, 1))
    if warm_from is not None:
        rate *= min(1.0, (step + 1 - warm_from) / max(tc.warmup, 1))
    return rate


def held_out_pairs(val_set, cfg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed held-out (sharp, blurred, noise level) crops."""
    sharp = fixed_items(val_set, cfg.training.eval_pairs)
    blurred, level = synthesize(sharp, cfg.degradation, EVAL_SEED + cfg.training.seed)
    return sharp, blurred, level


@torch.no_grad()
def evaluate(network, sharp, blurred, level) -> tuple[float, float]:
    """Mean PSNR of the restored and of the input held-out crops."""
    network.eval()
    restored = network.restore(blurred, level).clamp(0, 1)
    network.train()
    as_hwc = lambda batch: batch.permute(0, 2, 3, 1).cpu().numpy()  # noqa: E731
    out = np.mean([psnr(r, s) for r, s in zip(as_hwc(restored), as_hwc(sharp))])
    before = np.mean([psnr(b, s) for b, s in zip(as_hwc(blurred), as_hwc(sharp))])
    return float(out), float(before)


def checkpoint_state(cfg, network, objective, step: int, init) -> dict:
    return {"baseline": cfg.model.name, "model": network.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in objective.optimizers.items()},
            "step": step, "rng": checkpoint.rng_state(), "config": cfg.to_dict(), "warm_start": init}


def train_baseline(cfg, workdir: str | Path, *, resume: bool = False, device: str | None = None,
                   init: str | Path | None = None) -> Path:
    """Train (or resume) the baseline of `cfg` (a BaselineConfig) in `workdir`, a new run from the weights of
    checkpoint `init` where given; returns the latest checkpoint."""
    workdir = Path(workdir)
    latest = checkpoint.run_checkpoint(workdir, resume, init)
    tc = cfg.training
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    dev = resolve_device(device)
    torch.manual_seed(tc.seed)
    network = build_network(cfg.model).to(dev)
    multiple = 2 * network.size_multiple
    if cfg.data.image_size % multiple:
        raise ValueError(f"data.image_size {cfg.data.image_size}: must be a multiple of {multiple} for "
                         f"{cfg.model.name} (and the Bayer mosaic)")
    objective = objective_for(network, tc)
    step, started_from = 0, None
    if resume:
        state = checkpoint.load(latest)
        checkpoint.load_weights_strict(network, state["model"], str(latest))
        for name, optimizer in objective.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        step = state["step"]
        started_from = state.get("warm_start")
        checkpoint.set_rng_state(state["rng"])
    elif init is not None:
        started_from = checkpoint.warm_start_record(init, warm_start(network, init, cfg.model.name), tc.steps)
        step = started_from["step"]

    train_set, val_set = train_val_datasets(cfg.data, cfg.model.channels)
    per_step = tc.batch_size * (2 if network.trains_unpaired else 1)
    sampler = ResumableSampler(train_set, rank=0, world_size=1, seed=tc.seed, start=step * per_step)
    loader = DataLoader(StepPairs(train_set, cfg, network.trains_unpaired), batch_size=None,
                        sampler=StepItems(sampler, per_step, step), num_workers=cfg.data.num_workers,
                        persistent_workers=cfg.data.num_workers > 0, pin_memory=dev.type == "cuda")
    eval_sharp, eval_blurred, eval_level = (t.to(dev) for t in held_out_pairs(val_set, cfg))

    save_config(cfg, workdir / "config.yaml")
    writer = SummaryWriter(workdir / "tb")
    if not resume:
        writer.add_text("config", "```\n" + cfg.to_yaml() + "\n```", step)
        writer.add_scalar("model/parameters", sum(p.numel() for p in network.restorer().parameters()), step)
        if started_from:
            writer.add_text("warm_start", checkpoint.warm_start_text(started_from), step)
    kill_at, deadline = checkpoint.run_limits(tc.time_limit_minutes)
    bar = tqdm(total=tc.steps, initial=step, desc=f"train {cfg.model.name}", dynamic_ncols=True)
    batches = iter(loader)
    network.train()
    tick, images_seen = time.perf_counter(), 0
    while step < tc.steps:
        final = step + 1 == tc.steps or time.monotonic() > deadline
        sharp, blurred, level = (t.to(dev, non_blocking=True) for t in next(batches))
        warm_from = started_from["step"] if started_from else None
        objective.set_lr(learning_rate(tc, step, warm_from))
        losses = objective.step(sharp, blurred, level)
        step += 1
        images_seen += per_step
        bar.update(1)
        if step % tc.log_every == 0 or final:
            for name, value in losses.items():
                writer.add_scalar(f"train/{name}", value, step)
            writer.add_scalar("train/lr", learning_rate(tc, step - 1, warm_from), step)
            writer.add_scalar("train/images_per_sec", images_seen / max(time.perf_counter() - tick, 1e-9), step)
            tick, images_seen = time.perf_counter(), 0
            bar.set_postfix(loss=f"{losses['loss']:.4g}")
        if tc.eval_every and (step % tc.eval_every == 0 or final):
            restored, before = evaluate(network, eval_sharp, eval_blurred, eval_level)
            writer.add_scalar("eval/psnr", restored, step)
            writer.add_scalar("eval/psnr_input", before, step)
        if step % tc.latest_every == 0 or final:
            checkpoint.save_atomic(checkpoint_state(cfg, network, objective, step, started_from), latest)
            writer.flush()
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if final:
            break
    bar.close()
    writer.close()
    return latest
