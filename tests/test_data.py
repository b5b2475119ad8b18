"""lepton.data: datasets, default_collate, the DataLoader (order, resume, prefetch thread) and cleaning helpers."""

import gc
import threading
import time

import numpy as np
import pytest

import lepton
from lepton.data import (DataLoader, Dataset, SimpleImputer, StandardScaler, Subset, TensorDataset, default_collate,
                         drop_nan_rows, impute_nan, random_split, standardize)
from lepton.data.transforms import RandomCrop, RandomHorizontalFlip, Compose


def _np(t):
    return t.numpy().copy() if isinstance(t, lepton.Tensor) else np.asarray(t)


def _batches(loader, n=None):
    """Each batch as a tuple of NumPy copies (the first n batches when n is given)."""
    out = []
    for b in loader:
        out.append(tuple(_np(t) for t in b))
        if n is not None and len(out) == n:
            break
    return out


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


class Squares(Dataset):
    """Per-sample dataset with no __getitems__: (i, i*i as float32 array)."""

    def __init__(self, n, fail_at=None, delay=0.0):
        self.n, self.fail_at, self.delay, self.calls = n, fail_at, delay, 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if i == self.fail_at:
            raise KeyError(f"sample {i} is broken")
        return i, np.array([i * i], dtype=np.float32)


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "lepton-DataLoader-prefetch"]


# ---- datasets ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["lepton", "numpy"])
def test_tensor_dataset(kind):
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10) % 3
    ds = TensorDataset(lepton.from_numpy(x), lepton.from_numpy(y)) if kind == "lepton" else TensorDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[4]
    np.testing.assert_array_equal(_np(xi), x[4])
    assert int(_np(yi)) == y[4]
    xb, yb = ds.__getitems__([7, 0, 7, -1])
    assert isinstance(xb, lepton.Tensor) and isinstance(yb, lepton.Tensor)
    assert xb.dtype == lepton.float32 and yb.dtype == lepton.int64
    np.testing.assert_array_equal(xb.numpy(), x[[7, 0, 7, 9]])
    np.testing.assert_array_equal(yb.numpy(), y[[7, 0, 7, 9]])
    with pytest.raises(IndexError):
        ds.__getitems__([10])


def test_tensor_dataset_index_select_path():
    """bfloat16 (no NumPy type) is gathered by index_select; batches are detached from any graph."""
    x = lepton.arange(12).float().reshape(6, 2)
    ds = TensorDataset(x.to(lepton.bfloat16), x.clone().requires_grad_())
    xb, gb = ds.__getitems__([5, 1])
    assert xb.dtype == lepton.bfloat16 and not gb.requires_grad
    np.testing.assert_array_equal(xb.float().numpy(), [[10, 11], [2, 3]])
    np.testing.assert_array_equal(gb.numpy(), [[10, 11], [2, 3]])


def test_tensor_dataset_bad_inputs():
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(5,\)"):
        TensorDataset(np.zeros((4, 2)), np.zeros(5))
    with pytest.raises(TypeError, match="list"):
        TensorDataset([1, 2, 3])
    with pytest.raises(ValueError):
        TensorDataset()


def test_random_split_lengths_match_torch():
    torch = pytest.importorskip("torch")
    for n, fr in [(10, [0.33, 0.33, 0.34]), (7, [0.5, 0.5]), (100, [0.8, 0.1, 0.1]), (3, [0.1, 0.9])]:
        ours = [len(s) for s in random_split(range(n), fr)]
        theirs = [len(s) for s in torch.utils.data.random_split(range(n), fr)]
        assert ours == theirs, (n, fr)


def test_random_split_partition_and_determinism():
    ds = TensorDataset(np.arange(50))
    a, b, c = random_split(ds, [20, 20, 10], seed=3)
    idx = np.concatenate([a.indices, b.indices, c.indices])
    assert sorted(idx.tolist()) == list(range(50))
    assert int(a[0][0]) == a.indices[0]
    a2, _, _ = random_split(ds, [20, 20, 10], seed=3)
    a3, _, _ = random_split(ds, [20, 20, 10], seed=4)
    np.testing.assert_array_equal(a.indices, a2.indices)
    assert not np.array_equal(a.indices, a3.indices)
    with pytest.raises(ValueError, match="sum to 49"):
        random_split(ds, [20, 20, 9])
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(ds, [0.5, 0.4])


