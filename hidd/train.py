"""Training loop of the score prior: denoising score matching on sharp images.

Single process or DDP under torchrun. A run lives in one work directory:
  config.yaml            the resolved config
  checkpoints/latest.pt  rolling checkpoint for pre-emption (--resume continues from it)
  checkpoints/ckpt_0010000.pt ...  numbered checkpoints every `checkpoint_every` steps
  tb/                    TensorBoard events: loss, learning rate, gradient norm, images/s; the denoising PSNR
                         of the EMA weights at `eval_sigmas` on held-out corpus crops (eval/) and on the public
                         test photos (test/, hidd.denoise_eval: never trained on)

A run can also start from the weights of another checkpoint (`init`: a training checkpoint or an exported one,
EMA weights only): model and EMA start from its EMA weights, the step count from its step, and Adam afresh, with
the learning rate warmed up again over `warmup` steps from there. That is how a run continues on another machine
from a checkpoint small enough to travel (scripts/export_checkpoint.py --half).
"""
from __future__ import annotations


import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from hidd import checkpoint, distributed
from hidd.config import Config, save_config
from hidd.data import train_val_datasets
from hidd.data_stream import ResumableSampler, SeededItems, fixed_items
from hidd.denoise_eval import SIZE as TEST_SIZE
from hidd.denoise_eval import denoise_psnr, public_photos
from hidd.ema import EMA
from hidd.losses import score_matching_loss
from hidd.metrics import denoising_psnr
from hidd.models import build_model, count_parameters
from hidd.sde import build_sde

@dataclass
class TrainResult:
    latest: Path  # the final rolling checkpoint
    model: torch.nn.Module  # trained weights (this rank's copy)
    ema: EMA


def _eval_batch(val_set, n: int = 8) -> torch.Tensor:
    """Fixed held-out crops: the same pixels at every evaluation and after a resume."""
    return fixed_items(val_set, min(n, max(len(val_set), 4)))


