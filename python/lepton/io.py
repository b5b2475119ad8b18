"""lepton.save / lepton.load: checkpoints in the safetensors format, never pickle.

A file holds every tensor of `obj` as a safetensors entry, keyed by its path in the nested
structure ("model/fc.weight", "optimizer/state/0/exp_avg"), and the rest of the structure (dicts,
lists, numbers, strings, None) as JSON in the header's metadata under "lepton", with
{"__tensor__": key} where each tensor was. Loading parses JSON and copies bytes: it never runs
code from the file. Files are written to a temporary name and renamed into place, so a crash
mid-write leaves the previous checkpoint intact.

The format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
N bytes of JSON header, then the raw little-endian tensor data.
"""

import json
import os
import struct

import numpy as np

from lepton import _C

__all__ = ["save", "load"]

_DT = _C.dtype
# lepton dtype <-> safetensors dtype name, and the NumPy type used to move the raw bytes
_ST_NAMES = {_DT.bool: "BOOL", _DT.uint8: "U8", _DT.int8: "I8", _DT.int32: "I32", _DT.int64: "I64",
             _DT.float16: "F16", _DT.bfloat16: "BF16", _DT.float32: "F32", _DT.float64: "F64"}
_FROM_ST = {v: k for k, v in _ST_NAMES.items()}
_MAX_HEADER = 100 * 1024 * 1024


def _flatten(obj, path, tensors):
    """The JSON skeleton of obj; tensors are collected into `tensors` by path."""
    if isinstance(obj, _C.Tensor):
        key = path or "tensor"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"save: dict keys must be str or int, got {type(k).__name__} at '{path}'")
            if isinstance(k, str) and "/" in k:
                raise ValueError(f"save: dict key '{k}' at '{path}' must not contain '/'")
            out[f"{type(k).__name__}:{k}"] = _flatten(v, f"{path}/{k}" if path else str(k), tensors)
        return {"__dict__": out}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{path}/{i}" if path else str(i), tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"save: can't store a {type(obj).__name__} at '{path or '<root>'}' (supported: tensors, dicts, "
                    "lists, tuples, numbers, strings, None)")


def _unflatten(node, tensors):
    if isinstance(node, list):
        return [_unflatten(v, tensors) for v in node]
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__tuple__" in node:
            return tuple(_unflatten(v, tensors) for v in node["__tuple__"])
        out = {}
        for k, v in node["__dict__"].items():
            kind, _, name = k.partition(":")
            out[int(name) if kind == "int" else name] = _unflatten(v, tensors)
        return out
    return node


def _raw_bytes(t):
    host = t.detach().cpu().contiguous()
    if host.dtype == _DT.bfloat16:  # NumPy has no bfloat16: move the bits as float16
        host = host.view(_DT.float16)
    return host.numpy().tobytes()


def save(obj, path):
    """Writes `obj` (a tensor, or dicts/lists of tensors and plain values) to `path` atomically."""
    tensors = {}
    skeleton = _flatten(obj, "", tensors)
    header, blobs, offset = {}, [], 0
    for key, t in tensors.items():
        data = _raw_bytes(t)
        header[key] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"lepton": json.dumps(skeleton), "format": "lepton-1"}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data section starts 8-byte aligned
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(head)))
            f.write(head)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _corrupt(path, why):
    return ValueError(f"load: '{path}' is not a valid Lepton checkpoint ({why})")


def load(path, map_location=None):
    """Reads what save() wrote; tensors land on the CPU or on `map_location`."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise _corrupt(path, f"only {len(blob)} bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER or 8 + n > len(blob):
        raise _corrupt(path, f"header of {n} bytes does not fit in a file of {len(blob)} bytes")
    try:
        header = json.loads(blob[8:8 + n])
        skeleton = json.loads(header.pop("__metadata__", {}).get("lepton", "null"))
    except (ValueError, AttributeError) as e:
        raise _corrupt(path, f"unreadable header: {e}") from None
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for key, info in header.items():
        try:
            dtype = _FROM_ST[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _corrupt(path, f"bad entry for '{key}'") from None
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= begin <= end <= len(data)) or end - begin != count * dtype.itemsize:
            raise _corrupt(path, f"'{key}' needs bytes {begin}..{end} of {len(data)} (truncated file?)")
        np_type = "float16" if dtype == _DT.bfloat16 else dtype.name
        arr = np.frombuffer(data[begin:end], dtype=np_type).reshape(shape).copy()
        t = _C.from_numpy(arr)
        if dtype == _DT.bfloat16:
            t = t.view(_DT.bfloat16)
        tensors[key] = t.to(map_location) if map_location is not None else t
    if skeleton is None:  # a plain safetensors file: its tensors by name
        return tensors
    try:
        return _unflatten(skeleton, tensors)
    except (KeyError, TypeError, AttributeError) as e:
        raise _corrupt(path, f"structure does not match its tensors: {e}") from None