def test_subset_getitems_with_and_without_base_getitems():
    ds = TensorDataset(np.arange(10) * 10)
    sub = Subset(ds, [9, 3, 5])
    assert len(sub) == 3 and int(sub[1][0]) == 30
    np.testing.assert_array_equal(sub.__getitems__([2, 0])[0].numpy(), [50, 90])
    sq = Subset(Squares(10), [4, 2])
    i, v = sq.__getitems__([0, 1])
    np.testing.assert_array_equal(i.numpy(), [4, 2])
    np.testing.assert_array_equal(v.numpy(), [[16], [4]])


# ---- collate ---------------------------------------------------------------------------------

def test_default_collate_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    samples = [(i, i / 2, True, np.full((2, 3), i, dtype=np.float32), np.int32(i), "s",
                {"a": np.arange(3) + i, "b": [i, i + 1]}) for i in range(4)]
    ours, theirs = default_collate(samples), torch_collate(samples)
    assert isinstance(ours, tuple)
    for o, t in zip(ours[:5], theirs[:5]):
        assert o.dtype.name == str(t.dtype).replace("torch.", "")
        np.testing.assert_array_equal(o.numpy(), t.numpy())
    assert ours[5] == list(theirs[5])
    np.testing.assert_array_equal(ours[6]["a"].numpy(), theirs[6]["a"].numpy())
    for o, t in zip(ours[6]["b"], theirs[6]["b"]):
        np.testing.assert_array_equal(o.numpy(), t.numpy())


def test_default_collate_tensors_and_errors():
    b = default_collate([lepton.tensor([1.0, 2.0]), lepton.tensor([3.0, 4.0])])
    np.testing.assert_array_equal(b.numpy(), [[1, 2], [3, 4]])
    assert default_collate([1, 2.5]).dtype == lepton.float64
    with pytest.raises(ValueError, match="empty"):
        default_collate([])
    with pytest.raises(ValueError, match="different lengths"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="object"):
        default_collate([object(), object()])


# ---- DataLoader ------------------------------------------------------------------------------

@pytest.mark.parametrize("n,bs,drop,expected", [(10, 3, False, 4), (10, 3, True, 3), (9, 3, True, 3),
                                                (0, 4, False, 0), (2, 5, True, 0), (1, 1, False, 1)])
def test_len_and_batch_sizes(n, bs, drop, expected):
    loader = DataLoader(TensorDataset(np.arange(n)), batch_size=bs, drop_last=drop)
    assert len(loader) == expected
    sizes = [len(b[0]) for b in _batches(loader)]
    assert len(sizes) == expected
    assert all(s == bs for s in sizes[:-1] if sizes)
    if expected:
        assert sizes[-1] == (bs if drop or n % bs == 0 else n % bs)


def test_unshuffled_order_and_shuffled_permutation():
    ds = TensorDataset(np.arange(23))
    plain = np.concatenate([b[0] for b in _batches(DataLoader(ds, batch_size=5))])
    np.testing.assert_array_equal(plain, np.arange(23))
    shuffled = np.concatenate([b[0] for b in _batches(DataLoader(ds, batch_size=5, shuffle=True))])
    assert sorted(shuffled.tolist()) == list(range(23)) and not np.array_equal(shuffled, plain)


def _order(loader):
    return np.concatenate([b[0] for b in _batches(loader)])


def test_shuffle_is_a_function_of_seed_and_epoch():
    ds = TensorDataset(np.arange(40))
    a = DataLoader(ds, batch_size=8, shuffle=True, seed=5)
    epochs = [_order(a) for _ in range(3)]  # iterating without set_epoch advances the epoch
    assert a.state_dict() == {"epoch": 3, "batch": 0}
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    b = DataLoader(ds, batch_size=8, shuffle=True, seed=5, prefetch=0)
    b.set_epoch(2)
    np.testing.assert_array_equal(_order(b), epochs[2])
    b.set_epoch(0)
    np.testing.assert_array_equal(_order(b), epochs[0])
    c = DataLoader(ds, batch_size=8, shuffle=True, seed=6)
    assert not np.array_equal(_order(c), epochs[0])


def test_state_dict_names_the_next_batch():
    loader = DataLoader(TensorDataset(np.arange(10)), batch_size=4)
    seen = []
    for k, _ in enumerate(loader):
        seen.append(loader.state_dict())
    assert seen == [{"epoch": 0, "batch": 1}, {"epoch": 0, "batch": 2}, {"epoch": 1, "batch": 0}]


