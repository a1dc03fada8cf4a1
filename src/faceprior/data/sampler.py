"""A resumable, seeded training sampler that hands every sample its own augmentation seed.

The sampler yields ``(index, seed)`` pairs. The order of an epoch and every sample's seed are a pure
function of ``(seed, epoch)``, so a run resumed from a checkpoint sees exactly the samples, flips and
crops the uninterrupted run would have seen, whatever the number of DataLoader workers. Resuming in
the middle of an epoch skips the samples the checkpointed run had already consumed.

It subclasses :class:`~torch.utils.data.distributed.DistributedSampler` so that Lightning neither
replaces nor wraps it under DDP; each rank takes every ``num_replicas``-th entry of the shared order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data.distributed import DistributedSampler


class SeededSampler(DistributedSampler[Any]):
    """Shuffled ``(index, seed)`` pairs per epoch, resumable mid-epoch.

    Args:
        data_source: the dataset (only its length is used).
        seed: base seed of the order and of the per-sample seeds.
        num_replicas: number of ranks (1 without DDP).
        rank: this rank.
        shuffle: shuffle the order every epoch (the per-sample seeds change every epoch either way).
        drop_last: drop the tail that does not divide evenly between ranks.
    """

    def __init__(
        self,
        data_source: Sized,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            data_source,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.skip = 0

    def skip_next(self, count: int) -> None:
        """Skip the first ``count`` samples (of this rank) in the next iteration only."""
        if count < 0:
            raise ValueError(f"cannot skip a negative number of samples ({count})")
        self.skip = int(count)

    def order(self, epoch: int) -> tuple[list[int], list[int]]:
        """The full (all ranks) order and per-position seeds of ``epoch``."""
        n = len(self.dataset)  # type: ignore[arg-type]
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        indices = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        seeds = torch.randint(0, 2**62, (n,), generator=gen)
        return indices.tolist(), seeds.tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices, seeds = self.order(self.epoch)
        pairs = list(zip(indices, seeds, strict=True))
        if self.drop_last:
            pairs = pairs[: self.total_size]
        else:
            pairs += pairs[: self.total_size - len(pairs)]
        mine = pairs[self.rank : self.total_size : self.num_replicas]
        start, self.skip = self.skip, 0
        return iter(mine[start:])


class EvalSampler(DistributedSampler[Any]):
    """In-order evaluation indices split between ranks without padding or dropping.

    Lightning's default distributed sampler pads the last round with repeated samples so that every
    rank gets the same number; repeated images would be counted twice in the metric means and the
    per-image tables. Here rank ``r`` takes positions ``r, r + world, ...`` of ``0 .. n-1``, so the
    ranks together see every image exactly once (the last batches may differ in size, which is fine
    for evaluation: nothing is synchronised per step). With one rank it is the sequential order.
    Being a :class:`DistributedSampler`, Lightning keeps it as it is under DDP.
    """

    def __init__(self, data_source: Sized, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(
            data_source,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=False,
            drop_last=False,
        )
        self.num_samples = len(range(rank, len(data_source), num_replicas))
        self.total_size = len(data_source)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples
