"""Advanced indexing (integer arrays, masks), index_select, nonzero and __setitem__ vs numpy/torch."""

import numpy as np
import pytest

import lepton
from conftest import ALL_DTYPES, NP_DTYPE, assert_close, lt, sample, to_np

A = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)


def idx_tensor(x):
    return lepton.tensor(np.asarray(x))


# keys built from numpy pieces: lists stay lists, arrays become Lepton tensors on the Lepton side
KEYS = [
    ([1, 0, 1],),
    (Ellipsis, [0, 4, -1]),
    (slice(None), [[0, 1], [2, 0]]),
    (np.array([1, 0]), np.array([2, 1])),                 # adjacent: batch dims stay at 0
    (slice(None), np.array([0, 2]), np.array([1, 3])),    # adjacent, after a slice
    (np.array([0, 1]), slice(None), np.array([1, 3])),    # non-adjacent: batch dims go first
    (slice(None), np.array([[0], [2]]), slice(1, 3), np.array([1, 4])),  # broadcast indices, non-adjacent
    (np.array([-1, 0]), 1),
    (1, np.array([2, 0, 2])),
    (None, np.array([1]), Ellipsis, np.array([0, 0])),
    (np.array([], dtype=np.int64),),
    (slice(None), np.array([], dtype=np.int64), 0),
    (np.array(1), np.array([0, 2])),                      # 0-d index tensor
    (A.sum(axis=(2, 3)) > 500,),                          # mask over the first two dims
    (slice(None), A[0, :, :, 0] % 3 == 0),                # mask in the middle
    (A > 100,),                                           # full mask
    (A[..., 0, 0] > 5, slice(None, None, 2)),
    (np.array([True, False]), np.array([1, 2])),
    (True,),
    (True, Ellipsis, 0),
    (False,),
    (Ellipsis, np.array([[1, 2]], dtype=np.int32)),
]


def lepton_key(key):
    return tuple(idx_tensor(k) if isinstance(k, np.ndarray) else k for k in key)


@pytest.mark.parametrize("key", KEYS, ids=range(len(KEYS)))
def test_getitem_advanced_matches_numpy(key):
    t = lepton.tensor(A)
    got = t[lepton_key(key)]
    assert_close(got, A[key])
    got2 = t.permute(3, 1, 2, 0).contiguous().permute(3, 1, 2, 0)[lepton_key(key)]  # non-contiguous source
    assert_close(got2, A[key])


def test_getitem_int_then_slice_then_array_follows_torch():
    # torch (unlike numpy) applies ints first, so x[0, :, [1, 2]] keeps the sliced dim first
    torch = pytest.importorskip("torch")
    t = lepton.tensor(A)
    for key in [(0, slice(None), [1, 2]), (slice(None), 0, slice(None), [0, 1])]:
        assert_close(t[key], torch.from_numpy(A)[key])


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_getitem_every_dtype(dtype):
    a = sample((4, 6), dtype)
    t = lt(a, dtype)
    np.testing.assert_array_equal(to_np(t[[3, 0, 3]]), a[[3, 0, 3]])
    np.testing.assert_array_equal(to_np(t[:, lepton.tensor([5, 1])]), a[:, [5, 1]])
    np.testing.assert_array_equal(to_np(t[lt(a != 0, lepton.bool)]), a[a != 0])


def test_advanced_result_is_a_copy():
    t = lepton.tensor(A)
    r = t[[0, 1]]
    r.fill_(0)
    assert to_np(t).sum() == A.sum()


def test_uint8_and_int32_index_tensors():
    t = lepton.tensor(A)
    assert_close(t[lepton.tensor([1, 0], dtype=lepton.int32)], A[[1, 0]])


@pytest.mark.parametrize("key", [(2,), (-3,), (0, 3), (slice(None), [0, 3]), ([2],), (0, 0, 0, 0, 0),
                                 (lepton.tensor([0, -4]),), (Ellipsis, [5])])
def test_index_out_of_range(key):
    t = lepton.tensor(A)
    with pytest.raises(IndexError):
        t[key]
    with pytest.raises(IndexError):
        t[key] = 1.0


@pytest.mark.parametrize("key,exc", [((Ellipsis, Ellipsis), IndexError), ((lepton.tensor([0.5]),), IndexError),
                                     (("a",), IndexError), ((lepton.ones(3, dtype=lepton.bool),), IndexError),
                                     ((1.5,), IndexError), (([0, 1], [0, 1, 2]), (IndexError, ValueError)),
                                     ((slice(None, None, 0),), ValueError), ((slice(None, None, -1),), ValueError)])
def test_bad_index_types(key, exc):
    t = lepton.tensor(A)
    with pytest.raises(exc):
        t[key]


