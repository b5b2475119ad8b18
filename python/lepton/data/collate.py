"""default_collate (a list of samples -> one batch) and default_convert (one sample, unbatched),
with torch's rules; the one difference: a tuple stays a tuple (torch turns tuples into lists)."""

import collections.abc
import copy

import numpy as np

from lepton import _C

__all__ = ["default_collate", "default_convert", "to_tensor"]

_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
_NUMBER_DTYPES = {"b": np.bool_, "i": np.int64, "f": np.float64}


def to_tensor(arr):
    """A Lepton tensor sharing a C-contiguous NumPy array's memory (a contiguous copy otherwise)."""
    arr = np.asarray(arr)
    return _C.from_numpy(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))


def _unconvertible(arr):
    """NumPy dtypes with no tensor counterpart: strings and Python objects (torch's [SaUO])."""
    return arr.dtype.kind in "SaUO"


def _is_numpy_scalar(x):
    return isinstance(x, (np.bool_, np.number, np.object_))


def _rebuild(elem, values):
    """`values` (a dict or list built from elem's items) as elem's own container type when that
    type can be made from it, as torch does; a plain dict or list otherwise."""
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, v in enumerate(values):
                clone[i] = v
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def _numbers(batch):
    """Python numbers -> one tensor: all floats (first sample a float) -> float64, ints -> int64,
    bools -> bool, as torch; ints mixed with floats -> float64 (torch gives float32)."""
    arr = np.asarray(batch)
    if arr.dtype.kind not in _NUMBER_DTYPES:
        raise TypeError(f"default_collate: can't make one tensor of the numbers {list(batch)[:8]} "
                        f"(NumPy makes them {arr.dtype})")
    return to_tensor(arr.astype(np.float64 if isinstance(batch[0], float) else _NUMBER_DTYPES[arr.dtype.kind]))


def default_collate(batch):
    """Stack a list of samples: tensors with lepton.stack, NumPy arrays and scalars to tensors of
    their dtype, Python floats to float64, ints to int64, bools to bool; strings and bytes stay
    a list; mappings, namedtuples, tuples and lists are collated field by field into the same
    container type."""
    if len(batch) == 0:
        raise ValueError("default_collate: empty batch")
    elem = batch[0]
    if isinstance(elem, _C.Tensor):
        return _C.stack(list(batch))
    if isinstance(elem, np.ndarray):
        if _unconvertible(elem):
            raise TypeError(_ERROR.format(elem.dtype))
        return to_tensor(np.stack(batch))
    if _is_numpy_scalar(elem):
        return to_tensor(np.asarray(batch))
    if isinstance(elem, (float, int)):  # bool is an int
        return _numbers(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _rebuild(elem, {key: default_collate([d[key] for d in batch]) for key in elem})
    if isinstance(elem, collections.abc.Sequence):
        if any(len(s) != len(elem) for s in batch):
            raise ValueError(f"default_collate: samples have different lengths {sorted({len(s) for s in batch})}")
        fields = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return type(elem)(*fields) if hasattr(elem, "_fields") else tuple(fields)
        return _rebuild(elem, fields)
    raise TypeError(_ERROR.format(type(elem)))


def default_convert(data):
    """One sample as default_collate would hand out its fields, without batching: NumPy arrays
    (not of strings or objects) and scalars become tensors, containers are converted item by
    item; tensors, Python numbers and everything else are left as they are."""
    if isinstance(data, _C.Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if _unconvertible(data) else to_tensor(data)
    if _is_numpy_scalar(data):
        return to_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _rebuild(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple):
        fields = [default_convert(d) for d in data]
        return type(data)(*fields) if hasattr(data, "_fields") else tuple(fields)
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild(data, [default_convert(d) for d in data])
    return data
