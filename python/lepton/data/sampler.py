"""Samplers (torch.utils.data names and semantics): the indices a DataLoader visits, in order.

A sampler is any iterable of indices (a batch sampler: of lists of indices). The random ones draw
a fresh seed from their `generator` (a lepton.Generator; the global stream when None) each time
they are iterated, as torch's do, so every epoch is shuffled anew and `manual_seed` makes the
sequence of epochs reproducible; the draws themselves are NumPy's, from that seed.
"""

import itertools
from typing import Generic, TypeVar

import numpy as np

import lepton

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]

T_co = TypeVar("T_co", covariant=True)

_CHUNK = 4096  # indices drawn at a time with replacement: num_samples may be huge (minGPT asks for 1e10)


def check_generator(generator, who):
    if generator is not None and not isinstance(generator, lepton.Generator):
        raise TypeError(f"{who}: generator must be a lepton.Generator (torch.Generator under `lepton run`) or "
                        f"None, got {type(generator).__name__}")
    return generator


def draw_seed(generator):
    """A seed drawn from `generator` (the global stream when None), advancing it."""
    return int(lepton.randint(0, 2 ** 62, (1,), generator=generator).item())


def _positive_int(value, name, who):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{who}: {name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


def _flag(value, name, who, error=ValueError):
    if not isinstance(value, bool):
        raise error(f"{who}: {name} should be a boolean value, but got {name}={value!r}")
    return value


class Sampler(Generic[T_co]):
    """Base class: subclasses define __iter__ (and usually __len__). data_source is accepted and
    ignored, as torch does, for subclasses that pass it on."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A random order of data_source's indices; with replacement=True, num_samples independent
    uniform draws; without, num_samples (default len(data_source)) taken from successive
    permutations."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = _flag(replacement, "replacement", "RandomSampler", TypeError)
        self._num_samples = num_samples
        self.generator = check_generator(generator, "RandomSampler")
        _positive_int(self.num_samples, "num_samples", "RandomSampler")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, total = len(self.data_source), self.num_samples
        if n == 0:
            raise ValueError(f"RandomSampler: can't draw {total} samples from an empty data_source")
        rng = np.random.default_rng(draw_seed(self.generator))
        if self.replacement:
            for start in range(0, total, _CHUNK):
                yield from rng.integers(0, n, size=min(_CHUNK, total - start)).tolist()
        else:
            for start in range(0, total, n):
                yield from rng.permutation(n)[:total - start].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given indices in a random order."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = check_generator(generator, "SubsetRandomSampler")

    def __iter__(self):
        order = np.random.default_rng(draw_seed(self.generator)).permutation(len(self.indices))
        for i in order.tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler[int]):
    """num_samples indices of range(len(weights)), index i drawn with probability proportional to
    weights[i] (with or without replacement)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        who = "WeightedRandomSampler"
        self.num_samples = _positive_int(num_samples, "num_samples", who)
        self.replacement = _flag(replacement, "replacement", who)
        self.generator = check_generator(generator, who)
        w = weights.detach().cpu().numpy() if isinstance(weights, lepton.Tensor) else weights
        w = np.array(w, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"{who}: weights should be a 1d sequence but given weights have shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"{who}: weights must be finite, non-negative and not all zero, got {w.tolist()[:8]}")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError(f"{who}: can't draw {num_samples} samples without replacement from "
                             f"{np.count_nonzero(w)} non-zero weights")
        self.weights = lepton.from_numpy(w)
        self._p = w / w.sum()

    def __iter__(self):
        rng = np.random.default_rng(draw_seed(self.generator))
        yield from rng.choice(len(self._p), size=self.num_samples, replace=self.replacement, p=self._p).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler[list]):
    """Lists of batch_size consecutive indices from `sampler` (any iterable of indices); the last,
    shorter one is dropped when drop_last."""

    def __init__(self, sampler, batch_size, drop_last):
        self.batch_size = _positive_int(batch_size, "batch_size", "BatchSampler")
        self.drop_last = _flag(drop_last, "drop_last", "BatchSampler")
        self.sampler = sampler

    def __iter__(self):
        indices = iter(self.sampler)
        while batch := list(itertools.islice(indices, self.batch_size)):
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
