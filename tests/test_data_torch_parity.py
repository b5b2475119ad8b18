"""lepton.data against torch.utils.data (the oracle): the same datasets through both DataLoaders give
the same batches; samplers, splits, worker threads, timeouts and bad arguments behave as torch's."""

import collections
import threading
import time
import warnings

import numpy as np
import pytest

import lepton
from lepton import data as L

torch = pytest.importorskip("torch")
T = torch.utils.data

Point = collections.namedtuple("Point", "x y")


# ---- comparing batches -----------------------------------------------------------------------

def _same(ours, theirs, sample):
    """ours (lepton) equals theirs (torch) in values, dtypes and structure; `sample` is one item of
    the dataset, which tells a plain tuple (Lepton keeps tuples, torch makes lists) from a list.
    Batched strings are always a list in Lepton (torch: a tuple inside tuple and list samples)."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, lepton.Tensor), type(ours)
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
        assert tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(sample, (str, bytes)) and isinstance(theirs, (list, tuple)):
        assert type(ours) is list and ours == list(theirs), (ours, theirs)
    elif not isinstance(theirs, (list, tuple, dict)):
        assert type(ours) is type(theirs) and ours == theirs, (ours, theirs)
    elif isinstance(sample, tuple) and not hasattr(sample, "_fields"):
        assert type(ours) is tuple and type(theirs) is list and len(ours) == len(theirs) == len(sample)
        for o, t, s in zip(ours, theirs, sample):
            _same(o, t, s)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for key in theirs:
            _same(ours[key], theirs[key], sample[key])
    else:  # a list or a namedtuple
        assert type(ours) is type(theirs) and len(ours) == len(theirs) == len(sample)
        for o, t, s in zip(ours, theirs, sample):
            _same(o, t, s)


def _same_batches(ours, theirs, sample):
    ours, theirs = list(ours), list(theirs)
    assert len(ours) == len(theirs) > 0
    for o, t in zip(ours, theirs):
        _same(o, t, sample)


class Items:
    """A per-sample dataset shared by both libraries (no base class); `to_tensor` makes the tensors."""

    def __init__(self, kind, n, to_tensor=None):
        self.kind, self.n, self.to_tensor = kind, n, to_tensor

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        if self.kind == "tensors":
            return self.to_tensor(rng.random((2, 3), dtype=np.float32)), self.to_tensor(np.full(2, i, np.int64))
        if self.kind == "numbers":
            return i, i / 3, i % 2 == 0
        if self.kind == "dict":
            return {"x": rng.random(4).astype(np.float32), "label": i, "name": f"s{i}", "w": float(i)}
        if self.kind == "ordered":
            return collections.OrderedDict(b=np.int32(i), a=[i, np.float16(i / 2)])
        if self.kind == "namedtuple":
            return Point(x=np.float32(i), y=np.arange(3, dtype=np.int32) + i)
        if self.kind == "list":
            return [np.full(2, i, dtype=np.uint8), [i, 0.5 * i], b"raw"]
        if self.kind == "numpy":
            return np.arange(3, dtype=np.int32) + i, np.array([i > 2, False]), rng.random(2), np.int8(i)
        raise ValueError(self.kind)


def _pair(kind, n=10):
    return (Items(kind, n, lepton.from_numpy), Items(kind, n, torch.from_numpy))


@pytest.mark.parametrize("kind", ["tensors", "numbers", "dict", "ordered", "namedtuple", "list", "numpy"])
@pytest.mark.parametrize("batch_size,drop_last", [(3, False), (3, True), (1, False), (None, False)])
def test_unshuffled_batches_match_torch(kind, batch_size, drop_last):
    ours, theirs = _pair(kind)
    lo = L.DataLoader(ours, batch_size=batch_size, drop_last=drop_last)
    to = T.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last)
    assert len(lo) == len(to)
    _same_batches(lo, to, ours[0])


def test_tensor_dataset_batches_match_torch():
    """Lepton's TensorDataset batches with one gather (__getitems__); torch's collates samples."""
    x = np.random.default_rng(0).random((11, 2, 2), dtype=np.float32)
    y = np.arange(11)
    ours = L.TensorDataset(lepton.from_numpy(x), lepton.from_numpy(y))
    theirs = T.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for kwargs in [dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=None)]:
        _same_batches(L.DataLoader(ours, **kwargs), T.DataLoader(theirs, **kwargs), ours[0])


@pytest.mark.parametrize("make", [
    lambda: dict(sampler=[9, 0, 4, 4, 2, 7, 1], batch_size=3),
    lambda: dict(sampler=iter([5, 3, 8]), batch_size=2),
    lambda: dict(sampler=[6, 2, 2], batch_size=None),
    lambda: dict(batch_sampler=[[1, 2], [0], [5, 6, 7, 9]]),
    lambda: dict(batch_sampler=iter([[3], [3, 4]])),
])
def test_sampler_and_batch_sampler_paths_match_torch(make):
    """Any iterable of indices (of index lists) drives both loaders alike."""
    ours, theirs = _pair("dict")
    _same_batches(L.DataLoader(ours, **make()), T.DataLoader(theirs, **make()), ours[0])


def test_torch_named_samplers_drive_both_loaders():
    ours, theirs = _pair("numbers", 11)
    lo = L.DataLoader(ours, batch_sampler=L.BatchSampler(L.SequentialSampler(ours), 4, drop_last=True))
    to = T.DataLoader(theirs, batch_sampler=T.BatchSampler(T.SequentialSampler(theirs), 4, drop_last=True))
    assert len(lo) == len(to) == 2
    _same_batches(lo, to, ours[0])
    for n, bs, drop in [(10, 3, False), (10, 3, True), (9, 3, True), (0, 2, False)]:
        assert list(L.BatchSampler(range(n), bs, drop)) == list(T.BatchSampler(range(n), bs, drop))
        assert len(L.BatchSampler(range(n), bs, drop)) == len(T.BatchSampler(range(n), bs, drop))
    assert list(L.SequentialSampler(range(5))) == list(T.SequentialSampler(range(5)))


# ---- random samplers -------------------------------------------------------------------------

def test_random_sampler_with_replacement_lengths_and_ranges():
    s = L.RandomSampler(range(7), replacement=True, num_samples=10_000)
    drawn = np.array(list(s))
    assert len(s) == len(drawn) == 10_000
    assert drawn.min() == 0 and drawn.max() == 6 and len(np.unique(drawn)) == 7
    assert len(list(L.RandomSampler(range(7), replacement=True, num_samples=3))) == 3


def test_random_sampler_without_replacement_is_permutations():
    s = L.RandomSampler(range(10), num_samples=25)
    drawn = list(s)
    assert len(s) == len(drawn) == 25
    assert sorted(drawn[:10]) == sorted(drawn[10:20]) == list(range(10))
    assert len(set(drawn[20:])) == 5
    default = L.RandomSampler(range(50))
    first, second = list(default), list(default)
    assert sorted(first) == list(range(50)) and first != second  # every iteration reshuffles


def test_random_samplers_follow_generators_and_manual_seed():
    def draw(seed):
        return list(L.RandomSampler(range(30), generator=lepton.Generator().manual_seed(seed)))

    assert draw(3) == draw(3) and draw(3) != draw(4)
    lepton.manual_seed(11)
    a = [list(L.RandomSampler(range(30))), list(L.SubsetRandomSampler(range(30)))]
    lepton.manual_seed(11)
    assert [list(L.RandomSampler(range(30))), list(L.SubsetRandomSampler(range(30)))] == a
    sub = list(L.SubsetRandomSampler([10, 20, 30, 40], generator=lepton.Generator().manual_seed(0)))
    assert sorted(sub) == [10, 20, 30, 40] and len(L.SubsetRandomSampler([1, 2])) == 2


def test_weighted_random_sampler():
    assert set(L.WeightedRandomSampler([0, 0, 2.5, 0], 50)) == {2}
    drawn = list(L.WeightedRandomSampler([1.0, 1.0, 0.0, 1.0], 3, replacement=False))
    assert sorted(drawn) == [0, 1, 3]
    counts = np.bincount(list(L.WeightedRandomSampler([1, 3], 20_000)), minlength=2)
    assert 0.72 < counts[1] / counts.sum() < 0.78
    w = L.WeightedRandomSampler(lepton.tensor([0.5, 0.5]), 4)
    assert len(w) == 4 and w.weights.dtype == lepton.float64
    with pytest.raises(ValueError, match="without replacement"):
        L.WeightedRandomSampler([1, 0, 1], 3, replacement=False)
    with pytest.raises(ValueError, match="non-negative"):
        L.WeightedRandomSampler([1, -1], 3)


# ---- DataLoader shuffling ------------------------------------------------------------------------

def _order(loader):
    return [int(i) for b in loader for i in b[0]]


def test_generator_seeds_shuffle_and_each_epoch_reshuffles():
    ds = L.TensorDataset(np.arange(40))

    def loader(seed):
        return L.DataLoader(ds, batch_size=8, shuffle=True, generator=lepton.Generator().manual_seed(seed))

    a = loader(7)
    first, second = _order(a), _order(a)
    assert sorted(first) == sorted(second) == list(range(40)) and first != second
    assert _order(loader(7)) == first and _order(loader(8)) != first
    lepton.manual_seed(5)
    default = _order(L.DataLoader(ds, batch_size=8, shuffle=True))
    lepton.manual_seed(5)
    assert _order(L.DataLoader(ds, batch_size=8, shuffle=True)) == default
    assert _order(L.DataLoader(ds, batch_size=8, shuffle=True, seed=3)) != _order(
        L.DataLoader(ds, batch_size=8, shuffle=True, seed=4))


# ---- worker threads --------------------------------------------------------------------------

class Slow:
    """Samples that take longer the earlier they come, so worker threads finish out of order; each
    records the worker info it was loaded under."""

    def __init__(self, n, to_tensor=lepton.from_numpy):
        self.n, self.to_tensor = n, to_tensor
        self.seen = []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(0.0005 * (self.n - i))
        info = L.get_worker_info()
        self.seen.append((i, None if info is None else (info.id, info.num_workers, info.dataset is self)))
        return self.to_tensor(np.array([i, i * i])), float(i)


@pytest.mark.parametrize("shuffle", [False, True])
def test_workers_give_the_same_batches_in_the_same_order(shuffle):
    runs = []
    for num_workers, kw in [(0, dict(prefetch=0)), (0, {}), (2, {}), (3, dict(prefetch_factor=1))]:
        loader = L.DataLoader(Slow(23), batch_size=4, shuffle=shuffle, seed=1, num_workers=num_workers, **kw)
        runs.append([(b[0].numpy().tolist(), b[1].numpy().tolist()) for b in loader])
    assert len(runs[0]) == 6 and all(run == runs[0] for run in runs[1:])
    assert sorted(i for _, ids in runs[0] for i in ids) == list(range(23))
    if not shuffle:
        ours, theirs = L.DataLoader(Slow(23), batch_size=4, num_workers=2), T.DataLoader(
            Slow(23, torch.from_numpy), batch_size=4)
        _same_batches(ours, theirs, (None, 0.0))


def test_worker_init_fn_and_get_worker_info():
    ds, inits, lock = Slow(12), [], threading.Lock()

    def init(worker_id):
        info = L.get_worker_info()
        with lock:
            inits.append((worker_id, info.id, info.num_workers, info.worker_method, threading.current_thread().name))

    assert L.get_worker_info() is None
    loader = L.DataLoader(ds, batch_size=3, num_workers=2, worker_init_fn=init)
    batches = list(loader)
    assert len(batches) == 4
    assert sorted(inits) == [(0, 0, 2, "thread", "lepton-DataLoader-worker-0"),
                             (1, 1, 2, "thread", "lepton-DataLoader-worker-1")]
    by_sample = dict(ds.seen)
    for k in range(4):  # batch k is loaded by worker k % 2, with the shared dataset
        assert all(by_sample[i] == (k % 2, 2, True) for i in range(3 * k, 3 * k + 3))
    list(loader)
    assert len(inits) == 4  # new workers each epoch
    seeds = []
    loader = L.DataLoader(ds, batch_size=3, num_workers=2, persistent_workers=True,
                          worker_init_fn=lambda i: seeds.append(L.get_worker_info().seed))
    list(loader), list(loader)
    assert len(seeds) == 2 and max(seeds) == min(seeds) + 1  # once per worker: seed, seed + 1
    assert L.get_worker_info() is None


def test_persistent_workers_resume_after_an_early_break():
    loader = L.DataLoader(L.TensorDataset(np.arange(20)), batch_size=3, num_workers=2, persistent_workers=True)
    first = next(iter(loader))[0].numpy().tolist()
    rest = [int(v) for b in loader for v in b[0]]  # Lepton's stream goes on where it stopped
    assert first + rest == list(range(20)) and _order(loader) == list(range(20))


def test_huge_sampler_is_read_lazily():
    """minGPT's loader: RandomSampler(replacement=True, num_samples=1e10), read batch by batch."""
    ds = L.TensorDataset(np.arange(100))
    sampler = L.RandomSampler(ds, replacement=True, num_samples=int(1e10))
    for num_workers in (0, 2):
        loader = L.DataLoader(ds, sampler=sampler, shuffle=False, pin_memory=True, batch_size=64,
                              num_workers=num_workers)
        assert len(loader) == int(1e10) // 64
        it = iter(loader)
        batches = [next(it)[0].numpy() for _ in range(3)]
        del it
        assert all(b.shape == (64,) and 0 <= b.min() and b.max() < 100 for b in batches)


