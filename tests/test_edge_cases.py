"""Edge cases of the tensor core where Lepton must do what torch 2.13 does, raise or return:
integer division by zero, from_numpy's byte order / read-only arrays / missing dtypes, uint8
indices as masks, chunk of empty tensors, numbers too large for an integer dtype, and Python
ints beyond int64 as sizes and indices. torch is the oracle."""

import math
import warnings

import numpy as np
import pytest

import lepton

torch = pytest.importorskip("torch")

INT_DTYPES = ["uint8", "int8", "int32", "int64"]


def outcome(fn):
    """("ok", values) or ("raise", exception type) of fn(), for comparing Lepton with torch."""
    try:
        r = fn()
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        return "raise", type(e)
    return "ok", r.tolist() if hasattr(r, "tolist") else r


def same_outcome(fn):
    """fn(module) behaves alike for lepton and torch: the same values, or the same exception type."""
    ours, theirs = outcome(lambda: fn(lepton)), outcome(lambda: fn(torch))
    assert ours[0] == theirs[0] and (ours[1] == theirs[1] or ours[0] == "ok" and _nan_equal(ours[1], theirs[1])), \
        f"lepton {ours} vs torch {theirs}"
    return ours


def _nan_equal(a, b):
    return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


# ---- integer // and % by zero