def _augmenting_loader(prefetch, seed=1):
    x = np.random.default_rng(0).integers(0, 255, size=(37, 1, 6, 6)).astype(np.float32)
    ds = TensorDataset(lepton.from_numpy(x), np.arange(37))
    tf = Compose([RandomCrop(6, padding=1), RandomHorizontalFlip()])
    return DataLoader(ds, batch_size=5, shuffle=True, drop_last=False, prefetch=prefetch, seed=seed, transform=tf)


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("stop_after", [1, 7, 8, 12])  # 8 batches per epoch: stop inside, at the end, in epoch 1
def test_resume_mid_epoch_equals_uninterrupted(prefetch, stop_after):
    full = _augmenting_loader(prefetch)
    reference = [b for _ in range(3) for b in _batches(full)]
    first = _augmenting_loader(prefetch)
    got, it = [], iter(first)
    while len(got) < stop_after:
        try:
            got.append(tuple(_np(t) for t in next(it)))
        except StopIteration:
            it = iter(first)
    state = first.state_dict()
    del it
    resumed = _augmenting_loader(prefetch)
    resumed.load_state_dict(state)
    resumed.set_epoch(state["epoch"])  # a trainer calling set_epoch after restoring keeps the position
    while len(got) < len(reference):
        got.extend(_batches(resumed))
    _assert_same(got, reference)


def test_prefetch_on_and_off_identical():
    _assert_same(_batches(_augmenting_loader(0)), _batches(_augmenting_loader(3)))
    _assert_same(_batches(_augmenting_loader(0)), _batches(_augmenting_loader(1)))


def test_transform_draws_depend_on_seed():
    a, b = _batches(_augmenting_loader(0, seed=1)), _batches(_augmenting_loader(0, seed=2))
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, b))


def test_early_break_continues_and_epoch_restart():
    loader = DataLoader(TensorDataset(np.arange(12)), batch_size=3, prefetch=2)
    first = _batches(loader, 2)
    assert loader.state_dict() == {"epoch": 0, "batch": 2}
    rest = _batches(loader)  # the stream goes on where it stopped
    np.testing.assert_array_equal(np.concatenate([b[0] for b in first + rest]), np.arange(12))
    loader.load_state_dict({"epoch": 0, "batch": 0})
    assert len(_batches(loader)) == 4
    with pytest.raises(ValueError, match="past"):
        loader.load_state_dict({"epoch": 0, "batch": 5})


def test_uses_getitems_unless_collate_fn_given():
    class Counting(TensorDataset):
        fetches = 0

        def __getitems__(self, indices):
            Counting.fetches += 1
            return super().__getitems__(indices)

    ds = Counting(np.arange(10))
    assert len(_batches(DataLoader(ds, batch_size=4))) == 3 and Counting.fetches == 3
    custom = DataLoader(ds, batch_size=4, collate_fn=lambda samples: [s[0] * 2 for s in samples])
    batch = next(iter(custom))
    assert Counting.fetches == 3 and [int(v) for v in batch] == [0, 2, 4, 6]


def test_per_sample_dataset_collates():
    ds = Squares(7)
    batches = _batches(DataLoader(ds, batch_size=3))
    np.testing.assert_array_equal(batches[2][0], [6])
    np.testing.assert_array_equal(batches[1][1], [[9], [16], [25]])
    assert ds.calls == 7


@pytest.mark.parametrize("prefetch", [0, 2])
def test_exception_in_fetch_reaches_consumer(prefetch):
    loader = DataLoader(Squares(20, fail_at=13), batch_size=4, prefetch=prefetch)
    got = []
    with pytest.raises(KeyError, match="sample 13 is broken"):
        for b in loader:
            got.append(b)
    assert len(got) == 3 and loader.state_dict() == {"epoch": 0, "batch": 3}
    assert not _prefetch_threads()


def test_early_break_leaves_no_thread():
    ds = Squares(400, delay=0.0005)
    loader = DataLoader(ds, batch_size=2, prefetch=2)
    for k, _ in enumerate(loader):
        if k == 3:
            time.sleep(0.05)  # let the producer fill the queue and block on it
            break
    assert not _prefetch_threads()
    it = iter(loader)
    next(it)
    assert len(_prefetch_threads()) == 1
    del it
    gc.collect()
    assert not _prefetch_threads()
    assert ds.calls < 40  # the producer stopped instead of running through the epoch