def test_distributed_sampler_matches_torch():
    ours, theirs = _pair("numbers", 11)
    for rank in range(3):
        lo = L.DataLoader(ours, batch_size=2, sampler=L.DistributedSampler(ours, 3, rank, shuffle=False))
        to = T.DataLoader(theirs, batch_size=2, sampler=T.DistributedSampler(theirs, 3, rank, shuffle=False))
        _same_batches(lo, to, ours[0])


def test_worker_failures_reach_the_consumer():
    def bad_init(worker_id):
        raise OSError(f"worker {worker_id} can't start")

    with pytest.raises(OSError, match="can't start"):
        list(L.DataLoader(Slow(4), num_workers=2, worker_init_fn=bad_init))

    class Broken(Slow):
        def __getitem__(self, i):
            if i == 5:
                raise KeyError("sample 5 is broken")
            return super().__getitem__(i)

    loader, got = L.DataLoader(Broken(12), batch_size=2, num_workers=3), []
    with pytest.raises(KeyError, match="sample 5"):
        for b in loader:
            got.append(b)
    assert len(got) == 2 and loader.state_dict() == {"epoch": 0, "batch": 2}


def _wait_for_threads(prefix):
    deadline = time.monotonic() + 5
    while any(t.name.startswith(prefix) for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name.startswith(prefix) for t in threading.enumerate())


