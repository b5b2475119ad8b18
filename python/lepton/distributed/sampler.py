"""DistributedSampler: each rank reads its own share of a dataset, as torch's does."""

import math

import numpy as np

from lepton.distributed import collectives as C


class DistributedSampler:
    """Indices of rank `rank`'s share of `dataset` (an equal number on every rank).

    shuffle: a new permutation each epoch (call set_epoch(e) before each epoch; DataLoader does
    when given the sampler), the same on all ranks since it depends only on seed + epoch.
    drop_last=False pads by repeating indices from the start so every rank gets
    ceil(len/num_replicas) samples; True drops the tail to len // num_replicas each.
    num_replicas/rank default to the default process group's (1 and 0 without one).
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None:
            num_replicas = C.get_world_size() if C.is_initialized() else 1
        if rank is None:
            rank = C.get_rank() if C.is_initialized() else 0
        num_replicas, rank = int(num_replicas), int(rank)
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is outside [0, {num_replicas - 1}]")
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
        if self.total_size > n:  # pad (repeating the whole list when it is shorter than the padding)
            indices = np.resize(indices, self.total_size)
        indices = indices[self.rank:self.total_size:self.num_replicas]
        return iter(indices.tolist())
