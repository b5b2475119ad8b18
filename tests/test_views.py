"""Views share memory with their base; shape functions match numpy/torch; cat and stack."""

import numpy as np
import pytest

import lepton
from conftest import assert_close, to_np


def base(*shape, dtype=lepton.float32):
    n = int(np.prod(shape))
    return lepton.arange(n, dtype=dtype).reshape(*shape), np.arange(n, dtype=np.float32).reshape(shape)


def assert_view_of(view, parent):
    """`view` aliases `parent`: a write through the view shows in the parent."""
    before = to_np(parent).copy()
    view.fill_(-7)
    after = to_np(parent)
    assert (after == -7).sum() == view.numel() and (after != before).sum() <= view.numel()
    assert view.numel() == 0 or (after != before).any()


@pytest.mark.parametrize("fn,ref", [
    (lambda t: t.reshape(6, 4), lambda a: a.reshape(6, 4)),
    (lambda t: t.reshape(-1), lambda a: a.reshape(-1)),
    (lambda t: t.reshape(4, -1), lambda a: a.reshape(4, -1)),
    (lambda t: t.view(2, 12), lambda a: a.reshape(2, 12)),
    (lambda t: t.view((3, 2, -1)), lambda a: a.reshape(3, 2, -1)),
    (lambda t: t.transpose(0, 2), lambda a: a.swapaxes(0, 2)),
    (lambda t: t.swapaxes(-1, 0), lambda a: a.swapaxes(-1, 0)),
    (lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    (lambda t: t.permute((1, 2, 0)), lambda a: a.transpose(1, 2, 0)),
    (lambda t: t.T, lambda a: a.T),
    (lambda t: t.mT, lambda a: a.swapaxes(-1, -2)),
    (lambda t: t[1], lambda a: a[1]),
    (lambda t: t[-1, ::2], lambda a: a[-1, ::2]),
    (lambda t: t[:, 1:, ::-1] if False else t[:, 1:, ::3], lambda a: a[:, 1:, ::3]),
    (lambda t: t[..., 1], lambda a: a[..., 1]),
    (lambda t: t[None, 0, ..., None], lambda a: a[None, 0, ..., None]),
    (lambda t: t[-5:100, -2:], lambda a: a[-5:100, -2:]),
    (lambda t: t[1:1], lambda a: a[1:1]),
    (lambda t: t[:, 2, 1:3], lambda a: a[:, 2, 1:3]),
    (lambda t: t.unsqueeze(0), lambda a: a[None]),
    (lambda t: t.unsqueeze(-1), lambda a: a[..., None]),
    (lambda t: t[:, :1].squeeze(), lambda a: a[:, :1].squeeze()),
    (lambda t: t[:, :1].squeeze(1), lambda a: a[:, :1].squeeze(1)),
    (lambda t: t[:, :1].squeeze(0), lambda a: a[:, :1]),  # size != 1: unchanged
    (lambda t: t.flatten(), lambda a: a.reshape(-1)),
    (lambda t: t.flatten(1), lambda a: a.reshape(2, -1)),
    (lambda t: t.flatten(0, 1), lambda a: a.reshape(6, 4)),
    (lambda t: t[:, :1, :1].expand(2, 3, 4), lambda a: np.broadcast_to(a[:, :1, :1], (2, 3, 4))),
    (lambda t: t[0, 0].expand(5, -1), lambda a: np.broadcast_to(a[0, 0], (5, 4))),
    (lambda t: t.narrow(2, 1, 2), lambda a: a[:, :, 1:3]),
    (lambda t: t.select(1, -1), lambda a: a[:, -1]),
    (lambda t: t.as_strided((2, 2), (1, 2)), lambda a: np.lib.stride_tricks.as_strided(a, (2, 2), (4, 8))),
])
def test_view_matches_numpy_and_aliases(fn, ref):
    t, a = base(2, 3, 4)
    v = fn(t)
    assert_close(v, ref(a))
    if v.numel() and v.data_ptr() != 0:
        lo = t.data_ptr()
        assert lo <= v.data_ptr() < lo + t.nbytes
    if "expand" not in fn.__code__.co_names and "as_strided" not in fn.__code__.co_names:
        assert_view_of(v, t)


def test_reshape_copies_only_when_needed():
    t, a = base(3, 4)
    tt = t.T
    r = tt.reshape(12)  # impossible as a view: a copy
    np.testing.assert_array_equal(to_np(r), a.T.reshape(12))
    r.fill_(0)
    assert to_np(t).sum() == a.sum()
    with pytest.raises((RuntimeError, ValueError), match=r"view.*\[4, 3\].*reshape"):  # names shape/strides
        tt.view(12)
    assert tt.reshape(4, 3).data_ptr() == t.data_ptr()  # a view of a view keeps the storage


@pytest.mark.parametrize("shape", [(5, 5), (7,), (4, -2), (-1, -1)])
def test_reshape_bad_shape(shape):
    t, _ = base(2, 3, 4)
    with pytest.raises((RuntimeError, ValueError), match=r"24|-1|shape"):
        t.reshape(*shape)


def test_contiguous():
    t, a = base(3, 4)
    c = t.contiguous()
    assert c.data_ptr() == t.data_ptr()
    tt = t.T
    assert not tt.is_contiguous()
    c = tt.contiguous()
    assert c.is_contiguous() and c.data_ptr() != t.data_ptr() and c.stride() == (3, 1)
    np.testing.assert_array_equal(to_np(c), a.T)
    e = lepton.zeros(1, 4).expand(3, 4)
    assert e.stride() == (0, 1) and e.contiguous().stride() == (4, 1)


def test_strides_and_offsets():
    t, _ = base(2, 3, 4)
    assert t.stride() == (12, 4, 1) and t.stride(-1) == 1
    v = t[1, :, ::2]
    assert v.stride() == (4, 2) and v.storage_offset() == 12
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and len(t) == 2 and t.dim() == 3 and t.ndim == 3


@pytest.mark.parametrize("fn,ref", [
    (lambda t: t.split(2, 1), lambda a: np.split(a, [2], axis=1)),
    (lambda t: t.split([1, 2], 1), lambda a: np.split(a, [1], axis=1)),
    (lambda t: t.split(3, -1), lambda a: np.split(a, [3], axis=-1)),
    (lambda t: t.chunk(2, 2), lambda a: np.split(a, 2, axis=2)),
    (lambda t: t.chunk(3, 2), lambda a: np.split(a, [2], axis=2)),  # torch: chunks of ceil(4/3)=2
    (lambda t: t.chunk(5, 0), lambda a: np.split(a, 2, axis=0)),
    (lambda t: t.unbind(1), lambda a: [a[:, i] for i in range(3)]),
    (lambda t: lepton.split(t, 1, 0), lambda a: np.split(a, 2, axis=0)),
])
def test_split_family(fn, ref):
    t, a = base(2, 3, 4)
    parts = fn(t)
    expected = ref(a)
    assert len(parts) == len(expected)
    for p, e in zip(parts, expected):
        assert_close(p, e)
    assert_view_of(parts[-1], t)


def test_split_family_torch():
    torch = pytest.importorskip("torch")
    t, a = base(5, 7)
    tt = torch.from_numpy(a)
    for args in [(3,), (2, 1), ([1, 6], 1)]:
        got, want = t.split(*args), tt.split(*args)
        assert [p.shape for p in got] == [tuple(p.shape) for p in want]
    for args in [(3,), (4, 1), (7, 1), (10, 1)]:
        assert [p.shape for p in t.chunk(*args)] == [tuple(p.shape) for p in tt.chunk(*args)]


@pytest.mark.parametrize("bad", [lambda t: t.split([1, 1], 1), lambda t: t.chunk(0), lambda t: t.split(0),
                                 lambda t: t.transpose(0, 3), lambda t: t.permute(0, 0, 1), lambda t: t.permute(0, 1),
                                 lambda t: t.expand(3, 3, 4), lambda t: t.expand(2, 3), lambda t: t.squeeze(5),
                                 lambda t: t.unsqueeze(4), lambda t: t.flatten(2, 0), lambda t: t.narrow(0, 1, 5),
                                 lambda t: t.select(1, 3), lambda t: t.unbind(3), lambda t: t.mT[None].T.view(-1)])
def test_view_errors(bad):
    t, _ = base(2, 3, 4)
    with pytest.raises((ValueError, IndexError, RuntimeError)):
        bad(t)


def test_as_strided_out_of_bounds():
    t, _ = base(2, 3)
    with pytest.raises((ValueError, RuntimeError), match="storage|bounds|size"):
        t.as_strided((10,), (1,))


# ---- cat / stack

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(6, 12, dtype=np.float32).reshape(2, 3)
    got = lepton.cat([lepton.tensor(a), lepton.tensor(b).T.contiguous().T, lepton.tensor(a)[:, :]], dim)
    assert_close(got, np.concatenate([a, b, a], axis=dim))


def test_cat_empty_and_promotion():
    a = lepton.ones(2, 3)
    e = lepton.zeros(0, 3)
    assert lepton.cat([e, a, e]).shape == (2, 3)
    r = lepton.cat([lepton.tensor([1, 2]), lepton.tensor([0.5])])
    assert r.dtype == lepton.float32
    np.testing.assert_array_equal(to_np(r), [1, 2, 0.5])
    r = lepton.cat([lepton.tensor([True]), lepton.tensor([3], dtype=lepton.int8)])
    assert r.dtype == lepton.int8
    assert lepton.cat([lepton.ones(2, dtype=lepton.float16), lepton.ones(2, dtype=lepton.bfloat16)]).dtype == lepton.float32
    assert lepton.cat((a,)).data_ptr() != a.data_ptr()  # always a new tensor


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack(dim):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = lepton.stack([lepton.tensor(a), lepton.tensor(a * 2), lepton.tensor(a).T.T], dim)
    assert_close(got, np.stack([a, a * 2, a], axis=dim))
    assert lepton.stack([lepton.tensor(1), lepton.tensor(2.5)]).dtype == lepton.float32


@pytest.mark.parametrize("bad,match", [
    (lambda: lepton.cat([lepton.ones(2, 3), lepton.ones(2, 4)]), r"\[2, 4\]|\(2, 4\)|size"),
    (lambda: lepton.cat([lepton.ones(2, 3), lepton.ones(3)]), "dim"),
    (lambda: lepton.cat([]), "empty|non-empty|at least"),
    (lambda: lepton.cat([lepton.ones(2)], 1), "dim|range"),
    (lambda: lepton.stack([lepton.ones(2), lepton.ones(3)]), "shape|size"),
    (lambda: lepton.stack([]), "empty|non-empty|at least"),
    (lambda: lepton.stack([lepton.ones(2)], 3), "dim|range"),
])
def test_cat_stack_errors(bad, match):
    with pytest.raises((ValueError, IndexError, RuntimeError), match=match):
        bad()


def test_cat_stack_torch():
    torch = pytest.importorskip("torch")
    for dts in [(lepton.int32, lepton.float16), (lepton.uint8, lepton.int8), (lepton.bool, lepton.float64),
                (lepton.bfloat16, lepton.int64)]:
        xs = [lepton.ones(2, dtype=d) for d in dts]
        ts = [torch.ones(2, dtype=getattr(torch, d.name)) for d in dts]
        want = torch.cat(ts).dtype
        want = "int32" if want == torch.int16 else str(want)[6:]  # Lepton has no int16
        assert lepton.cat(xs).dtype.name == want
