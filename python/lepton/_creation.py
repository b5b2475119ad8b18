"""Tensors from Python data and the *_like constructors."""


import numpy as np

from lepton import _C
from lepton._generator import using_generator


def _factory(fn):
    """Adds PyTorch's requires_grad, generator and (accepted, CPU-only) pin_memory/layout keywords
    to a C++ factory."""

    def make(*args, requires_grad=False, generator=None, pin_memory=False, layout=None, **kwargs):
        with using_generator(generator):
            t = fn(*args, **kwargs)
        return t.requires_grad_(True) if requires_grad else t

    make.__name__ = make.__qualname__ = fn.__name__
    make.__doc__ = fn.__doc__
    return make


empty, zeros, ones, full, arange, linspace, rand, randn, randint = (
    _factory(f) for f in (_C.empty, _C.zeros, _C.ones, _C.full, _C.arange, _C.linspace, _C.rand, _C.randn,
                          _C.randint))


def tensor(data, *, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (nested lists, numbers, NumPy arrays or tensors).

    Python floats become float32, ints int64 and bools bool, as in PyTorch; NumPy arrays keep
    their dtype.
    """
    if isinstance(data, _C.Tensor):
        out = data.detach().to(device=device, dtype=dtype, copy=True)
        return out.requires_grad_(True) if requires_grad else out
    from_numpy_input = isinstance(data, (np.ndarray, np.generic))
    try:
        arr = np.array(data)
    except ValueError as e:  # ragged nesting
        raise ValueError(f"tensor(): could not convert data to a tensor: {e}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"tensor(): could not convert data of type {type(data).__name__} to a tensor "
                        f"(got NumPy dtype {arr.dtype}); use numbers or nested lists of numbers")
    given = arr
    if not from_numpy_input:
        # Python numbers: float32 and int64 by default; with a dtype they are kept wide (float64,
        # int64) until converted, and checked against it below
        if arr.dtype.kind == "u":  # NumPy's choice for ints from 2**63 on
            if dtype is None:
                raise ValueError(f"tensor(): integer {arr.max()} does not fit in int64")
            arr = arr.astype(np.float64)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32 if dtype is None else np.float64)
        elif arr.dtype.kind == "i":
            arr = arr.astype(np.int64)
    elif arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        arr = arr.astype(np.int64)
    elif arr.dtype == np.int16:
        arr = arr.astype(np.int32)
    out = _C.from_numpy(np.array(arr, order="C", copy=True))  # ascontiguousarray would make 0-d into 1-d
    out = out.to(device=device, dtype=dtype)
    if not from_numpy_input and out.dtype in _INT_RANGE and given.dtype.kind in "iuf":
        _check_fits(given, out.dtype)
    return out.requires_grad_(True) if requires_grad else out


_INT_RANGE = {_C.dtype.uint8: (0, 255), _C.dtype.int8: (-128, 127), _C.dtype.int32: (-2**31, 2**31 - 1),
              _C.dtype.int64: (-2**63, 2**63 - 1)}


def _check_fits(values, dtype):
    """Python numbers stored as an integer dtype must fit it, by the rule fill_ follows (ops/copy.cpp,
    torch's): integers in range (uint8 also takes -255..-1, as their two's complement), floats
    finite and in range; RuntimeError otherwise, as in torch."""
    lo, hi = _INT_RANGE[dtype]
    if values.dtype.kind == "f":  # (2.0**63 == float(2**63 - 1), hence the strict bound for int64)
        ok = (values >= lo) & ((values < 2.0**63) if dtype == _C.dtype.int64 else (values <= hi))
    else:
        ok = (values >= (-hi if dtype == _C.dtype.uint8 else lo)) & (values <= hi)
    if not ok.all():
        raise RuntimeError(f"value cannot be converted to type {dtype.name} without overflow "
                           f"(got {values[~ok].flat[0].item()!r})")


def _like(t, dtype, device):
    return dict(dtype=dtype if dtype is not None else t.dtype,
                device=device if device is not None else t.device)


def empty_like(t, *, dtype=None, device=None, requires_grad=False):
    return empty(t.shape, requires_grad=requires_grad, **_like(t, dtype, device))


def zeros_like(t, *, dtype=None, device=None, requires_grad=False):
    return zeros(t.shape, requires_grad=requires_grad, **_like(t, dtype, device))


def ones_like(t, *, dtype=None, device=None, requires_grad=False):
    return ones(t.shape, requires_grad=requires_grad, **_like(t, dtype, device))


def full_like(t, fill_value, *, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, requires_grad=requires_grad, **_like(t, dtype, device))


def rand_like(t, *, dtype=None, device=None, requires_grad=False):
    return rand(t.shape, requires_grad=requires_grad, **_like(t, dtype, device))


def randn_like(t, *, dtype=None, device=None, requires_grad=False):
    return randn(t.shape, requires_grad=requires_grad, **_like(t, dtype, device))


def randint_like(t, low, high=None, *, dtype=None, device=None):
    if high is None:
        low, high = 0, low
    return _C.randint(low, high, t.shape, **_like(t, dtype, device))




def randperm(n, *, generator=None, dtype=_C.dtype.int64, device=None, requires_grad=False, pin_memory=False):
    """A random permutation of 0..n-1: the sorting order of n uniform draws (ties have probability 2^-53)."""
    if not isinstance(n, int) or n < 0:
        raise RuntimeError(f"randperm: n must be a non-negative int, got {n!r}")
    with using_generator(generator):
        keys = _C.rand(n, dtype=_C.dtype.float64, device=device)
    return keys.argsort().to(dtype)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    rows = _C.arange(0, n, 1, dtype=_C.dtype.int64, device=device).unsqueeze(1)
    cols = _C.arange(0, m, 1, dtype=_C.dtype.int64, device=device).unsqueeze(0)
    t = (rows == cols).to(dtype or _C.dtype.float32)
    return t.requires_grad_(True) if requires_grad else t


def as_tensor(data, dtype=None, device=None):
    """data itself when it already is a tensor of that dtype and device; NumPy arrays share memory
    (on the CPU, same dtype), as in torch; anything else is copied."""
    if isinstance(data, _C.Tensor):
        return data.to(device if device is not None else data.device, dtype or data.dtype)
    if isinstance(data, np.ndarray) and (device is None or _C.device(device).type == "cpu") and data.flags.writeable:
        t = _C.from_numpy(data)
        return t if dtype is None else t.to(dtype)
    return tensor(data, dtype=dtype, device=device)


def _typed_constructor(name, dtype):
    """torch.FloatTensor(data) / torch.LongTensor(2, 3): a copy of data, or uninitialised sizes."""

    def make(*args, device=None):
        if len(args) == 1 and not isinstance(args[0], int):
            return tensor(args[0], dtype=dtype, device=device)
        return _C.zeros(*args, dtype=dtype, device=device)

    make.__name__ = make.__qualname__ = name
    return make


FloatTensor = _typed_constructor("FloatTensor", _C.dtype.float32)
DoubleTensor = _typed_constructor("DoubleTensor", _C.dtype.float64)
HalfTensor = _typed_constructor("HalfTensor", _C.dtype.float16)
BFloat16Tensor = _typed_constructor("BFloat16Tensor", _C.dtype.bfloat16)
LongTensor = _typed_constructor("LongTensor", _C.dtype.int64)
IntTensor = _typed_constructor("IntTensor", _C.dtype.int32)
ByteTensor = _typed_constructor("ByteTensor", _C.dtype.uint8)
CharTensor = _typed_constructor("CharTensor", _C.dtype.int8)
BoolTensor = _typed_constructor("BoolTensor", _C.dtype.bool)