def _test_batch(model, cfg, device) -> torch.Tensor:
    """The public test photos (hidd.denoise_eval) at min(256, 4 × the crop), a multiple of the model's."""
    multiple = getattr(model, "size_multiple", 1)
    size = max(multiple, min(TEST_SIZE, 4 * cfg.data.image_size) // multiple * multiple)
    return public_photos(size, cfg.model.channels).to(device)


def _checkpoint_state(cfg, model, ema, optimizer, step, warm_start) -> dict:
    return {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
            "step": step, "rng": checkpoint.rng_state(), "config": cfg.to_dict(), "warm_start": warm_start}


def _warm_start(model, ema, init: str | Path, sde: dict | None = None) -> dict:
    """Load the EMA weights of checkpoint `init` into model and EMA (strictly); returns its step. sde: the run's
    sde section, which a checkpoint that records its own must match (a prior learns the scores of one SDE)."""
    state = checkpoint.load(init)
    if "baseline" in state:
        raise checkpoint.CheckpointError(f"{init}: a {state['baseline']} baseline checkpoint, not a score prior")
    theirs = state["config"].get("sde") or {} if isinstance(state.get("config"), dict) else {}
    differ = sorted(key for key in ("name", "sigma_min", "sigma_max")  # (num_scales: the sampler's grid, not the prior)
                    if sde is not None and key in theirs and key in sde and theirs[key] != sde[key])
    if differ:
        raise checkpoint.CheckpointError(f"{init}: trained under another SDE (" + ", ".join(
            f"sde.{key} {theirs[key]} there, {sde[key]} here" for key in differ) + "); --init needs the same")
    ema_state = state["ema"] if "ema" in state else {"weights": state["model"], "num_updates": state.get("step", 0)}
    checkpoint.load_weights_strict(model, ema_state["weights"], str(init))
    ema.load_state_dict({"num_updates": ema_state["num_updates"], "weights": model.state_dict()})
    return int(state.get("step", 0))


def train(cfg: Config, workdir: str | Path, *, resume: bool = False, device: str | None = None,
          init: str | Path | None = None) -> TrainResult:
    """Train (or resume) the score network described by `cfg` in `workdir`; a new run starts from the weights
    of checkpoint `init` where given (see the module's docstring)."""
    workdir = Path(workdir)
    latest = checkpoint.run_checkpoint(workdir, resume, init)
    ckpt_dir = latest.parent
    info = distributed.setup(device)
    tc = cfg.training
    if tc.batch_size % info.world_size:
        raise ValueError(f"training.batch_size={tc.batch_size} is not divisible by {info.world_size} processes")

    torch.manual_seed(tc.seed)
    dev = info.device
    model = build_model(cfg).to(dev)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = EMA(model, tc.ema_rate)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=(tc.beta1, 0.999), eps=tc.eps,
                                 weight_decay=tc.weight_decay, fused=dev.type == "cuda")
    sde = build_sde(cfg.sde)
    step, warm_start = 0, None
    if resume:
        state = checkpoint.load(latest)
        checkpoint.load_weights_strict(model, state["model"], str(latest))
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        warm_start = state.get("warm_start")
        checkpoint.set_rng_state(state["rng"])
    elif init is not None:
        warm_start = checkpoint.warm_start_record(init, _warm_start(model, ema, init, asdict(cfg.sde)), tc.steps)
        step = warm_start["step"]
    first_step = warm_start["step"] if warm_start else 0  # the learning rate warms up from here
    net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None) \
        if info.enabled else model

    train_set, val_set = train_val_datasets(cfg.data, cfg.model.channels)
    per_rank = tc.batch_size // info.world_size
    sampler = ResumableSampler(train_set, rank=info.rank, world_size=info.world_size, seed=tc.seed,
                               start=step * per_rank)
    loader = DataLoader(SeededItems(train_set), batch_size=per_rank, sampler=sampler, drop_last=True,
                        num_workers=cfg.data.num_workers, pin_memory=dev.type == "cuda",
                        persistent_workers=cfg.data.num_workers > 0)
    eval_images = _eval_batch(val_set).to(dev)
    test_photos = _test_batch(model, cfg, dev) if info.is_main and tc.eval_every else None

    writer = None
    if info.is_main:
        save_config(cfg, workdir / "config.yaml")
        writer = SummaryWriter(workdir / "tb")
        if step == first_step and not resume:
            writer.add_text("config", "```\n" + cfg.to_yaml() + "\n```", step)
            writer.add_scalar("model/parameters", count_parameters(model), step)
            if warm_start:
                writer.add_text("warm_start", checkpoint.warm_start_text(warm_start), step)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=tc.precision == "bf16")
    kill_at, deadline = checkpoint.run_limits(tc.time_limit_minutes)  # at kill_at: SIGKILL after the checkpoint

    bar = tqdm(total=tc.steps, initial=step, desc="train", disable=not info.is_main, dynamic_ncols=True)
    batches = iter(loader)
    tick, images_seen = time.perf_counter(), 0
    try:
        while step < tc.steps:
            final = step + 1 == tc.steps or _out_of_time(deadline, info, step)
            x0 = next(batches).to(dev, non_blocking=True)
            if tc.channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:  # linear warm-up (again after a warm start: Adam starts afresh)
                group["lr"] = tc.lr * min(1.0, (step + 1 - first_step) / max(tc.warmup, 1))
            noise = torch.Generator(device=dev).manual_seed(hash((tc.seed, step, info.rank)) & 0x7FFF_FFFF)
            with autocast:
                loss = score_matching_loss(net, sde, x0, t_min=tc.t_min, reduction=tc.loss_reduction, generator=noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            max_norm = tc.grad_clip if tc.grad_clip > 0 else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            ema.update(model)
            step += 1
            images_seen += x0.shape[0] * info.world_size
            bar.update(1)

            if step % tc.log_every == 0 or final:
                loss_value = loss.detach()
                if info.enabled:
                    torch.distributed.all_reduce(loss_value, op=torch.distributed.ReduceOp.AVG)
                if info.is_main:
                    elapsed = time.perf_counter() - tick
                    writer.add_scalar("train/loss", loss_value.item(), step)
                    writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                    writer.add_scalar("train/grad_norm", grad_norm.item(), step)
                    writer.add_scalar("train/images_per_sec", images_seen / max(elapsed, 1e-9), step)
                    bar.set_postfix(loss=f"{loss_value.item():.4g}")
                tick, images_seen = time.perf_counter(), 0
            if info.is_main and tc.eval_every and (step % tc.eval_every == 0 or final):
                with autocast:
                    scores = denoising_psnr(ema.model, eval_images, tc.eval_sigmas, seed=tc.seed)
                    tests = denoise_psnr(ema.model, test_photos, tc.eval_sigmas, seed=tc.seed).mean(axis=0)
                for sigma, value in scores.items():
                    writer.add_scalar(f"eval/denoise_psnr_sigma_{sigma:g}", value, step)
                for sigma, value in zip(tc.eval_sigmas, tests):
                    writer.add_scalar(f"test/denoise_psnr_sigma_{sigma:g}", value, step)
            if info.is_main and tc.sample_every and step % tc.sample_every == 0:
                _log_samples(writer, ema.model, sde, cfg, eval_images, step)
            if info.is_main and (step % tc.latest_every == 0 or step % tc.checkpoint_every == 0 or final):
                state = _checkpoint_state(cfg, model, ema, optimizer, step, warm_start)
                checkpoint.save_atomic(state, latest)
                if step % tc.checkpoint_every == 0:
                    checkpoint.save_atomic(state, ckpt_dir / f"ckpt_{step:07d}.pt")
                writer.flush()
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if final:
                break
    finally:  # (a Ctrl-C's line then starts on a line of its own)
        bar.close()
    if writer is not None:
        writer.close()
    distributed.barrier(info)
    distributed.cleanup()
    return TrainResult(latest=latest, model=model, ema=ema)


def _out_of_time(deadline: float, info, step: int) -> bool:
    """Whether the wall-time budget is spent; under DDP rank 0 decides (every 10 steps, to spare the
    synchronisation) so that all ranks stop at the same step."""
    if deadline == float("inf"):
        return False
    if not info.enabled:
        return time.monotonic() > deadline
    if step % 10:
        return False
    flag = torch.tensor([time.monotonic() > deadline], dtype=torch.int32, device=info.device)
    torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())


@torch.no_grad()
def _log_samples(writer, model, sde, cfg, reference, step):
    """A grid of unconditional samples from the EMA model (a quick look at what the prior learned)."""
    from hidd.sampling.unconditional import sample_grid

    images = sample_grid(model, sde, shape=(4, *reference.shape[1:]), num_steps=cfg.training.sample_steps,
                         seed=cfg.training.seed, device=reference.device)
    writer.add_images("samples", images, step)
