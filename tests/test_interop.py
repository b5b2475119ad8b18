"""NumPy (zero-copy), DLPack (numpy, torch), Python conversions and repr."""

import numpy as np
import pytest

import lepton
from conftest import ALL_DTYPES, NP_DTYPE, assert_close, lt, sample, to_np


@pytest.mark.parametrize("np_dtype", [np.bool_, np.uint8, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64])
def test_from_numpy_zero_copy_both_ways(np_dtype):
    a = np.zeros((3, 4), np_dtype)
    t = lepton.from_numpy(a)
    assert t.dtype.name == np.dtype(np_dtype).name and t.data_ptr() == a.ctypes.data
    a[1, 2] = 1
    assert t[1, 2].item() == 1
    t[0, 0] = 1
    assert a[0, 0] == 1
    back = t.numpy()
    back[2, 3] = 1
    assert a[2, 3] == 1 and np.shares_memory(back, a)


def test_from_numpy_strided_and_keeps_owner_alive():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    v = a[::2, 1::2]
    t = lepton.from_numpy(v)
    assert t.stride() == (12, 2)
    np.testing.assert_array_equal(t.numpy(), v)
    t2 = lepton.from_numpy(np.arange(5.0))  # the array's only reference is the tensor
    import gc
    gc.collect()
    assert t2.tolist() == [0, 1, 2, 3, 4]


def test_from_numpy_negative_strides_and_bad_dtypes():
    a = np.arange(6.0)[::-1]
    try:
        t = lepton.from_numpy(a)
    except (ValueError, TypeError) as e:
        assert "stride" in str(e)
    else:
        np.testing.assert_array_equal(t.numpy(), a)
    for bad in (np.array(["a"]), np.zeros(2, np.complex64), np.zeros(2, np.uint32)):
        with pytest.raises(TypeError, match="dtype|type"):
            lepton.from_numpy(bad)


@pytest.mark.parametrize("view,ref", [(lambda t: t.T, lambda a: a.T), (lambda t: t[:, ::2], lambda a: a[:, ::2]),
                                      (lambda t: t[1:, 1], lambda a: a[1:, 1]),
                                      (lambda t: t[:1].expand(3, 4), lambda a: np.broadcast_to(a[:1], (3, 4)))])
def test_numpy_of_views(view, ref):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = view(lepton.from_numpy(a)).numpy()
    np.testing.assert_array_equal(got, ref(a))
    assert np.shares_memory(got, a)  # strided views need no copy


def test_numpy_views_share_memory():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = lepton.from_numpy(a)
    got = t.T.numpy()
    np.testing.assert_array_equal(got, a.T)
    assert np.shares_memory(got, a)
    np.testing.assert_array_equal(t[:, ::2].numpy(), a[:, ::2])
    np.testing.assert_array_equal(np.asarray(t[1:, 1]), a[1:, 1])
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float64), a)


def test_numpy_bfloat16_error():
    with pytest.raises(TypeError, match="bfloat16"):
        lepton.ones(2, dtype=lepton.bfloat16).numpy()


@pytest.mark.parametrize("dtype", [d for d in ALL_DTYPES if d != lepton.bfloat16])
def test_dlpack_numpy(dtype):
    a = sample((3, 5), dtype)
    t = lt(a, dtype)
    n = np.from_dlpack(t)
    np.testing.assert_array_equal(n, a)
    assert np.shares_memory(n, t.numpy())
    v = np.from_dlpack(t.T)  # strided
    np.testing.assert_array_equal(v, a.T)
    back = lepton.from_dlpack(a)
    assert back.dtype == dtype and back.data_ptr() == a.ctypes.data
    back2 = lepton.from_dlpack(a.T)
    np.testing.assert_array_equal(back2.numpy(), a.T)
    assert t.__dlpack_device__() == (1, 0)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dlpack_torch(dtype):
    torch = pytest.importorskip("torch")
    a = sample((4, 6), dtype)
    t = lt(a, dtype)
    tt = torch.from_dlpack(t)
    assert str(tt.dtype) == "torch." + dtype.name
    assert tt.data_ptr() == t.data_ptr()
    assert_close(t, tt)
    tt[0, 0] = 1  # shared memory: writes are visible
    assert t[0, 0].item() == 1
    nc = torch.from_dlpack(t[:, 1::2].T)
    assert tuple(nc.stride()) == t[:, 1::2].T.stride()
    assert_close(t[:, 1::2].T, nc)
    src = torch.from_numpy(a.astype(np.float32)).to(getattr(torch, dtype.name))[::2, 1:].t()
    back = lepton.from_dlpack(src)
    assert back.dtype == dtype and back.shape == tuple(src.shape) and back.stride() == tuple(src.stride())
    assert back.data_ptr() == src.data_ptr()
    assert_close(back, src)
    assert_close(lepton.from_dlpack(torch.tensor(2.5)), torch.tensor(2.5))


