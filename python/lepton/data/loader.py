"""DataLoader: batches from a map-style dataset, deterministic shuffling, resumable mid-epoch,
with an optional background thread preparing batches ahead.

The loader is a resumable stream with a cursor (epoch, batch) naming the next batch it will
produce. Iterating starts at the cursor and moves it as batches are handed out; handing out the
last batch of an epoch moves it to (epoch + 1, 0). So `state_dict()` taken anywhere, restored with
`load_state_dict()`, continues exactly where the first run would have, and a loop left early
continues where it stopped the next time it is iterated. The order of epoch e depends on (seed, e)
only, and a loader transform draws from a Generator seeded by (seed, e, batch index), so a resumed
run is identical to an uninterrupted one.
"""

import queue
import threading

import numpy as np

from lepton.data.collate import default_collate
from lepton.data.transforms import accepts_rng

__all__ = ["DataLoader"]

_POLL_S = 0.05  # how often a blocked producer checks whether the consumer has gone


class _Failure:
    """An exception raised while preparing a batch, carried to the consumer."""

    def __init__(self, exc):
        self.exc = exc


def _produce(fetch, batch_ids, q, stop):
    """Background thread body: fetch batches in order into q until done or stopped. It holds no
    reference to the consuming iterator, so dropping that iterator is enough to stop it."""
    try:
        for k in batch_ids:
            if stop.is_set():
                return
            item = fetch(k)
            while not stop.is_set():
                try:
                    q.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    pass
    except BaseException as exc:  # noqa: BLE001  (every failure must reach the consumer)
        q.put(_Failure(exc))


class _Prefetcher:
    def __init__(self, fetch, batch_ids, depth):
        self._q = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_produce, args=(fetch, batch_ids, self._q, self._stop),
                                        name="lepton-DataLoader-prefetch", daemon=True)
        self._thread.start()

    def get(self):
        item = self._q.get()
        if isinstance(item, _Failure):
            raise item.exc
        return item

    def close(self):
        self._stop.set()
        while True:  # free a producer blocked on a full queue
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._thread.join()


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"DataLoader: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class DataLoader:
    """Iterate over `dataset` in batches (tuples of Lepton tensors with the default collate).

    batch_size, shuffle, drop_last, collate_fn: as torch.utils.data.DataLoader. When collate_fn
    is None and the dataset has `__getitems__(indices)`, each batch is one such call.
    prefetch: how many batches a background thread prepares ahead (0: fetch in the caller).
    seed: the shuffle order of epoch e is a function of (seed, e) only.
    transform: applied to the batch's inputs (its first element, or the whole batch when it is
    not a tuple/list) after collation, called with rng= a Generator seeded by (seed, epoch, batch)
    when it accepts an `rng` argument, as the transforms of lepton.data.transforms do.
    sampler: an iterable of indices (with optional set_epoch(e), as a distributed sampler has)
    used instead of shuffle.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None, prefetch=2, seed=0,
                 transform=None, sampler=None):
        self.dataset = dataset
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.prefetch = _check_int("prefetch", prefetch, 0)
        self.seed = _check_int("seed", seed, 0)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive")
        self.shuffle, self.drop_last, self.sampler = bool(shuffle), bool(drop_last), sampler
        self.collate_fn, self.transform = collate_fn, transform
        self._transform_rng = transform is not None and accepts_rng(transform)
        self._getitems = getattr(dataset, "__getitems__", None) if collate_fn is None else None
        self._epoch, self._batch = 0, 0
        self._owner = 0  # bumped on every repositioning: only the newest iterator moves the cursor

    def __len__(self):
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
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
        if batch > len(self):
            raise ValueError(f"DataLoader.load_state_dict: batch {batch} is past this loader's {len(self)} batches")
        self._epoch, self._batch = epoch, batch
        self._owner += 1

    # ---- batches --------------------------------------------------------------------------
    def _order(self, epoch):
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            return np.fromiter(self.sampler, dtype=np.int64)
        if self.shuffle:
            return np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.dataset))
        return np.arange(len(self.dataset))

    def _fetch(self, epoch, order, k):
        ids = order[k * self.batch_size:(k + 1) * self.batch_size].tolist()
        if self._getitems is not None:
            batch = self._getitems(ids)
        else:
            batch = (self.collate_fn or default_collate)([self.dataset[i] for i in ids])
        if self.transform is None:
            return batch
        kwargs = {"rng": np.random.default_rng([self.seed, 1, epoch, k])} if self._transform_rng else {}
        if not isinstance(batch, (tuple, list)):
            return self.transform(batch, **kwargs)
        fields = [self.transform(batch[0], **kwargs), *batch[1:]]
        return type(batch)(*fields) if hasattr(batch, "_fields") else type(batch)(fields)

    def __iter__(self):
        # The cursor is read at the first next(); from then on this iterator alone moves it, until
        # another iterator starts or the loader is repositioned.
        self._owner += 1
        owner = self._owner
        epoch, start, n = self._epoch, self._batch, len(self)
        if start >= n:  # nothing left in this epoch
            self._epoch, self._batch = epoch + 1, 0
            return
        order = self._order(epoch)
        fetch = lambda k: self._fetch(epoch, order, k)  # noqa: E731
        prefetcher = _Prefetcher(fetch, range(start, n), self.prefetch) if self.prefetch else None
        try:
            for k in range(start, n):
                batch = prefetcher.get() if prefetcher else fetch(k)
                if owner == self._owner:
                    self._epoch, self._batch = (epoch, k + 1) if k + 1 < n else (epoch + 1, 0)
                yield batch
        finally:
            if prefetcher:
                prefetcher.close()