def test_scalar_tensor_indexing():
    s = lepton.tensor(3.5)
    assert s[()].item() == 3.5 and s[None].shape == (1,) and s[...].shape == ()
    with pytest.raises(IndexError):
        s[0]


# ---- index_select / nonzero

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_select(dim):
    t = lepton.tensor(A[0])
    idx = [2, 0, 2]
    got = t.index_select(dim, lepton.tensor(idx))
    assert_close(got, np.take(A[0], idx, axis=dim))
    assert_close(lepton.index_select(t.T, dim, lepton.tensor(1)), np.take(A[0].T, [1], axis=dim))


def test_index_select_errors():
    t = lepton.tensor(A[0])
    with pytest.raises(IndexError):
        t.index_select(0, lepton.tensor([3]))
    with pytest.raises(IndexError):
        t.index_select(0, lepton.tensor([0.0]))
    with pytest.raises(IndexError):
        t.index_select(0, lepton.tensor([[0]]))
    with pytest.raises(IndexError):
        t.index_select(3, lepton.tensor([0]))


@pytest.mark.parametrize("shape", [(0,), (5,), (3, 4), (2, 3, 4), ()])
def test_nonzero(shape):
    a = (np.arange(int(np.prod(shape))).reshape(shape) % 3 == 1) if shape else np.array(True)
    got = lepton.tensor(a).nonzero()
    assert got.dtype == lepton.int64
    expected = np.argwhere(a).astype(np.int64)  # a 0-d True gives shape (1, 0), as in torch
    np.testing.assert_array_equal(to_np(got), expected)
    assert got.shape == expected.shape
    assert_close(lepton.tensor(a.astype(np.float32)).T.nonzero(), np.argwhere(a.T).astype(np.int64))


# ---- __setitem__

SET_CASES = [
    ((0,), 5.0),
    ((slice(None), 1), np.arange(4 * 5, dtype=np.float32).reshape(4, 5)),
    ((Ellipsis, slice(None, None, 2)), np.array([1, 2, 3], np.float32)),     # broadcast value
    ((slice(None), slice(1, None), 0), np.float32(7)),
    (([1, 0],), 2.5),
    ((slice(None), [2, 0], slice(None), [1, 3]), np.array([[[10]], [[20]]], np.float32)),  # non-adjacent
    ((np.array([0, 1]), np.array([2, 1])), np.arange(20, dtype=np.float32).reshape(4, 5)),
    ((A > 60,), -1.0),
    ((slice(None), A[0, :, :, 0] > 3), np.arange(5, dtype=np.float32)),
    ((None, 1, [0]), 3.0),
    ((np.array([], dtype=np.int64),), 1.0),
]


@pytest.mark.parametrize("key,value", SET_CASES, ids=range(len(SET_CASES)))
def test_setitem(key, value):
    a = A.copy()
    a[key] = value
    t = lepton.tensor(A)
    ptr = t.data_ptr()
    t[lepton_key(key)] = lepton.tensor(value) if isinstance(value, np.ndarray) else value
    assert t.data_ptr() == ptr
    assert_close(t, a)


def test_setitem_into_view_and_dtype_cast():
    t = lepton.zeros(4, 6, dtype=lepton.int32)
    v = t[:, ::2]
    v[1:3] = lepton.tensor([[1.9, 2.0, -3.7]])  # float into int: truncates, like torch
    expected = np.zeros((4, 6), np.int32)
    expected[1:3, ::2] = np.trunc([[1.9, 2.0, -3.7]])
    np.testing.assert_array_equal(to_np(t), expected)
    t[[0, 0]] = 9  # duplicate indices with the same value
    assert (to_np(t)[0] == 9).all()


def test_setitem_bool_tensor():
    t = lepton.zeros(3, dtype=lepton.bool)
    t[1] = True
    t[lepton.tensor([0])] = 1
    np.testing.assert_array_equal(to_np(t), [True, True, False])


def test_setitem_bad_value_shape():
    t = lepton.zeros(3, 4)
    with pytest.raises((ValueError, RuntimeError), match=r"\[2\]|\(2,\)|shape"):
        t[:, [0, 1, 2]] = lepton.ones(2)
    with pytest.raises((ValueError, RuntimeError), match="shape|broadcast"):
        t[0] = lepton.ones(3)
    with pytest.raises(TypeError):
        t[0] = "x"


def test_setitem_matches_torch():
    torch = pytest.importorskip("torch")
    t, tt = lepton.tensor(A), torch.from_numpy(A.copy())
    for key, val in [((0, slice(None), [1, 2]), 4.0), ((slice(None), 0, slice(None), [0, 1]), -1.0)]:
        t[key] = val
        tt[key] = val
    assert_close(t, tt)
