"""Tensors from Python data and the *_like constructors."""


import numpy as np

from lepton import _C


def tensor(data, *, dtype=None, device=None):
    """A new tensor holding a copy of `data` (nested lists, numbers, NumPy arrays or tensors).

    Python floats become float32, ints int64 and bools bool, as in PyTorch; NumPy arrays keep
    their dtype.
    """
    if isinstance(data, _C.Tensor):
        return data.to(device=device, dtype=dtype, copy=True)
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
    return out.to(device=device, dtype=dtype)


def _like(t, dtype, device):
    return dict(dtype=dtype if dtype is not None else t.dtype,
                device=device if device is not None else t.device)


def empty_like(t, *, dtype=None, device=None):
    return _C.empty(t.shape, **_like(t, dtype, device))


def zeros_like(t, *, dtype=None, device=None):
    return _C.zeros(t.shape, **_like(t, dtype, device))


def ones_like(t, *, dtype=None, device=None):
    return _C.ones(t.shape, **_like(t, dtype, device))


def full_like(t, fill_value, *, dtype=None, device=None):
    return _C.full(t.shape, fill_value, **_like(t, dtype, device))


def rand_like(t, *, dtype=None, device=None):
    return _C.rand(t.shape, **_like(t, dtype, device))


def randn_like(t, *, dtype=None, device=None):
    return _C.randn(t.shape, **_like(t, dtype, device))


def randint_like(t, low, high=None, *, dtype=None, device=None):
    if high is None:
        low, high = 0, low
    return _C.randint(low, high, t.shape, **_like(t, dtype, device))


