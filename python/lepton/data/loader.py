"""DataLoader (torch.utils.data's): batches from a map-style or iterable dataset, deterministic
shuffling, resumable mid-epoch, loaded in the caller, one prefetch thread or worker threads.

The loader is a resumable stream with a cursor (epoch, batch) naming the next batch it will
produce. Iterating starts at the cursor and moves it as batches are handed out; handing out the
last batch of an epoch moves it to (epoch + 1, 0). So `state_dict()` taken anywhere, restored with
`load_state_dict()`, continues exactly where the first run would have, and a loop left early
continues where it stopped the next time it is iterated (torch starts the epoch over). The
order of epoch e depends on (seed, e) only, and a loader transform draws from a Generator seeded
by (seed, e, batch index), so a resumed run is identical to an uninterrupted one.
"""

import functools
import itertools
import multiprocessing
import numbers

import numpy as np

import lepton
from lepton.data.collate import default_collate, default_convert
from lepton.data.dataset import IterableDataset, batch_getter
from lepton.data.sampler import BatchSampler, check_generator
from lepton.data.transforms import accepts_rng
from lepton.data.worker import Pool, WorkerInfo, run_inline

__all__ = ["DataLoader"]

_EXHAUSTED = object()  # what a stream batcher returns once its iterator has run out


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"DataLoader: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_workers(num_workers, prefetch_factor, persistent_workers, worker_init_fn, timeout):
    """The worker options, checked as torch does; returns prefetch_factor (None without workers)."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout < 0:
        raise ValueError(f"DataLoader: timeout option should be a non-negative number of seconds, got {timeout!r}")
    if persistent_workers and num_workers == 0:
        raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
    if worker_init_fn is not None and not callable(worker_init_fn):
        raise TypeError(f"DataLoader: worker_init_fn must be callable, got {type(worker_init_fn).__name__}")
    if num_workers == 0:
        if prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified with num_workers > 0 "
                             "(use prefetch= to load ahead without workers)")
        return None
    return _check_int("prefetch_factor", 2 if prefetch_factor is None else prefetch_factor, 1)


def _check_sampling(iterable, batch_size, shuffle, sampler, batch_sampler, drop_last):
    """The options that pick the samples, checked as torch does; returns the batch size (None when
    batch_sampler makes the batches or automatic batching is off)."""
    if iterable:
        for name, value in [("shuffle", shuffle or None), ("sampler", sampler), ("batch_sampler", batch_sampler)]:
            if value is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, but got "
                                 f"{name}={value!r}")
    if sampler is not None and shuffle:
        raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                             "sampler, and drop_last")
        return None
    if batch_size is None:
        if drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")
        return None
    return _check_int("batch_size", batch_size, 1)


def _check_context(context, num_workers):
    """multiprocessing_context, validated as torch does (workers are threads: it selects nothing)."""
    if context is None:
        return None
    if num_workers == 0:
        raise ValueError(f"DataLoader: multiprocessing_context can only be used with multi-process loading "
                         f"(num_workers > 0), but got num_workers={num_workers}")
    if isinstance(context, str):
        methods = multiprocessing.get_all_start_methods()
        if context not in methods:
            raise ValueError(f"DataLoader: multiprocessing_context should specify a valid start method in "
                             f"{methods!r}, but got multiprocessing_context={context!r}")
        return multiprocessing.get_context(context)
    if not isinstance(context, multiprocessing.context.BaseContext):
        raise TypeError(f"DataLoader: multiprocessing_context should be a context object or a start method name, "
                        f"but got {context!r}")
    return context


def _set_epoch(sampler, epoch):
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    return sampler


class _StreamBatches:
    """Batches of consecutive items of one iterator over an IterableDataset, made on the first call
    (in the worker thread that makes every batch of this batcher); _EXHAUSTED once it is done."""

    def __init__(self, dataset, batch_size, drop_last, collate):
        self._dataset, self._batch_size, self._drop_last, self._collate = dataset, batch_size, drop_last, collate
        self._items = None
        self.done = False

    def __call__(self):
        if self.done:
            return _EXHAUSTED
        if self._items is None:
            self._items = iter(self._dataset)
        if self._batch_size is None:
            item = next(self._items, _EXHAUSTED)
            self.done = item is _EXHAUSTED
            return item if self.done else self._collate(item)
        items = list(itertools.islice(self._items, self._batch_size))
        self.done = len(items) < self._batch_size
        if not items or (self.done and self._drop_last):
            return _EXHAUSTED
        return self._collate(items)


class DataLoader:
    """Iterate over `dataset` in batches, with torch.utils.data.DataLoader's arguments and meaning.

    batch_size=None turns automatic batching off (each item of the sampler is one sample, passed
    through collate_fn, default default_convert). sampler: any iterable of indices; batch_sampler:
    any iterable of index lists; a sampler with set_epoch(e) (a DistributedSampler) is told each
    epoch. Batches come in order, however they are loaded:
      num_workers=0: in the caller, or with prefetch > 0 (Lepton's, default 2) that many batches
        ahead by one background thread;
      num_workers=N: by N worker threads (not processes: see lepton.data.worker), batch k by
        worker k % N, prefetch_factor (default 2) batches per worker ahead; worker_init_fn(id)
        runs first in each, get_worker_info() describes the worker inside it, and
        persistent_workers=True keeps the threads (and what worker_init_fn set up) across epochs.
        An IterableDataset is iterated by every worker, batches taken from the workers in turn.
    timeout (seconds, 0: none): waiting longer than that for a batch from a background thread
    raises RuntimeError. pin_memory is accepted and leaves batches as they are (Lepton copies to
    the GPU from ordinary memory); pin_memory_device and in_order (batches always come in order)
    are accepted; multiprocessing_context is validated as torch does and selects nothing.
    When collate_fn is default_collate and the dataset has `__getitems__(indices)`, each batch is
    one such call.

    Lepton's additions: seed: the shuffle order of epoch e is a function of (seed, e) only
    (default: the generator's initial seed, the global generator's when generator is None), and
    the worker seeds derive from it; transform: applied to each batch's inputs (its first
    element, or the whole batch when it is not a tuple/list) after collation, called with rng= a
    NumPy Generator seeded by (seed, epoch, batch) when it accepts an `rng` argument, as the
    transforms of lepton.data.transforms do.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True, prefetch=2, seed=None, transform=None):
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.prefetch_factor = _check_workers(self.num_workers, prefetch_factor, persistent_workers, worker_init_fn,
                                              timeout)
        if not isinstance(pin_memory_device, str):
            raise TypeError(f"DataLoader: pin_memory_device must be a str, got {type(pin_memory_device).__name__}")
        self._iterable = isinstance(dataset, IterableDataset)
        batch_size = _check_sampling(self._iterable, batch_size, shuffle, sampler, batch_sampler, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self._auto_batch = batch_size is not None or batch_sampler is not None
        if collate_fn is None:
            collate_fn = default_collate if self._auto_batch else default_convert
        self.collate_fn = collate_fn
        self.pin_memory, self.pin_memory_device, self.in_order = bool(pin_memory), pin_memory_device, bool(in_order)
        self.timeout, self.worker_init_fn = timeout, worker_init_fn
        self.multiprocessing_context = _check_context(multiprocessing_context, self.num_workers)
        self.persistent_workers = bool(persistent_workers)
        self.generator = check_generator(generator, "DataLoader")
        self.prefetch = _check_int("prefetch", prefetch, 0)
        if seed is None:
            seed = (lepton.default_generator if generator is None else generator).initial_seed()
        self.seed = _check_int("seed", seed, 0)
        self.transform = transform
        self._transform_rng = transform is not None and accepts_rng(transform)
        self._getitems = (batch_getter(dataset) if self._auto_batch and self.collate_fn is default_collate
                          and not self._iterable else None)
        self._workers = None  # the pool kept across epochs with persistent_workers
        self._epoch, self._batch = 0, 0
        self._owner = 0  # bumped on every repositioning: only the newest iterator moves the cursor

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)
        elif self.batch_sampler is not None:
            return len(self.batch_sampler)
        else:
            n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # ---- position -------------------------------------------------------------------------
    def set_epoch(self, epoch):
        """Start epoch `epoch` at its first batch; a no-op when the cursor is already in that epoch
        (so calling it after load_state_dict keeps the resume point)."""
        epoch = _check_int("epoch", epoch, 0)
        if epoch != self._epoch:
            self._epoch, self._batch = epoch, 0
            self._owner += 1

    def state_dict(self):
        return {"epoch": self._epoch, "batch": self._batch}

    def load_state_dict(self, state):
        epoch = _check_int("state 'epoch'", state["epoch"], 0)
        batch = _check_int("state 'batch'", state["batch"], 0)
        try:
            n = len(self)
        except TypeError:  # an IterableDataset without len(): any position
            n = batch
        if batch > n:
            raise ValueError(f"DataLoader.load_state_dict: batch {batch} is past this loader's {n} batches")
        self._epoch, self._batch = epoch, batch
        self._owner += 1

    # ---- batches --------------------------------------------------------------------------
    def _index_batches(self, epoch):
        """The epoch's batches of indices (single indices without automatic batching)."""
        if self.batch_sampler is not None:
            return iter(_set_epoch(self.batch_sampler, epoch))
        if self.sampler is not None:
            indices = _set_epoch(self.sampler, epoch)
        elif self.shuffle:
            indices = np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.dataset)).tolist()
        else:
            indices = range(len(self.dataset))
        if self.batch_size is None:
            return iter(indices)
        return iter(BatchSampler(indices, self.batch_size, self.drop_last))

    def _transformed(self, batch, epoch, k):
        if self.transform is None:
            return batch
        kwargs = {"rng": np.random.default_rng([self.seed, 1, epoch, k])} if self._transform_rng else {}
        if not isinstance(batch, (tuple, list)):
            return self.transform(batch, **kwargs)
        fields = [self.transform(batch[0], **kwargs), *batch[1:]]
        return type(batch)(*fields) if hasattr(batch, "_fields") else type(batch)(fields)

    def _fetch(self, epoch, k, ids):
        if self._getitems is not None:
            batch = self._getitems(ids)
        elif self._auto_batch:
            batch = self.collate_fn([self.dataset[i] for i in ids])
        else:
            batch = self.collate_fn(self.dataset[ids])
        return self._transformed(batch, epoch, k)

    def _pool(self, epoch):
        """The threads that load this epoch's batches: None to load in the caller."""
        if self.num_workers == 0:
            return Pool([None], "lepton-DataLoader-prefetch") if self.prefetch else None
        if self._workers is not None:
            return self._workers
        base = int(np.random.default_rng([self.seed, 2, epoch]).integers(2 ** 62))
        infos = [WorkerInfo(id=i, num_workers=self.num_workers, seed=base + i, dataset=self.dataset)
                 for i in range(self.num_workers)]
        pool = Pool(infos, "lepton-DataLoader-worker-{}", self.worker_init_fn)
        if self.persistent_workers:
            self._workers = pool
        return pool

    def _results(self, pool, jobs):
        if pool is None:
            return run_inline(jobs)
        depth = self.prefetch_factor * self.num_workers if self.num_workers else self.prefetch
        return pool.run(jobs, depth, self.timeout)

    def _map_batches(self, pool, epoch, start):
        """(batch, more) from batch `start` of the epoch of a map-style dataset."""
        threads = pool.size if pool is not None else 1
        index_batches = itertools.islice(self._index_batches(epoch), start, None)
        jobs = ((k % threads, functools.partial(self._fetch, epoch, k, ids))
                for k, ids in enumerate(index_batches, start))
        return self._results(pool, jobs)

    def _stream_batches(self, pool, epoch, start):
        """(batch, True) from batch `start` of an IterableDataset's stream (every thread reads its own
        iterator; batches taken from the threads in turn, skipping those that ran out)."""
        batchers = [_StreamBatches(self.dataset, self.batch_size, self.drop_last, self.collate_fn)
                    for _ in range(pool.size if pool is not None else 1)]

        def jobs():
            while not all(b.done for b in batchers):
                yield from ((i, b) for i, b in enumerate(batchers) if not b.done)

        k = 0
        for batch, _ in self._results(pool, jobs()):
            if batch is _EXHAUSTED:
                continue
            if k >= start:
                yield self._transformed(batch, epoch, k), True
            k += 1

    def __iter__(self):
        # The cursor is read at the first next(); from then on this iterator alone moves it, until
        # another iterator starts or the loader is repositioned.
        self._owner += 1
        owner = self._owner
        epoch, k = self._epoch, self._batch
        pool = self._pool(epoch)
        batches = (self._stream_batches if self._iterable else self._map_batches)(pool, epoch, k)
        try:
            for batch, more in batches:
                k += 1
                if owner == self._owner:
                    self._epoch, self._batch = (epoch, k) if more else (epoch + 1, 0)
                yield batch
            if owner == self._owner:
                self._epoch, self._batch = epoch + 1, 0
        finally:
            batches.close()
            if pool is not None and pool is not self._workers:
                pool.close()
