"""Tensors from Python data and the *_like constructors."""


import numpy as np

from lepton import _C


def _factory(fn):
    """Adds PyTorch's requires_grad keyword to a C++ factory."""

    def make(*args, requires_grad=False, **kwargs):
        t = fn(*args, **kwargs)
        return t.requires_grad_(True) if requires_grad else t

    make.__name__ = make.__qualname__ = fn.__name__
    make.__doc__ = fn.__doc__
    return make


empty, zeros, ones, full, arange, linspace, rand, randn = (
    _factory(f) for f in (_C.empty, _C.zeros, _C.ones, _C.full, _C.arange, _C.linspace, _C.rand, _C.randn))


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
    if not from_numpy_input:
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
    elif arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        arr = arr.astype(np.int64)
    elif arr.dtype == np.int16:
        arr = arr.astype(np.int32)
    out = _C.from_numpy(np.array(arr, order="C", copy=True))  # ascontiguousarray would make 0-d into 1-d
    out = out.to(device=device, dtype=dtype)
    return out.requires_grad_(True) if requires_grad else out


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