@pytest.mark.parametrize("num_workers,prefix", [(1, "lepton-DataLoader-worker"), (0, "lepton-DataLoader-prefetch")])
def test_timeout_triggers(num_workers, prefix):
    class Stuck(Slow):
        def __getitem__(self, i):
            if i == 2:
                time.sleep(0.6)
            return super().__getitem__(i)

    loader = L.DataLoader(Stuck(6), batch_size=1, num_workers=num_workers, timeout=0.15)
    got = []
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="timed out after 0.15 seconds"):
        for b in loader:
            got.append(b)
    assert len(got) == 2 and time.monotonic() - t0 < 0.55
    _wait_for_threads(prefix)
    assert len(list(L.DataLoader(Slow(6), batch_size=2, num_workers=num_workers, timeout=5))) == 3


# ---- iterable datasets -----------------------------------------------------------------------

def _stream(base, sharded=False):
    class Stream(base):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            info = (L if issubclass(base, L.IterableDataset) else T).get_worker_info()
            start, step = (info.id, info.num_workers) if sharded and info is not None else (0, 1)
            for i in range(start, self.n, step):
                yield i, {"v": float(i)}

        def __len__(self):
            return self.n

    return Stream


@pytest.mark.parametrize("batch_size,drop_last", [(4, False), (4, True), (None, False), (5, False)])
def test_iterable_dataset_batches_match_torch(batch_size, drop_last):
    ours, theirs = _stream(L.IterableDataset)(10), _stream(T.IterableDataset)(10)
    lo, to = (M.DataLoader(d, batch_size=batch_size, drop_last=drop_last) for M, d in [(L, ours), (T, theirs)])
    assert len(lo) == len(to)
    _same_batches(lo, to, next(iter(ours)))
    _same_batches(lo, to, next(iter(ours)))  # iterating again starts the stream over


