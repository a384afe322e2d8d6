"""torch.distributed set-up for `torchrun` launches (DDP training, sharded reconstruction); a no-op for single
processes."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from hidd.devices import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_rank() -> int:
    """This process's rank in a torchrun launch (0 for a single process), from the environment torchrun sets."""
    return int(os.environ.get("RANK", "0"))


def setup(device: str | None = None, timeout: timedelta | None = None) -> DistInfo:
    """Join the process group that torchrun describes in the environment (NCCL on GPU, gloo on CPU); on a GPU each
    process takes the card of its local rank (ValueError in one line where the machine has fewer cards). timeout: how
    long a collective may wait for the slowest rank (torch's default where None: 10 min NCCL, 30 min gloo)."""
    dev = resolve_device(device)
    want_cuda = dev.type == "cuda"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo(device=dev)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"torchrun: local rank {local_rank} has no GPU of its own ({torch.cuda.device_count()} "
                             "visible); give --nproc_per_node at most the number of GPUs")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo", timeout=timeout)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather(info: DistInfo, value) -> list:
    """Every rank's `value` (any picklable object), in rank order, on every rank; [value] for a single process."""
    if not info.enabled:
        return [value]
    values = [None] * info.world_size
    dist.all_gather_object(values, value)
    return values
