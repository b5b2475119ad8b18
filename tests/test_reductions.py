"""Reductions vs numpy and torch: dims/keepdim, dtypes, NaN, ties, empty inputs, large parallel sizes."""

import numpy as np
import pytest

import lepton
from conftest import ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, NP_DTYPE, assert_close, lt, sample, to_np

DIMS = [None, 0, 1, -1, (0, 2), (1, 2), (0, 1, 2), (2, 0)]


def np_dims(d):
    return tuple(d) if isinstance(d, (tuple, list)) else d


# float32 sums in a different order than numpy's pairwise float64: rtol 1e-5
@pytest.mark.parametrize("name,ref", [("sum", np.sum), ("mean", np.mean), ("prod", np.prod), ("amax", np.max),
                                      ("amin", np.min)])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_basic_reductions(name, ref, dim, keepdim):
    a = sample((3, 4, 5), low=0.5, high=1.5)
    x = lt(a).permute(0, 1, 2) if dim != 1 else lt(a.transpose(2, 1, 0).copy()).permute(2, 1, 0)
    got = getattr(x, name)(dim=dim, keepdim=keepdim) if dim is not None or name != "max" else None
    expected = ref(a.astype(np.float64), axis=np_dims(dim), keepdims=keepdim).astype(np.float32)
    assert_close(got, expected, rtol=1e-5, atol=1e-5)
    free = getattr(lepton, name)(x, dim, keepdim) if dim is not None else getattr(lepton, name)(x)
    assert_close(free, ref(a.astype(np.float64), axis=np_dims(dim), keepdims=keepdim and dim is not None)
                 .astype(np.float32), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("correction", [0, 1, 2])
@pytest.mark.parametrize("keepdim", [False, True])
def test_var_std(dim, correction, keepdim):
    a = sample((3, 4, 5), dtype=lepton.float64)
    x = lt(a)
    kw = dict(axis=np_dims(dim), keepdims=keepdim, ddof=correction)
    assert_close(x.var(dim, correction=correction, keepdim=keepdim), np.var(a, **kw))
    assert_close(x.std(dim, correction=correction, keepdim=keepdim), np.std(a, **kw))
    if correction in (0, 1):
        assert_close(x.var(dim, unbiased=bool(correction), keepdim=keepdim), np.var(a, **kw))


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns that var of one element is nan
def test_var_default_is_unbiased_and_single_element():
    torch = pytest.importorskip("torch")
    a = sample((4, 6))
    assert_close(lt(a).var(), torch.from_numpy(a).var(), rtol=1e-5, atol=1e-6)
    assert_close(lt(a).std(1), torch.from_numpy(a).std(1), rtol=1e-5, atol=1e-6)
    one = np.array([[3.0]], np.float32)
    assert_close(lt(one).var(), torch.from_numpy(one).var())  # nan (or inf) as in torch: 0 / 0


@pytest.mark.parametrize("dtype", INT_DTYPES + [lepton.bool])
def test_int_sum_prod_is_int64(dtype):
    torch = pytest.importorskip("torch")
    a = sample((4, 5), dtype, low=-0.3, high=0.3)
    ta = torch.from_numpy(a)
    for dim in (None, 0, 1):
        args = () if dim is None else (dim,)
        assert_close(lt(a, dtype).sum(*args), ta.sum(*args))
        assert_close(lt(a, dtype).prod(*args), ta.prod(*args))
        assert_close(lt(a, dtype).amax(*args), ta.amax(*args))
        # torch's all/any of uint8 return uint8; Lepton always returns bool
        assert_close(lt(a, dtype).all(*args), ta.all(*args).bool())
        assert_close(lt(a, dtype).any(*args), ta.any(*args).bool())
    assert lt(a, dtype).sum(dtype=lepton.float64).dtype == lepton.float64


@pytest.mark.parametrize("dtype", [lepton.float16, lepton.bfloat16])
def test_half_reductions(dtype):
    torch = pytest.importorskip("torch")
    a = sample((64, 50), dtype, low=0, high=2)
    ta = torch.from_numpy(a).to(getattr(torch, dtype.name))
    x = lt(a, dtype)
    for name in ("sum", "mean", "amax", "amin"):
        for dim in (None, 0, 1):
            args = () if dim is None else (dim,)
            got, want = getattr(x, name)(*args), getattr(ta, name)(*args)
            assert_close(got, want, rtol=1e-2, atol=1e-2)
    # accumulation is wider than the storage type, as in torch: 4096 ones sum exactly
    ones = lepton.ones(4096, dtype=dtype)
    assert ones.sum().item() == 4096 and ones.mean().item() == 1
    big = lepton.ones(100_000, dtype=lepton.float16)
    assert big.mean().item() == 1  # the float16 sum overflows (inf); the mean must not


def test_mean_of_ints_is_type_error():
    with pytest.raises(TypeError, match="int64"):
        lepton.arange(5).mean()
    with pytest.raises(TypeError, match="int32"):
        lepton.arange(5, dtype=lepton.int32).var()
    assert lepton.arange(5).mean(dtype=lepton.float32).item() == 2


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float16, lepton.int32, lepton.uint8, lepton.float64])
def test_max_min_with_indices(dim, keepdim, dtype):
    torch = pytest.importorskip("torch")
    a = sample((5, 7), dtype, low=-1, high=1)
    a = np.round(a * 2) if dtype in FLOAT_DTYPES else a // 4  # many ties
    a = a.astype(NP_DTYPE[dtype])
    x, ta = lt(a, dtype).T.contiguous().T, torch.from_numpy(a)
    for name in ("max", "min"):
        got = getattr(x, name)(dim, keepdim)
        want = getattr(ta, name)(dim, keepdim)
        assert_close(got.values, want.values)
        assert_close(got.indices, want.indices)  # first index of ties
        v, i = getattr(lepton, name)(x, dim=dim, keepdim=keepdim)
        assert_close(i, want.indices)
        assert_close(getattr(x, "arg" + name)(dim, keepdim), want.indices)
    assert_close(x.argmax(), ta.argmax())
    assert_close(x.argmin(keepdim=True), ta.argmin(keepdim=True))
    assert_close(x.max(), ta.max())


