"""Datasets (torch.utils.data names): Dataset, IterableDataset, TensorDataset, ConcatDataset,
ChainDataset, StackDataset, Subset, random_split.

A map-style dataset may define `__getitems__(indices)` returning the already-collated batch (what
default_collate would make of the samples; a tuple of tensors for TensorDataset): the DataLoader
calls it instead of a Python loop over `__getitem__`, which is what keeps batch assembly far below
the cost of a training step. (torch's `__getitems__` returns the list of samples instead.)
"""

import bisect
import collections.abc
import math
import warnings
from typing import Generic, TypeVar

import numpy as np

from lepton import _C
from lepton.data.collate import default_collate, to_tensor
from lepton.data.sampler import check_generator, draw_seed

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset", "StackDataset", "Subset",
           "random_split"]

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """Base class of map-style datasets: subclasses define __getitem__(i) and usually __len__
    (and optionally __getitems__). `a + b` is ConcatDataset([a, b])."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co], collections.abc.Iterable):
    """Base class of datasets that are a stream of samples: subclasses define __iter__. The
    DataLoader batches consecutive samples; with num_workers > 0 every worker thread iterates the
    dataset itself, so split the stream with get_worker_info() to avoid duplicates. `a + b` is
    ChainDataset([a, b])."""

    def __add__(self, other):
        return ChainDataset([self, other])


def batch_getter(dataset):
    """dataset.__getitems__ when it gives the batch __getitem__ would: None when there is none,
    or when a subclass overrides __getitem__ below the class that defines __getitems__ (the
    inherited __getitems__ would skip the override)."""
    mro = type(dataset).__mro__
    getitems = next((c for c in mro if "__getitems__" in c.__dict__), None)
    getitem = next((c for c in mro if "__getitem__" in c.__dict__), None)
    if getitems is None or (getitem not in (None, getitems) and issubclass(getitem, getitems)):
        return None
    return dataset.__getitems__


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


class ConcatDataset(Dataset):
    """The samples of each of `datasets` in turn (map-style datasets)."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError(f"ConcatDataset does not support IterableDataset ({type(d).__name__}); "
                                f"use ChainDataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for {n} samples")
        index = index + n if index < 0 else index
        d = bisect.bisect_right(self.cumulative_sizes, index)
        return self.datasets[d][index - (self.cumulative_sizes[d - 1] if d else 0)]


class ChainDataset(IterableDataset):
    """The samples of each of `datasets` (IterableDatasets) in turn, read on the fly."""

    def __init__(self, datasets):
        self.datasets = datasets

    def _parts(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset only supports IterableDataset, got {type(d).__name__}")
            yield d

    def __iter__(self):
        for d in self._parts():
            yield from d

    def __len__(self):
        return sum(len(d) for d in self._parts())


class StackDataset(Dataset):
    """Sample i is (d[i] for d in datasets) given positionally, or {name: d[i]} given by keyword."""

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError("StackDataset: give datasets positionally (tuple samples) or by keyword (dict "
                             "samples), not both")
        if not args and not kwargs:
            raise ValueError("StackDataset: at least one dataset should be passed")
        self.datasets = args or kwargs
        lengths = [len(d) for d in (args or kwargs.values())]
        if len(set(lengths)) != 1:
            raise ValueError(f"StackDataset: size mismatch between datasets: lengths {lengths}")
        self._length = lengths[0]

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[self.indices[index].tolist()]
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices):
        mapped = self.indices[np.asarray(indices, dtype=np.int64)].tolist()
        fetch = batch_getter(self.dataset)
        return fetch(mapped) if fetch is not None else default_collate([self.dataset[i] for i in mapped])


def _split_lengths(n, lengths):
    """Split sizes, as torch: fractions (summing to 1) get floor(n * f) each, the remainder handed
    out one by one from the first split on; otherwise lengths, which must sum to n."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:
        for i, f in enumerate(lengths):
            if not 0 <= f <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {f}, not between 0 and 1")
        out = [math.floor(n * f) for f in lengths]
        for i in range(n - sum(out)):
            out[i % len(out)] += 1
        for i, size in enumerate(out):
            if size == 0:
                warnings.warn(f"random_split: split {i} is empty ({lengths[i]} of {n} samples)", stacklevel=3)
        return out
    if any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions that sum to 1, "
                         f"got {lengths}")
    if total != n:
        raise ValueError(f"random_split: lengths {lengths} sum to {total}, the dataset has {n} samples")
    return [int(x) for x in lengths]


def random_split(dataset, lengths, generator=None, *, seed=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1). The
    permutation comes from `seed` alone when given, else from a seed drawn from `generator` (a
    lepton.Generator; the global stream when None)."""
    n = len(dataset)
    sizes = _split_lengths(n, lengths)
    if seed is None:
        seed = draw_seed(check_generator(generator, "random_split"))
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + sizes)
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