def test_iterable_dataset_with_workers():
    sharded = _stream(L.IterableDataset, sharded=True)(11)
    got = [b[0].numpy().tolist() for b in L.DataLoader(sharded, batch_size=2, num_workers=2)]
    # worker 0 streams 0 2 4 6 8 10, worker 1 streams 1 3 5 7 9; batches come from each in turn
    # (torch's order for this dataset with two worker processes, checked by hand)
    assert got == [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9]]
    whole = _stream(L.IterableDataset)(5)  # not split: every worker yields everything, as in torch
    got = sorted(int(v) for b in L.DataLoader(whole, batch_size=2, num_workers=2) for v in b[0])
    assert got == sorted(2 * list(range(5)))
    chained = _stream(L.IterableDataset)(3) + _stream(L.IterableDataset)(2)
    assert isinstance(chained, L.ChainDataset) and len(chained) == 5
    assert [i for i, _ in chained] == [0, 1, 2, 0, 1]


# ---- datasets ----------------------------------------------------------------------------------

def test_random_split_lengths_fractions_and_disjointness():
    ds = L.TensorDataset(np.arange(50))
    for lengths in [[0.2, 0.3, 0.5], [0.33, 0.33, 0.34], [1, 0], [0.5, 0.5], [10, 40], [50]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if 0 in lengths else "error")  # both warn of an empty split
            parts = L.random_split(ds, lengths)
            assert [len(p) for p in parts] == [len(p) for p in T.random_split(range(50), lengths)]
        indices = np.concatenate([p.indices for p in parts])
        assert sorted(indices.tolist()) == list(range(50))
    a = L.random_split(ds, [0.5, 0.5], lepton.Generator().manual_seed(1))  # torch's positional generator
    b = L.random_split(ds, [0.5, 0.5], generator=lepton.Generator().manual_seed(1))
    c = L.random_split(ds, [0.5, 0.5], generator=lepton.Generator().manual_seed(2))
    assert a[0].indices.tolist() == b[0].indices.tolist() != c[0].indices.tolist()
    seeded = [L.random_split(ds, [25, 25], seed=s)[1].indices.tolist() for s in (4, 4, 5)]  # Lepton's seed=
    assert seeded[0] == seeded[1] != seeded[2]
    with pytest.warns(UserWarning, match="split 1 is empty"):
        L.random_split(ds, [1, 0])
    for bad in [[20, 20], [1.5, -0.5], [0.5, 0.4]]:
        with pytest.raises(ValueError):
            T.random_split(range(50), bad)
        with pytest.raises(ValueError):
            L.random_split(ds, bad)
    with pytest.raises(ValueError, match="non-negative"):
        L.random_split(ds, [-10, 60])  # torch takes it and makes odd slices