def test_nan_propagation():
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, np.nan, 3.0, np.nan], [4.0, 2.0, -1.0, 0.0], [np.inf, -np.inf, 1.0, 2.0]], np.float32)
    x, ta = lt(a), torch.from_numpy(a)
    for dim in (0, 1):
        for name in ("max", "min"):
            got, want = getattr(x, name)(dim), getattr(ta, name)(dim)
            assert_close(got.values, want.values)
            assert_close(got.indices, want.indices)  # index of the first NaN
        assert_close(x.argmax(dim), ta.argmax(dim))
        assert_close(x.amax(dim), ta.amax(dim))
        assert_close(x.sum(dim), ta.sum(dim))
        assert_close(x.logsumexp(dim), ta.logsumexp(dim))
    assert np.isnan(x.max().item()) and np.isnan(x.amin().item())
    assert x.argmax().item() == 1


def test_logsumexp():
    torch = pytest.importorskip("torch")
    a = sample((4, 6, 3), low=-50, high=50)
    a[0, :, :] = -np.inf  # whole rows of -inf give -inf, not nan
    a[1, 2, 1] = np.inf
    ta = torch.from_numpy(a)
    for dim in (0, 1, (1, 2), -1, (0, 1, 2)):
        for keepdim in (False, True):
            assert_close(lt(a).logsumexp(dim, keepdim), ta.logsumexp(dim, keepdim), rtol=1e-5, atol=1e-5)
    big = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]], np.float32)  # no overflow/underflow
    assert_close(lt(big).logsumexp(1), torch.from_numpy(big).logsumexp(1), rtol=1e-6, atol=1e-4)
    assert_close(lepton.arange(4).logsumexp(0), torch.arange(4).logsumexp(0), rtol=1e-6, atol=1e-6)


def test_all_any():
    a = np.array([[True, False, True], [True, True, True]])
    for dim in (None, 0, 1):
        assert_close(lt(a).all(dim) if dim is not None else lt(a).all(), np.all(a, axis=dim))
        assert_close(lt(a).any(dim) if dim is not None else lt(a).any(), np.any(a, axis=dim))
    f = np.array([0.0, np.nan, 2.0], np.float32)
    assert lt(f).any().item() and not lt(f).all().item()
    assert lepton.zeros(0).all().item() and not lepton.zeros(0).any().item()


