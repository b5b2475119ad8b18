"""Map-style datasets (PyTorch's torch.utils.data names): Dataset, TensorDataset, Subset, random_split.

A dataset may define `__getitems__(indices)` returning the already-collated batch (a tuple of
tensors); the DataLoader calls it instead of a Python loop over `__getitem__`, which is what keeps
batch assembly far below the cost of a training step.
"""

import math

import numpy as np

from lepton import _C
from lepton.data.collate import default_collate, to_tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split"]


class Dataset:
    """Base class: subclasses define __getitem__(i) and __len__ (and optionally __getitems__)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


def _gather(t, idx):
    """t[idx] along dim 0 as a new Lepton tensor. CPU tensors go through NumPy's take on a shared
    view, far faster than index_select today; device and bfloat16 tensors use index_select.
    Batches are data, outside any autograd graph."""
    if isinstance(t, np.ndarray):
        return to_tensor(np.take(t, idx, axis=0))
    t = t.detach()
    if t.is_cuda or t.dtype == _C.dtype.bfloat16:
        index = _C.from_numpy(idx)
        return t.index_select(0, index.to(t.device) if t.is_cuda else index)
    return _C.from_numpy(np.take(t.numpy(), idx, axis=0))


class TensorDataset(Dataset):
    """Sample i is (t[i] for t in tensors); tensors are Lepton tensors or NumPy arrays, first dims equal."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for t in tensors:
            if not isinstance(t, (_C.Tensor, np.ndarray)):
                raise TypeError(f"TensorDataset takes Lepton tensors or NumPy arrays, got {type(t).__name__}")
            if t.ndim == 0:
                raise ValueError("TensorDataset: a 0-d tensor has no samples")
        sizes = [int(t.shape[0]) for t in tensors]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: first dimensions differ: {[tuple(t.shape) for t in tensors]}")
        self.tensors = tensors

    def __len__(self):
        return int(self.tensors[0].shape[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices):
        """One gather per tensor: the batch as a tuple of Lepton tensors."""
        idx = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"TensorDataset: index out of range for {n} samples")
        idx = np.where(idx < 0, idx + n, idx)
        return tuple(_gather(t, idx) for t in self.tensors)


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices):
        mapped = self.indices[np.asarray(indices, dtype=np.int64)].tolist()
        fetch = getattr(self.dataset, "__getitems__", None)
        return fetch(mapped) if fetch is not None else default_collate([self.dataset[i] for i in mapped])


def _split_lengths(n, lengths):
    lengths = list(lengths)
    if not lengths or any(x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative, got {lengths}")
    if all(isinstance(x, (int, np.integer)) for x in lengths):
        if sum(lengths) != n:
            raise ValueError(f"random_split: lengths {lengths} sum to {sum(lengths)}, the dataset has {n} samples")
        return [int(x) for x in lengths]
    if not math.isclose(sum(lengths), 1.0, abs_tol=1e-6):
        raise ValueError(f"random_split: fractions {lengths} must sum to 1")
    # as torch: floor each share, then hand the remainder out one by one from the first split on
    out = [int(math.floor(n * f)) for f in lengths]
    for i in range(n - sum(out)):
        out[i % len(out)] += 1
    return out


def random_split(dataset, lengths_or_fractions, seed=0):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1); the
    permutation is a function of `seed` only."""
    n = len(dataset)
    lengths = _split_lengths(n, lengths_or_fractions)
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