def test_concat_stack_subset_match_torch():
    a, b = list(range(3)), list(range(10, 15))
    ours = L.ConcatDataset([a, b])
    theirs = T.ConcatDataset([a, b])
    assert len(ours) == len(theirs) and ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-8, 8)] == [theirs[i] for i in range(-8, 8)]
    with pytest.raises(IndexError):
        ours[8]

    class Items2(L.Dataset):
        def __init__(self, values):
            self.values = values

        def __getitem__(self, i):
            return self.values[i]

        def __len__(self):
            return len(self.values)

    joined = Items2([1, 2]) + Items2([3])
    assert isinstance(joined, L.ConcatDataset) and [joined[i] for i in range(3)] == [1, 2, 3]
    st, tt = L.StackDataset(a, [x * 2 for x in a]), T.StackDataset(a, [x * 2 for x in a])
    sd, td = L.StackDataset(p=a, q=a), T.StackDataset(p=a, q=a)
    assert [st[i] for i in range(3)] == [tt[i] for i in range(3)]
    assert [sd[i] for i in range(3)] == [td[i] for i in range(3)]
    with pytest.raises(ValueError):
        L.StackDataset(a, b)
    sub, tsub = L.Subset(b, [4, 0]), T.Subset(b, [4, 0])
    assert [sub[0], sub[1]] == [tsub[0], tsub[1]] == [14, 10]
    rows = L.Subset(np.arange(10) * 3, [4, 0, 9])
    assert rows[[2, 0]].tolist() == [27, 12]
    with pytest.raises(TypeError):
        L.ConcatDataset([_stream(L.IterableDataset)(2)])


def test_overridden_getitem_is_not_skipped_by_inherited_getitems():
    class Doubled(L.TensorDataset):
        def __getitem__(self, i):
            return tuple(t * 2 for t in super().__getitem__(i))

    class Plus(L.Subset):
        def __getitem__(self, i):
            return super().__getitem__(i) + 100

    ds = Doubled(lepton.from_numpy(np.arange(5)))
    assert [int(v) for b in L.DataLoader(ds, batch_size=2) for v in b[0]] == [0, 2, 4, 6, 8]
    plus = Plus(list(range(10)), [3, 1])
    assert [int(v) for b in L.DataLoader(plus, batch_size=2) for v in b] == [103, 101]


# ---- collation -------------------------------------------------------------------------------

