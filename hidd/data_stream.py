"""A resumable, seeded stream of training samples.

Which image a step sees and how it is cropped are functions of (seed, epoch, position)
alone, so a run resumed from a checkpoint at step s continues with exactly the batches an
uninterrupted run would have used, whatever the number of DataLoader workers.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


class SeededItems(Dataset):
    """Wraps a dataset whose augmentation draws from torch's global RNG; items are (index, seed)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG untouched
            torch.manual_seed(seed)
            return self.dataset[index]


def fixed_items(dataset: Dataset, n: int, first_seed: int = 10_000) -> torch.Tensor:
    """n items of `dataset` with fixed augmentation seeds (held-out crops: the same pixels at every
    evaluation and after a resume), stacked."""
    items = SeededItems(dataset)
    return torch.stack([items[(i % len(dataset), first_seed + i)] for i in range(n)])


class ResumableSampler(Sampler):
    """Endless epochs of a DistributedSampler's order, starting at any global sample position.

    start: how many samples this rank has already consumed (step × per-rank batch).
    """

    def __init__(self, dataset: Dataset, *, rank: int, world_size: int, seed: int, start: int = 0):
        self.order = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                        seed=seed, drop_last=False)
        self.seed, self.rank, self.start = seed, rank, start

    def __iter__(self):
        per_epoch = len(self.order)
        epoch, offset = divmod(self.start, per_epoch)
        while True:
            self.order.set_epoch(epoch)
            indices = list(self.order)
            for position in range(offset, per_epoch):
                sample_seed = hash((self.seed, self.rank, epoch, position)) & 0x7FFF_FFFF
                yield indices[position], sample_seed
            epoch, offset = epoch + 1, 0
