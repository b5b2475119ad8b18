"""default_collate: a list of samples -> one batch, stacking as torch's default_collate does."""

import collections.abc

import numpy as np

from lepton import _C

__all__ = ["default_collate", "to_tensor"]

_NUMBER_DTYPES = {"b": np.bool_, "i": np.int64, "u": np.int64, "f": np.float64}


def to_tensor(arr):
    """A Lepton tensor owning (or sharing) a contiguous copy of a NumPy array."""
    return _C.from_numpy(np.ascontiguousarray(arr))


def default_collate(batch):
    """Stack a list of samples: tensors with lepton.stack, NumPy arrays with np.stack, Python ints
    to int64 and floats to float64 (as torch), bools to bool; tuples, lists and dicts are collated
    field by field (a tuple of samples gives a tuple of batches); strings stay a list."""
    if len(batch) == 0:
        raise ValueError("default_collate: empty batch")
    elem = batch[0]
    if isinstance(elem, _C.Tensor):
        return _C.stack(list(batch))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "OSU":
            raise TypeError(f"default_collate: can't make a tensor of NumPy dtype {elem.dtype}")
        return to_tensor(np.stack(batch))
    if isinstance(elem, (bool, int, float, np.generic)) and not isinstance(elem, (str, bytes, np.str_, np.bytes_)):
        arr = np.asarray(batch)
        if isinstance(elem, np.generic):
            return to_tensor(arr)
        if arr.dtype.kind not in _NUMBER_DTYPES:
            raise TypeError(f"default_collate: mixed sample types starting with {type(elem).__name__}")
        return to_tensor(arr.astype(_NUMBER_DTYPES[arr.dtype.kind]))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        return {k: default_collate([d[k] for d in batch]) for k in elem}
    if isinstance(elem, collections.abc.Sequence):
        if any(len(s) != len(elem) for s in batch):
            raise ValueError(f"default_collate: samples have different lengths {sorted({len(s) for s in batch})}")
        fields = [default_collate(list(s)) for s in zip(*batch)]
        if hasattr(elem, "_fields"):  # namedtuple
            return type(elem)(*fields)
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"default_collate: don't know how to batch a {type(elem).__name__}")