@pytest.mark.parametrize("shape,dim", [((0,), None), ((3, 0), 1), ((3, 0), 0), ((0, 4), (0, 1))])
def test_empty_reductions(shape, dim):
    torch = pytest.importorskip("torch")
    a = np.zeros(shape, np.float32)
    ta = torch.from_numpy(a)
    args = () if dim is None else (dim,)
    for name in ("sum", "prod", "mean", "all", "any"):
        if name == "prod" and isinstance(dim, tuple):  # torch's prod takes one dim
            assert_close(lt(a).prod(dim), np.prod(a, axis=dim))
            continue
        assert_close(getattr(lt(a), name)(*args), getattr(ta, name)(*args))
    assert_close(lt(a).logsumexp(dim if dim is not None else 0), ta.logsumexp(dim if dim is not None else 0))


@pytest.mark.parametrize("bad", [lambda: lepton.zeros(0).max(), lambda: lepton.zeros(3, 0).max(1),
                                 lambda: lepton.zeros(3, 0).amax(1), lambda: lepton.zeros(0).argmax(),
                                 lambda: lepton.zeros(3, 0).argmin(1)])
def test_extreme_of_empty_is_error(bad):
    with pytest.raises((ValueError, IndexError, RuntimeError), match=r"empty|size 0|\[3, 0\]|\[0\]"):
        bad()


@pytest.mark.parametrize("bad,exc", [(lambda t: t.sum(3), IndexError), (lambda t: t.sum((0, 0)), (ValueError, RuntimeError)),
                                     (lambda t: t.max(-4), IndexError), (lambda t: t.argmax(3), IndexError),
                                     (lambda t: t.sum("a"), TypeError), (lambda t: t.logsumexp(5), IndexError)])
def test_bad_dims(bad, exc):
    with pytest.raises(exc):
        bad(lepton.ones(2, 3, 4))


def test_zero_dim_input():
    x = lepton.tensor(2.5)
    assert x.sum().item() == 2.5 and x.sum(0).item() == 2.5 and x.max(0).indices.item() == 0
    assert x.argmax().item() == 0 and x.mean(-1).shape == ()


# Large sizes take the parallel kernel paths (rows split across threads, blocked columns).
@pytest.mark.parametrize("shape,dim", [((1_000_003,), None), ((3, 200_000), 1), ((200_000, 3), 0),
                                       ((64, 4097), 1), ((4097, 64), 0)])
def test_large_parallel(shape, dim):
    a = sample(shape, low=-1, high=1, seed=5)
    x = lt(a)
    ref = a.astype(np.float64)
    args = () if dim is None else (dim,)
    n = a.size if dim is None else a.shape[dim]
    # float32 sum of n values of ~unit size: error ~ sqrt(n) * eps relative to the magnitude
    assert_close(x.sum(*args), ref.sum(axis=dim).astype(np.float32), rtol=1e-4, atol=1e-6 * n)
    assert_close(x.mean(*args), ref.mean(axis=dim).astype(np.float32), rtol=1e-4, atol=1e-6)
    assert_close(x.amax(*args), ref.max(axis=dim).astype(np.float32))
    assert_close(x.argmax(*args), np.argmax(a, axis=dim).astype(np.int64))
    assert_close(x.argmin(*args), np.argmin(a, axis=dim).astype(np.int64))
    assert_close(x.var(*args), ref.var(axis=dim, ddof=1).astype(np.float32), rtol=1e-4, atol=1e-6)
    assert_close(x.logsumexp(dim if dim is not None else 0), np.log(np.exp(ref).sum(axis=dim)).astype(np.float32),
                 rtol=1e-5, atol=1e-5)


def test_large_int_sum_exact():
    a = np.arange(1_000_000, dtype=np.int32)
    assert lt(a, lepton.int32).sum().item() == int(a.astype(np.int64).sum())
    assert lepton.ones(1 << 20, dtype=lepton.uint8).sum().item() == 1 << 20