DIVISIONS = {
    "floordiv": lambda m, a, b: a // b,
    "mod": lambda m, a, b: a % b,
    "floor_divide": lambda m, a, b: m.floor_divide(a, b),
    "remainder": lambda m, a, b: m.remainder(a, b),
    "ifloordiv": lambda m, a, b: a.__ifloordiv__(b),
    "imod": lambda m, a, b: a.__imod__(b),
}


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", DIVISIONS)
def test_integer_division_by_zero_raises(dtype, op):
    f = DIVISIONS[op]
    for divisor in ([3, 0, 1], [0], 0):  # a zero anywhere in a tensor, a broadcast 0, a Python 0
        def run(m, divisor=divisor):
            a = m.tensor([7, 5, 2], dtype=getattr(m, dtype))
            b = m.tensor(divisor, dtype=getattr(m, dtype)) if isinstance(divisor, list) else divisor
            return f(m, a, b)

        assert same_outcome(run) == ("raise", RuntimeError)
        with pytest.raises(RuntimeError, match=r"integer division by zero \(ZeroDivisionError\)"):
            run(lepton)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_integer_division_by_zero_reversed_and_in_place(dtype):
    assert same_outcome(lambda m: 5 // m.tensor([1, 0], dtype=getattr(m, dtype))) == ("raise", RuntimeError)
    assert same_outcome(lambda m: 5 % m.tensor([0], dtype=getattr(m, dtype))) == ("raise", RuntimeError)
    a = lepton.tensor([7, 5], dtype=getattr(lepton, dtype))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        a //= lepton.tensor([2, 0], dtype=a.dtype)
    assert a.tolist() == [7, 5]  # checked before anything is written


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_integer_division_without_zero_matches_torch(dtype):
    info = np.iinfo(dtype)
    a = [7, -7, 7, -7, 0, int(info.min), int(info.min), int(info.max)]
    b = [2, 2, -2, -2, 3, -1, 1, -1]
    for op in ("floordiv", "mod"):
        same_outcome(lambda m: DIVISIONS[op](m, *(m.tensor(v, dtype=getattr(m, dtype)) for v in (a, b))))


def test_division_by_zero_of_floats_and_empty_results_do_not_raise():
    assert same_outcome(lambda m: m.tensor([5.0, -1.0, 0.0]) // 0)[0] == "ok"
    assert same_outcome(lambda m: m.tensor([5.0, -1.0]) % m.tensor([0.0, 0.0]))[0] == "ok"
    # no element is computed, so no division happens
    assert same_outcome(lambda m: m.zeros(0, 1, dtype=m.int64) // m.zeros(1, 3, dtype=m.int64)) == ("ok", [])


# ---- from_numpy

@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i4", ">i8", ">f2"])
def test_from_numpy_refuses_non_native_byte_order(dtype):
    arr = np.arange(4, dtype=dtype)
    for make in (lambda m: m.from_numpy(arr), lambda m: m.tensor(arr), lambda m: m.as_tensor(arr)):
        assert same_outcome(make) == ("raise", ValueError)
    with pytest.raises(ValueError, match=rf"dtype {dtype} has a byte order different from the native byte order"):
        lepton.from_numpy(arr)
    native = arr.astype(arr.dtype.newbyteorder("="))  # the conversion the message suggests
    assert lepton.from_numpy(native).tolist() == [0, 1, 2, 3]


def test_from_numpy_single_byte_types_have_no_byte_order():
    for dtype in (">u1", "<i1", "|b1"):
        arr = np.arange(4).astype(dtype)
        assert same_outcome(lambda m: m.from_numpy(arr))[0] == "ok"


def test_from_numpy_of_a_read_only_array_warns_and_shares():
    base = np.arange(4, dtype=np.float32)
    ro = base.view()
    ro.flags.writeable = False
    for m in (torch, lepton):
        with pytest.warns(UserWarning, match="NumPy array is not writable"):
            t = m.from_numpy(ro)
        base[0] = 7  # the tensor shares the array's memory, as in torch
        assert t[0].item() == 7
        base[0] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lepton.from_numpy(base)  # a writable array: no warning


@pytest.mark.parametrize("dtype", ["int16", "uint16", "uint32", "uint64", "complex64"])
def test_from_numpy_names_a_dtype_lepton_lacks(dtype):
    assert not hasattr(lepton, dtype)  # torch has these; Lepton does not
    with pytest.raises(TypeError, match=rf"dtype {dtype}: Lepton has no such dtype"):
        lepton.from_numpy(np.zeros(2, dtype=dtype))


# ---- uint8 tensors index as masks

MASK = [1, 0, 2, 0, 1]  # nonzero counts as true


def uint8_warning():
    return pytest.warns(UserWarning, match="indexing with dtype .*uint8 is now deprecated")


@pytest.mark.parametrize("key", [
    lambda m: m.tensor(MASK, dtype=m.uint8),
    lambda m: np.array(MASK, dtype=np.uint8),
    lambda m: (m.tensor(MASK, dtype=m.uint8),),
])
def test_uint8_index_is_a_mask(key):
    with uint8_warning():
        assert same_outcome(lambda m: m.arange(5)[key(m)]) == ("ok", [0, 2, 4])


def test_uint8_masks_in_more_dimensions():
    x = lambda m: m.arange(6).reshape(2, 3)
    with uint8_warning():
        assert same_outcome(lambda m: x(m)[m.tensor([1, 0], dtype=m.uint8)]) == ("ok", [[0, 1, 2]])
    with uint8_warning():
        assert same_outcome(lambda m: x(m)[m.tensor([[1, 0, 1], [0, 1, 0]], dtype=m.uint8)]) == ("ok", [0, 2, 4])
    with uint8_warning():
        assert same_outcome(lambda m: x(m)[m.tensor([0, 1], dtype=m.uint8), 1]) == ("ok", [4])
    with uint8_warning():
        assert same_outcome(lambda m: m.arange(5)[m.tensor([1, 0], dtype=m.uint8)]) == ("raise", IndexError)


def test_zero_dim_uint8_index_is_a_scalar_mask():
    for v in (1, 0):
        assert same_outcome(lambda m: m.arange(3)[m.tensor(v, dtype=m.uint8)])[0] == "ok"


def test_uint8_mask_assignment():
    def put(m):
        x = m.arange(5)
        x[m.tensor(MASK, dtype=m.uint8)] = m.tensor([7, 8, 9])
        return x

    with uint8_warning():
        assert same_outcome(put) == ("ok", [7, 1, 8, 3, 9])
    # torch 2.13 refuses a number here (its masked_fill_ takes bool masks only); Lepton takes it as the mask it is
    x = lepton.arange(5)
    with uint8_warning():
        x[lepton.tensor(MASK, dtype=lepton.uint8)] = 9
    assert x.tolist() == [9, 1, 9, 3, 9]


def test_other_small_integer_indices_are_refused():
    assert same_outcome(lambda m: m.arange(5)[m.tensor([1, 0], dtype=m.int8)]) == ("raise", IndexError)
    assert same_outcome(lambda m: m.arange(5)[m.tensor([1, 0], dtype=m.int32)]) == ("ok", [1, 0])
    with pytest.raises(IndexError, match="index must be an int64 or int32 tensor, got uint8"):
        lepton.arange(5).index_select(0, lepton.tensor([1, 0], dtype=lepton.uint8))  # torch: RuntimeError


# ---- chunk

@pytest.mark.parametrize("size", range(8))
@pytest.mark.parametrize("chunks", [1, 2, 3, 4, 5])
def test_chunk_matches_torch(size, chunks):
    ours = [tuple(p.shape) for p in lepton.empty(size).chunk(chunks)]
    assert ours == [tuple(p.shape) for p in torch.empty(size).chunk(chunks)]
    assert ours == [tuple(p.shape) for p in lepton.chunk(lepton.empty(size), chunks)]


def test_chunk_of_an_empty_dimension_gives_every_piece():
    assert [tuple(p.shape) for p in lepton.empty(2, 0).chunk(3, dim=1)] == [(2, 0)] * 3
    assert [tuple(p.shape) for p in torch.empty(2, 0).chunk(3, dim=1)] == [(2, 0)] * 3


# ---- numbers too large for an integer dtype

VALUES = [2**40, 2**31, -2**31, -2**31 - 1, 300, 255, -1, -128, -129, -255, -256, 2**63 - 1, -2**63,
          127.5, 3.7, -3.7, -0.5, 255.99, 1e20, math.inf, -math.inf, math.nan, True]
STORES = {
    "setitem": lambda m, t, v: t.__setitem__(0, v),
    "setitem slice": lambda m, t, v: t.__setitem__(slice(None), v),
    "setitem mask": lambda m, t, v: t.__setitem__(m.tensor([True, False]), v),
    "fill_": lambda m, t, v: t.fill_(v),
    "full": lambda m, t, v: m.full((2,), v, dtype=t.dtype),
    "tensor": lambda m, t, v: m.tensor([v, 1], dtype=t.dtype),
    "tensor 0-d": lambda m, t, v: m.tensor(v, dtype=t.dtype),
}


@pytest.mark.parametrize("dtype", INT_DTYPES + ["bool", "float32"])
@pytest.mark.parametrize("store", STORES)
def test_storing_a_number_checks_its_range_like_torch(dtype, store):
    for v in VALUES:
        def run(m, v=v):
            t = m.zeros(2, dtype=getattr(m, dtype))
            r = STORES[store](m, t, v)
            return t if r is None else r

        same_outcome(run)


def test_overflow_names_the_dtype_and_the_value():
    t = lepton.zeros(2, dtype=lepton.int32)
    for run in (lambda: t.__setitem__(0, 2**40), lambda: t.fill_(2**40), lambda: lepton.full((2,), 2**40, dtype=t.dtype),
                lambda: lepton.tensor([2**40], dtype=t.dtype)):
        with pytest.raises(RuntimeError, match=r"value cannot be converted to type int32 without overflow "
                                               r"\(got 1099511627776\)"):
            run()
    with pytest.raises(RuntimeError, match=r"type uint8 without overflow \(got 1e\+20\)"):
        lepton.full((1,), 1e20, dtype=lepton.uint8)
    assert t.tolist() == [0, 0]


def test_arithmetic_with_large_numbers_wraps_as_in_torch():
    assert same_outcome(lambda m: m.zeros(2, dtype=m.int32) + 2**40) == ("ok", [0, 0])
    assert same_outcome(lambda m: m.zeros(2, dtype=m.uint8) + 300) == ("ok", [44, 44])
    assert same_outcome(lambda m: m.zeros(1, dtype=m.int32) == 2**32) == ("ok", [True])


def test_ints_beyond_int64_in_tensor_data():
    assert same_outcome(lambda m: m.tensor([2**63])) == ("raise", ValueError)
    assert same_outcome(lambda m: m.tensor([2**63], dtype=m.float64)) == ("ok", [2.0**63])
    with pytest.raises(RuntimeError, match=r"int64 without overflow \(got 9223372036854775808\)"):
        lepton.tensor([2**63], dtype=lepton.int64)  # torch: ValueError
    with pytest.raises(RuntimeError, match="int64 without overflow"):
        lepton.tensor([2.0**63], dtype=lepton.int64)  # torch wraps this one to -2**63
    assert lepton.tensor([2147483647.0], dtype=lepton.int32).tolist() == [2147483647]  # no float32 detour


# ---- Python ints beyond int64 as sizes and indices

@pytest.mark.parametrize("make", [
    lambda m: m.empty(2**63), lambda m: m.zeros(2**63), lambda m: m.ones((2, 2**63)), lambda m: m.empty(-2**63 - 1),
    lambda m: m.full((2**64,), 1.0), lambda m: m.arange(3).reshape(2**63), lambda m: m.arange(3).view(2**63),
])
def test_size_beyond_int64_is_a_type_error_naming_it(make):
    assert same_outcome(make) == ("raise", TypeError)
    with pytest.raises(TypeError, match=r"must contain ints that fit in int64, got -?\d{19}"):
        make(lepton)


@pytest.mark.parametrize("index", [2**63, -2**63 - 1, 2**100])
def test_index_beyond_int64_is_a_value_error_naming_it(index):
    assert same_outcome(lambda m: m.arange(3)[index]) == ("raise", ValueError)
    assert same_outcome(lambda m: m.arange(3).__setitem__(index, 1)) == ("raise", ValueError)
    with pytest.raises(ValueError, match=rf"index {index} does not fit in int64"):
        lepton.arange(3)[index]
    with pytest.raises(ValueError, match=rf"index {index} does not fit in int64"):
        lepton.arange(6).reshape(2, 3)[0, index]


@pytest.mark.parametrize("key", [slice(2**63, None), slice(None, 2**63), slice(-2**64, 2), slice(1, -2**70),
                                 slice(2**64, 2**65, 2), slice(None, None, 2**62)])
def test_slice_bounds_beyond_int64_clamp_as_in_torch(key):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "Truncating the start/stop/step of slice"
        assert same_outcome(lambda m: m.arange(5)[key]) == ("ok", list(range(5))[key])


def test_huge_slice_steps_take_the_first_element():
    # as Python's and NumPy's slicing do; torch 2.13 gives nothing here (its length computation overflows)
    for step in (2**63 - 1, 2**63, 2**100):
        assert lepton.arange(5)[::step].tolist() == list(range(5))[::step] == [0]
        assert lepton.arange(12).reshape(2, 6)[:, 1::step].tolist() == [[1], [7]]