def test_dlpack_lifetime():
    torch = pytest.importorskip("torch")
    t = lepton.arange(10.0)
    tt = torch.from_dlpack(t)
    del t
    import gc
    gc.collect()
    assert tt.sum().item() == 45
    x = lepton.from_dlpack(torch.arange(5.0))
    gc.collect()
    assert x.sum().item() == 10


def test_item_and_python_conversions():
    assert lepton.tensor(2.5).item() == 2.5 and isinstance(lepton.tensor(2.5).item(), float)
    assert lepton.tensor([7]).item() == 7 and isinstance(lepton.tensor([7]).item(), int)
    assert lepton.tensor(True).item() is True
    assert lepton.tensor(1.5, dtype=lepton.bfloat16).item() == 1.5
    assert float(lepton.tensor([[3]])) == 3.0 and int(lepton.tensor(3.9)) == 3 and bool(lepton.tensor([0.0])) is False
    assert [10, 20][lepton.tensor(1)] == 20  # __index__
    with pytest.raises((ValueError, RuntimeError), match="2|element"):
        lepton.ones(2).item()
    with pytest.raises((ValueError, RuntimeError), match="ambiguous"):
        bool(lepton.ones(2))
    with pytest.raises(TypeError):
        [1, 2][lepton.tensor(1.0)]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_tolist(dtype):
    a = sample((2, 3), dtype)
    got = lt(a, dtype).T.tolist()
    assert got == a.T.tolist()
    assert type(got[0][0]) is type(a.T.tolist()[0][0])
    assert lt(a, dtype)[0, 0].tolist() == a[0, 0].item()
    assert lepton.zeros(0, 3).tolist() == []


def test_iteration_and_len():
    t = lepton.arange(6).reshape(3, 2)
    rows = list(t)
    assert len(rows) == 3 and rows[2].tolist() == [4, 5]
    with pytest.raises(TypeError):
        len(lepton.tensor(1))
    with pytest.raises(TypeError):
        iter(lepton.tensor(1))


@pytest.mark.parametrize("t,expected", [
    (lambda: lepton.tensor([1.0, 2.5]), "tensor([1. , 2.5])"),
    (lambda: lepton.tensor([1, 2]), "tensor([1, 2])"),
    (lambda: lepton.tensor([True]), "tensor([ True])"),
    (lambda: lepton.tensor(3.0), "tensor(3.)"),
    (lambda: lepton.tensor([1.5], dtype=lepton.float16), "tensor([1.5], dtype=lepton.float16)"),
    (lambda: lepton.tensor([1.5], dtype=lepton.bfloat16), "tensor([1.5], dtype=lepton.bfloat16)"),
    (lambda: lepton.tensor([1], dtype=lepton.int8), "tensor([1], dtype=lepton.int8)"),
    (lambda: lepton.zeros(0, 3), "tensor([], size=(0, 3))"),
])
def test_repr(t, expected):
    assert repr(t()) == expected
    assert str(t()) == expected


def test_repr_large_and_misc():
    r = repr(lepton.arange(10000.0).reshape(100, 100))
    assert "..." in r and len(r) < 2000
    assert repr(lepton.device("cpu")) == "device(type='cpu')" and str(lepton.device("cuda:1")) == "cuda:1"
    assert lepton.device("cuda", 1).index == 1 and lepton.device("cpu") == "cpu"
    x = lepton.ones(2)
    assert x.device == lepton.device("cpu") and not x.is_cuda and x.itemsize == 4 and x.nbytes == 8
    assert x.type() == "lepton.float32" and x.is_floating_point()
