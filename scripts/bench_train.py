"""Training throughput (images/s) and forward time (ms per image) of a config on a device.

  python scripts/bench_train.py --config default --device cuda
  python scripts/bench_train.py --config tiny --device cpu --steps 5

Synthetic batches (data loading excluded): the numbers measure the network and optimiser.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import trange

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import synchronize  # noqa: E402  (sibling script: the benchmarks' one device sync)
from hidd.config import load_config, resolve_config_path  # noqa: E402
from hidd.losses import score_matching_loss  # noqa: E402
from hidd.models import build_model, count_parameters  # noqa: E402
from hidd.sde import build_sde  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="default")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=20, help="timed training steps (after 3 warm-up steps)")
    args = p.parse_args(argv)
    cfg = load_config(resolve_config_path(args.config), args.overrides)
    device, tc = torch.device(args.device), cfg.training
    torch.manual_seed(tc.seed)
    model = build_model(cfg).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    sde, opt = build_sde(cfg.sde), torch.optim.Adam(model.parameters(), lr=tc.lr)
    size, batch = cfg.data.image_size, tc.batch_size
    x = torch.rand(batch, cfg.model.channels, size, size, device=device)
    if tc.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.precision == "bf16")

    def train_step():
        with autocast:
            loss = score_matching_loss(model, sde, x, reduction=tc.loss_reduction)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        train_step()
    synchronize(device)
    start = time.perf_counter()
    for _ in trange(args.steps, desc="train steps"):
        train_step()
    synchronize(device)
    train_ips = batch * args.steps / (time.perf_counter() - start)

    sigma = torch.full((batch,), 1.0, device=device)
    with torch.no_grad(), autocast:
        for _ in range(3):
            model(x, sigma)
        synchronize(device)
        start = time.perf_counter()
        for _ in trange(args.steps, desc="forward"):
            model(x, sigma)
        synchronize(device)
    forward_ms = 1000 * (time.perf_counter() - start) / (args.steps * batch)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"config={args.config} params={count_parameters(model):,} device={name} threads={torch.get_num_threads()} "
          f"batch={batch} size={size} precision={tc.precision} channels_last={tc.channels_last}")
    print(f"train: {train_ips:.1f} images/s   forward: {forward_ms:.2f} ms/image")


if __name__ == "__main__":
    main()