def test_default_collate_and_convert_match_torch():
    from PIL import Image

    samples = [{"a": (i, [i / 2, np.float32(i)]), "b": Point(np.arange(2) + i, f"n{i}")} for i in range(3)]
    _same(L.default_collate(samples), T.default_collate(samples), samples[0])
    for item in [np.arange(3, dtype=np.int32), np.float64(2.5), 7, 2.5, "text", (np.int8(1), [np.arange(2)]),
                 {"k": np.ones(2, np.float32), "n": 3}, Point(np.int64(1), 2.0), np.array(["a", "b"])]:
        ours, theirs = L.default_convert(item), T.default_convert(item)
        if isinstance(theirs, np.ndarray):  # strings are not converted
            assert ours is item and theirs is item
        else:
            _same(ours, theirs, item)
    images = [Image.new("L", (2, 2)), Image.new("L", (2, 2))]
    for bad in [images, [np.array(["x"]), np.array(["y"])], [object(), object()]]:
        with pytest.raises(TypeError) as theirs:
            T.default_collate(bad)
        with pytest.raises(TypeError) as ours:
            L.default_collate(bad)
        assert str(ours.value) == str(theirs.value)
        if bad is images:
            assert str(ours.value).endswith("found <class 'PIL.Image.Image'>")


# ---- arguments -------------------------------------------------------------------------------

_BAD = [
    dict(batch_size=0), dict(batch_size=-2), dict(num_workers=-1), dict(sampler=[0, 1], shuffle=True),
    dict(batch_sampler=[[0]], batch_size=2), dict(batch_sampler=[[0]], drop_last=True),
    dict(batch_sampler=[[0]], shuffle=True), dict(batch_sampler=[[0]], sampler=[0]),
    dict(batch_size=None, drop_last=True),
    dict(timeout=-1), dict(prefetch_factor=2), dict(persistent_workers=True), dict(multiprocessing_context="fork"),
    dict(num_workers=1, multiprocessing_context="no-such-method"), dict(num_workers=1, multiprocessing_context=3),
]


@pytest.mark.parametrize("kwargs", _BAD, ids=[str(k) for k in _BAD])
def test_bad_loader_arguments_raise_as_torch(kwargs):
    ours, theirs = _pair("numbers", 4)
    with pytest.raises((ValueError, TypeError)) as expected:
        iter(T.DataLoader(theirs, **kwargs)).__next__()
    with pytest.raises(expected.type):
        next(iter(L.DataLoader(ours, **kwargs)))


@pytest.mark.parametrize("kwargs", [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])])
def test_iterable_dataset_rejects_samplers_as_torch(kwargs):
    with pytest.raises(ValueError):
        T.DataLoader(_stream(T.IterableDataset)(3), **kwargs)
    with pytest.raises(ValueError, match="IterableDataset"):
        L.DataLoader(_stream(L.IterableDataset)(3), **kwargs)


@pytest.mark.parametrize("make", [
    lambda M: M.BatchSampler(range(3), 0, False), lambda M: M.BatchSampler(range(3), 2, "no"),
    lambda M: M.BatchSampler(range(3), True, False), lambda M: M.RandomSampler(range(3), replacement=1),
    lambda M: M.RandomSampler(range(3), num_samples=0), lambda M: M.RandomSampler([], num_samples=None),
    lambda M: M.WeightedRandomSampler([1, 2], 0), lambda M: M.WeightedRandomSampler([1, 2], 2, replacement=None),
    lambda M: M.WeightedRandomSampler([[1, 2]], 2),
])
def test_bad_sampler_arguments_raise_as_torch(make):
    with pytest.raises((ValueError, TypeError)) as expected:
        make(T)
    with pytest.raises(expected.type):
        make(L)


def test_accepted_keywords_keep_batches():
    ours, theirs = _pair("tensors", 7)
    kwargs = dict(batch_size=2, pin_memory=True, pin_memory_device="", in_order=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: no accelerator to pin memory for
        _same_batches(L.DataLoader(ours, timeout=10, **kwargs), T.DataLoader(theirs, **kwargs), ours[0])
    loader = L.DataLoader(ours, batch_size=2, num_workers=2, multiprocessing_context="spawn", prefetch_factor=3)
    _same_batches(loader, T.DataLoader(theirs, batch_size=2), ours[0])
    assert loader.collate_fn is L.default_collate
    assert L.DataLoader(ours, batch_size=None).collate_fn is L.default_convert
    with pytest.raises(TypeError, match="generator"):
        L.DataLoader(ours, generator=5)