def test_sampler_is_used_with_epoch():
    class EveryOther:
        def __init__(self):
            self.epoch = None

        def set_epoch(self, e):
            self.epoch = e

        def __iter__(self):
            return iter(range(self.epoch % 2, 10, 2))

        def __len__(self):
            return 5

    loader = DataLoader(TensorDataset(np.arange(10)), batch_size=2, sampler=EveryOther())
    assert len(loader) == 3
    np.testing.assert_array_equal(_order(loader), [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(_order(loader), [1, 3, 5, 7, 9])
    with pytest.raises(ValueError, match="exclusive"):
        DataLoader(TensorDataset(np.arange(10)), sampler=EveryOther(), shuffle=True)


def test_bad_arguments():
    ds = TensorDataset(np.arange(4))
    for kwargs in [dict(batch_size=0), dict(prefetch=-1), dict(seed=-1), dict(batch_size=2.5)]:
        with pytest.raises(ValueError):
            DataLoader(ds, **kwargs)


def test_mnist_sized_throughput_path():
    """The batched path over a Lepton TensorDataset: one gather per tensor, right values."""
    x = lepton.from_numpy(np.random.default_rng(0).random((1000, 784), dtype=np.float32))
    y = lepton.from_numpy(np.arange(1000))
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)
    for xb, yb in loader:
        np.testing.assert_array_equal(xb.numpy(), x.numpy()[yb.numpy()])


# ---- cleaning --------------------------------------------------------------------------------

def test_drop_nan_rows():
    x = np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0], [5.0, 6.0]])
    y = np.array([0.0, 1.0, np.nan, 3.0])
    np.testing.assert_array_equal(drop_nan_rows(x), x[[0, 2, 3]])
    xc, yc = drop_nan_rows(x, y)
    np.testing.assert_array_equal(xc, x[[0, 3]])
    np.testing.assert_array_equal(yc, [0.0, 3.0])
    np.testing.assert_array_equal(drop_nan_rows(np.arange(4)), np.arange(4))
    with pytest.raises(ValueError, match="4 rows, y has 3"):
        drop_nan_rows(x, y[:3])


def test_impute_nan_strategies():
    x = np.array([[1.0, np.nan], [np.nan, 4.0], [3.0, 8.0], [8.0, np.nan]])
    np.testing.assert_allclose(impute_nan(x), [[1, 6], [4, 4], [3, 8], [8, 6]])
    np.testing.assert_allclose(impute_nan(x, "median"), [[1, 6], [3, 4], [3, 8], [8, 6]])
    np.testing.assert_allclose(impute_nan(x, "constant", value=-1), [[1, -1], [-1, 4], [3, 8], [8, -1]])
    with pytest.raises(ValueError, match=r"column\(s\) \[1\]"):
        impute_nan(np.array([[1.0, np.nan], [2.0, np.nan]]))
    with pytest.raises(ValueError, match="strategy"):
        impute_nan(x, "mode")


def test_simple_imputer_fit_transform_split():
    train = np.array([[1.0, 10.0], [3.0, np.nan], [np.nan, 30.0]])
    imp = SimpleImputer("mean").fit(train)
    np.testing.assert_allclose(imp.statistics_, [2.0, 20.0])
    np.testing.assert_allclose(imp.transform(np.array([[np.nan, np.nan], [5.0, 6.0]])), [[2, 20], [5, 6]])
    with pytest.raises(ValueError, match="2 columns"):
        imp.transform(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="before fit"):
        SimpleImputer().transform(train)


def test_standardize_and_scaler():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, size=(200, 3)).astype(np.float32)
    x[:, 2] = 7.0  # constant column: centred only
    z = standardize(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :2].std(0), 1, atol=1e-5)
    np.testing.assert_array_equal(z[:, 2], 0)
    sc = StandardScaler().fit(x[:100])
    np.testing.assert_allclose(sc.transform(x[100:]), (x[100:] - sc.mean_) / sc.scale_, rtol=1e-6)
    np.testing.assert_allclose(standardize(x, x.mean(0), np.array([1.0, 2.0, 4.0])),
                               (x - x.mean(0)) / [1.0, 2.0, 4.0], rtol=1e-6)
    with_nan = np.array([[1.0], [np.nan], [3.0]])
    np.testing.assert_allclose(standardize(with_nan), [[-1.0], [np.nan], [1.0]])
    with pytest.raises(ValueError, match="both"):
        standardize(x, mean=0.0)
    with pytest.raises(ValueError, match="1-d or 2-d"):
        standardize(np.zeros((2, 2, 2)))
