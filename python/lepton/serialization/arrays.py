"""Tensors and NumPy arrays as safetensors entries: dtype names and raw little-endian bytes."""

import numpy as np

from lepton import _C

_DT = _C.dtype
# lepton dtype -> safetensors dtype name
TENSOR_DTYPES = {_DT.bool: "BOOL", _DT.uint8: "U8", _DT.int8: "I8", _DT.int32: "I32", _DT.int64: "I64",
                 _DT.float16: "F16", _DT.bfloat16: "BF16", _DT.float32: "F32", _DT.float64: "F64"}
_TENSOR_FROM = {v: k for k, v in TENSOR_DTYPES.items()}
DTYPES_BY_NAME = {d.name: d for d in TENSOR_DTYPES}
# NumPy dtype name -> safetensors dtype name (NumPy has no bfloat16; safetensors has no complex128)
ARRAY_DTYPES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16", "uint32": "U32",
                "int32": "I32", "uint64": "U64", "int64": "I64", "float16": "F16", "float32": "F32",
                "float64": "F64", "complex64": "C64"}
_ARRAY_FROM = {v: k for k, v in ARRAY_DTYPES.items()}
ITEMSIZE = {name: np.dtype(np_name).itemsize for np_name, name in ARRAY_DTYPES.items()} | {"BF16": 2}


def entry_dtype(obj):
    """The safetensors dtype name of a tensor or an ndarray (the caller has checked it has one)."""
    return TENSOR_DTYPES[obj.dtype] if isinstance(obj, _C.Tensor) else ARRAY_DTYPES[obj.dtype.name]


def entry_nbytes(obj):
    return obj.numel() * obj.element_size() if isinstance(obj, _C.Tensor) else obj.nbytes


def entry_bytes(obj):
    """obj's values, C-ordered and little-endian, as a flat uint8 array (a tensor is copied to the
    host; a bfloat16 tensor moves its bits as float16; a non-contiguous view is saved by value)."""
    if isinstance(obj, _C.Tensor):
        host = obj.detach().cpu().contiguous()
        obj = (host.view(_DT.float16) if host.dtype == _DT.bfloat16 else host).numpy()
    return np.ascontiguousarray(obj, dtype=obj.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)


def tensor_from(dtype_name, shape, raw):
    """A CPU tensor holding a copy of `raw`; None when Lepton has no such dtype."""
    dtype = _TENSOR_FROM.get(dtype_name)
    if dtype is None:
        return None
    np_name = "float16" if dtype == _DT.bfloat16 else dtype.name
    t = _C.from_numpy(np.frombuffer(raw, dtype=np.dtype(np_name).newbyteorder("<")).reshape(shape).copy())
    return t.view(_DT.bfloat16) if dtype == _DT.bfloat16 else t


def array_from(dtype_name, shape, raw):
    """An ndarray holding a copy of `raw`; None when NumPy has no such dtype."""
    np_name = _ARRAY_FROM.get(dtype_name)
    if np_name is None:
        return None
    return np.frombuffer(raw, dtype=np.dtype(np_name).newbyteorder("<")).reshape(shape).copy()
