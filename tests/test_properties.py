"""Hypothesis property tests: broadcasting, reductions over dim subsets, basic indexing vs numpy."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lepton
from conftest import assert_close, lt

settings.register_profile("lepton", max_examples=50, deadline=None, derandomize=True)
settings.load_profile("lepton")

small_shape = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


@given(small_shape, small_shape, st.sampled_from(["add", "mul", "maximum", "ge"]))
def test_broadcasting_matches_numpy(sa, sb, op):
    a = np.arange(int(np.prod(sa)), dtype=np.float32).reshape(sa)
    b = (np.arange(int(np.prod(sb)), dtype=np.float32) * 0.5).reshape(sb)
    np_op = {"add": np.add, "mul": np.multiply, "maximum": np.maximum, "ge": np.greater_equal}[op]
    try:
        expected = np_op(a, b)
    except ValueError:
        with pytest.raises((ValueError, RuntimeError), match="broadcast"):
            getattr(lepton, op)(lt(a), lt(b))
        return
    assert_close(getattr(lepton, op)(lt(a), lt(b)), expected)


@st.composite
def tensor_and_dims(draw):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple))
    dims = draw(st.lists(st.integers(-len(shape), len(shape) - 1), unique_by=lambda d: d % len(shape), max_size=len(shape)))
    keepdim = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    transpose = draw(st.booleans())
    return shape, dims, keepdim, seed, transpose


@given(tensor_and_dims(), st.sampled_from(["sum", "mean", "amax", "amin", "prod", "var", "logsumexp"]))
def test_reductions_over_dim_subsets(case, name):
    shape, dims, keepdim, seed, transpose = case
    a = np.random.default_rng(seed).uniform(0.5, 1.5, size=shape)
    x = lt(a)
    if transpose and a.ndim > 1:
        a = a.swapaxes(0, -1)
        x = x.transpose(0, -1)
    if not dims and name == "logsumexp":
        return  # logsumexp needs dims
    axis = tuple(d % a.ndim for d in dims) if dims else None
    ref = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min, "prod": np.prod,
           "var": lambda v, axis, keepdims: np.var(v, axis=axis, keepdims=keepdims, ddof=1),
           "logsumexp": lambda v, axis, keepdims: np.log(np.exp(v).sum(axis=axis, keepdims=keepdims))}[name]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # var of one element: nan, as Lepton gives
        expected = ref(a, axis=axis, keepdims=keepdim)
    got = getattr(x, name)(dims if dims else None, keepdim=keepdim) if name != "var" else \
        x.var(dims if dims else None, keepdim=keepdim)
    assert_close(got, np.asarray(expected), rtol=1e-12, atol=1e-12)


@st.composite
def basic_index(draw):
    shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple))
    items, d = [], 0
    ellipsis_used = False
    while d < len(shape) and draw(st.booleans()):
        kind = draw(st.sampled_from(["int", "slice", "none", "ellipsis"]))
        n = shape[d]
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
            d += 1
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 2, n + 2)
            items.append(slice(draw(bound), draw(bound), draw(st.none() | st.integers(1, 3))))
            d += 1
        elif kind == "none":
            items.append(None)
        elif not ellipsis_used:
            ellipsis_used = True
            items.append(Ellipsis)
            d = len(shape)  # whatever follows indexes from the end: keep it simple
    return shape, tuple(items)


@given(basic_index())
def test_basic_indexing_matches_numpy(case):
    shape, key = case
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t = lt(a)
    got = t[key]
    assert_close(got, a[key])
    if got.numel():  # basic indexing is a view: writes reach the base
        got.fill_(-1)
        a[key] = -1
        assert_close(t, a)
