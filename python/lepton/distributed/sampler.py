"""DistributedSampler: each rank reads its own share of a dataset, as torch's does."""

import math

import numpy as np

from lepton.distributed import collectives as C


def _replicas(num_replicas, rank, who):
    """(num_replicas, rank), defaulting to the default process group's (1 and 0 without one)."""
    if num_replicas is None:
        num_replicas = C.get_world_size() if C.is_initialized() else 1
    if rank is None:
        rank = C.get_rank() if C.is_initialized() else 0
    num_replicas, rank = int(num_replicas), int(rank)
    if num_replicas < 1:
        raise ValueError(f"{who}: num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"{who}: rank {rank} is outside [0, {num_replicas - 1}]")
    return num_replicas, rank


class DistributedSampler:
    """Indices of rank `rank`'s share of `dataset` (an equal number on every rank).

    shuffle: a new permutation each epoch (call set_epoch(e) before each epoch; DataLoader does
    when given the sampler), the same on all ranks since it depends only on seed + epoch.
    drop_last=False pads by repeating indices from the start so every rank gets
    ceil(len/num_replicas) samples; True drops the tail to len // num_replicas each.
    num_replicas/rank default to the default process group's (1 and 0 without one).
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        num_replicas, rank = _replicas(num_replicas, rank, "DistributedSampler")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = bool(shuffle), int(seed), bool(drop_last), 0
        n = len(dataset)
        self.num_samples = n // num_replicas if drop_last else math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        return iter(_shard(indices, self.num_replicas, self.rank, self.total_size).tolist())


def _shard(indices, num_replicas, rank, total_size):
    """Every num_replicas-th of `indices` from `rank`, padded (repeating from the start) or cut
    to total_size first, so that every rank gets total_size / num_replicas."""
    if total_size > len(indices):  # pad (repeating the whole list when it is shorter than the padding)
        indices = np.resize(indices, total_size)
    return indices[rank:total_size:num_replicas]


class ShardSampler:
    """Rank `rank`'s share of the indices another sampler yields (or of range(n) for an int), for
    loaders whose order comes from their own sampler (e.g. random windows of a text).

    even=True splits like DistributedSampler (padded, or cut with drop_last, to the same count on
    every rank: the ranks of a training step must run the same number of batches); even=False
    strides without padding (rank r takes indices r, r + num_replicas, ...: every sample exactly
    once over all ranks, as exact evaluation needs). set_epoch is passed on to `base`.
    """

    def __init__(self, base, num_replicas=None, rank=None, even=True, drop_last=False):
        self.num_replicas, self.rank = _replicas(num_replicas, rank, "ShardSampler")
        self.base = base
        self.even, self.drop_last = bool(even), bool(drop_last)

    def set_epoch(self, epoch):
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def _total(self, n):
        if not self.even:
            return n
        per_rank = n // self.num_replicas if self.drop_last else math.ceil(n / self.num_replicas)
        return per_rank * self.num_replicas

    def __len__(self):
        n = self.base if isinstance(self.base, int) else len(self.base)
        total = self._total(n)
        return total // self.num_replicas if self.even else len(range(self.rank, n, self.num_replicas))

    def __iter__(self):
        indices = np.arange(self.base) if isinstance(self.base, int) else np.fromiter(self.base, dtype=np.int64)
        return iter(_shard(indices, self.num_replicas, self.rank, self._total(len(indices))).tolist())
