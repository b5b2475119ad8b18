"""The JSON skeleton of a saved object (format lepton-2) and its way back.

A node is null, true/false, an integer, a finite float or a string for itself; a JSON array
for a list; anything else is a JSON object with exactly one key, its tag:

  {"tuple": [n...]}  {"set": [n...]}  {"frozenset": [n...]}
  {"dict": [[key, value]...]}  {"OrderedDict": [[key, value]...]}  {"Namespace": [[name, value]...]}
  {"float": "nan" | "inf" | "-inf"}  {"complex": [re, im]}  {"bytes": base64}  {"bytearray": base64}
  {"numpy": [dtype name, value]} (a NumPy scalar)  {"device": "cuda:0"}  {"dtype": "float32"}
  {"tensor": i}  {"ndarray": i}  {"object": i} (rows of the document's "tensors" / "ndarrays" /
  "objects" tables; an object row is a saved nn.Module, see serialization/objects.py)
  {"global": "module:qualname"} (a class or function, by name)

Dict keys are nodes like any value, so their types come back (1, "1", 1.0, (1, "a"), None) and,
since a user's dict never becomes a JSON object, no key can be mistaken for a tag.
"""

import argparse
import base64
import binascii
import dataclasses
import math
from collections import OrderedDict

import numpy as np

from lepton import _C
from lepton.serialization import objects
from lepton.serialization.arrays import ARRAY_DTYPES, DTYPES_BY_NAME

_SCALAR_DTYPES = set(ARRAY_DTYPES) | {"complex128"}  # (scalars travel as JSON values, so complex128 fits)
_SCALAR_VALUE = {"b": bool, "i": int, "u": int, "f": float, "c": complex}  # by dtype kind
_MAPPINGS = {dict: "dict", OrderedDict: "OrderedDict"}
_MAPPING_TYPES = {v: k for k, v in _MAPPINGS.items()}
_SEQUENCES = {tuple: "tuple", set: "set", frozenset: "frozenset"}
_SEQUENCE_TYPES = {v: k for k, v in _SEQUENCES.items()}


def _child(path, key):
    return f"{path}/{key}" if path else str(key)


class Encoder:
    """Turns an object into a skeleton node, collecting its tensors and arrays as data entries.

    Each tensor object gets one row of the "tensors" table however often it occurs, so it loads as
    one object. Distinct tensors that are the same view of the same memory (tied weights in a
    state_dict) share one data entry and load as distinct tensors sharing storage, as in torch;
    tensors that overlap otherwise are saved by value and load independent.
    """

    def __init__(self):
        self.entries = {}  # entry name -> tensor or ndarray, in data order
        self.tensor_rows, self.array_rows, self.object_rows = [], [], []
        self._tensor_index, self._array_index, self._object_index = {}, {}, {}  # id(obj) -> row
        self._entry_of_view = {}  # (device, dtype, data_ptr, shape, stride) -> entry name
        self._open = set()  # ids of the containers being encoded (a container inside itself)

    def document(self, obj):
        root = self.node(obj, "")
        doc = {"root": root, "tensors": self.tensor_rows, "ndarrays": self.array_rows}
        if self.object_rows:  # (optional, so files without modules read as before)
            doc["objects"] = self.object_rows
        return doc

    def node(self, obj, path):
        kind = type(obj)
        if obj is None or kind in (bool, int, str):
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"float": repr(obj)}
        if kind is complex:
            return {"complex": [self.node(obj.real, path), self.node(obj.imag, path)]}
        if kind in (bytes, bytearray):
            return {kind.__name__: base64.b64encode(obj).decode("ascii")}
        if kind is _C.device:
            return {"device": str(obj)}
        if kind is _C.dtype:
            return {"dtype": obj.name}
        if kind is _C.Tensor:
            return {"tensor": self._tensor(obj, path)}
        if kind is np.ndarray:
            return {"ndarray": self._array(obj, path)}
        if isinstance(obj, np.generic) and obj.dtype.name in _SCALAR_DTYPES:
            return {"numpy": [obj.dtype.name, self.node(obj.item(), path)]}
        if kind in _MAPPINGS or kind in _SEQUENCES or kind in (list, argparse.Namespace):
            if id(obj) in self._open:
                raise ValueError(f"save: the {kind.__name__} at '{path or '<root>'}' contains itself")
            self._open.add(id(obj))
            try:
                return self._container(obj, kind, path)
            finally:
                self._open.discard(id(obj))
        from lepton.nn.modules.module import Module  # (lepton.nn imports lepton, which imports this module)

        if isinstance(obj, Module) or objects.is_module_part(kind):
            return {"object": self._object(obj, path)}
        if objects.is_global(obj):
            return {"global": objects.reference(obj, path)}
        raise _refusal(obj, path)

    def _container(self, obj, kind, path):
        if kind is list:
            return [self.node(v, _child(path, i)) for i, v in enumerate(obj)]
        if kind in _SEQUENCES:
            return {_SEQUENCES[kind]: [self.node(v, _child(path, i)) for i, v in enumerate(obj)]}
        if kind is argparse.Namespace:
            return {"Namespace": [[k, self.node(v, _child(path, k))] for k, v in vars(obj).items()]}
        return {_MAPPINGS[kind]: [[self.node(k, _child(path, f"<key {k!r}>")), self.node(v, _child(path, k))]
                                  for k, v in obj.items()]}

    def _tensor(self, t, path):
        row = self._tensor_index.get(id(t))
        if row is not None:
            return row
        from lepton.nn.parameter import Parameter  # (lepton.nn imports lepton, which imports this module)

        device = str(t.device)
        view = (device, t.dtype, t.data_ptr(), tuple(t.shape), tuple(t.stride()))
        name = self._entry_of_view.get(view) if t.numel() else None  # (an empty tensor shares nothing)
        if name is None:
            name = self._entry(t, path or "tensor")
            if t.numel():
                self._entry_of_view[view] = name
        info = {"data": name, "device": device}
        if t.requires_grad:
            info["requires_grad"] = True
        if isinstance(t, Parameter):
            info["parameter"] = True
        self._tensor_index[id(t)] = row = len(self.tensor_rows)
        self.tensor_rows.append(info)
        return row

    def _array(self, a, path):
        row = self._array_index.get(id(a))
        if row is not None:
            return row
        if a.dtype.name not in ARRAY_DTYPES:
            raise TypeError(f"save: can't store a NumPy array of dtype {a.dtype} at '{path or '<root>'}' "
                            f"(safetensors holds {', '.join(ARRAY_DTYPES)})")
        self._array_index[id(a)] = row = len(self.array_rows)
        self.array_rows.append({"data": self._entry(a, path or "ndarray")})
        return row

    def _object(self, obj, path):
        row = self._object_index.get(id(obj))
        if row is None:  # the row exists before its state is encoded, so state may refer back to it
            self._object_index[id(obj)] = row = len(self.object_rows)
            self.object_rows.append(None)
            cls = objects.reference(type(obj), path)
            self.object_rows[row] = {"class": cls, "state": self.node(objects.state_of(obj), path)}
        return row

    def _entry(self, obj, base):
        """A new entry name: the object's path, made unique and kept off the reserved name."""
        name, n = base, 1
        while name in self.entries or name == "__metadata__":
            n += 1
            name = f"{base}#{n}"
        self.entries[name] = obj
        return name


def _refusal(obj, path):
    kind, where = type(obj), path or "<root>"
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    what = f"save: can't store a {name} at '{where}'"
    if callable(getattr(obj, "state_dict", None)):
        return TypeError(f"{what}: of whole objects Lepton files hold only nn.Modules; save its state_dict() "
                         "instead (e.g. torch.save(optimizer.state_dict(), path)) and restore it with "
                         "load_state_dict()")
    if dataclasses.is_dataclass(obj):
        return TypeError(f"{what}: rebuilding a dataclass would run its class's code; save "
                         "dataclasses.asdict(obj) instead")
    if isinstance(obj, (tuple, dict)):
        plain = "tuple" if isinstance(obj, tuple) else "dict"
        return TypeError(f"{what}: only plain {plain}s are stored (a subclass would need its code); save "
                         f"{plain}(obj) instead")
    return TypeError(f"{what} (supported: tensors, NumPy arrays and scalars, dict, OrderedDict, list, tuple, set, "
                     "frozenset, argparse.Namespace, int, float, complex, bool, str, bytes, None, lepton.device, "
                     "lepton.dtype, nn.Module, classes and functions by name)")


class Decoder:
    """Rebuilds objects from skeleton nodes; tensors and arrays come from the loaded tables.
    A malformed node raises ValueError, TypeError, KeyError or IndexError."""

    def __init__(self, tensors, arrays, object_rows=(), weights_only=True):
        self.tensors, self.arrays = tensors, arrays
        self.object_rows, self.weights_only = object_rows, weights_only
        self._objects = {}  # row -> rebuilt object, so an object met twice (or inside itself) is one
        self.seen = {"tensor": set(), "ndarray": set()}  # the table rows the nodes refer to

    def node(self, n):
        kind = type(n)
        if n is None or kind in (bool, int, float, str):
            return n
        if kind is list:
            return [self.node(v) for v in n]
        if kind is not dict or len(n) != 1:
            raise ValueError(f"a node must be a JSON scalar, an array or an object with one tag, not {n!r:.80}")
        ((tag, value),) = n.items()
        if tag in _MAPPING_TYPES:
            return self._mapping(_MAPPING_TYPES[tag], value)
        if tag in _SEQUENCE_TYPES:
            return _SEQUENCE_TYPES[tag](self.node(v) for v in _array(value, tag))
        if tag == "Namespace":
            return argparse.Namespace(**self._mapping(dict, value, str))
        if tag in ("tensor", "ndarray"):
            table = self.tensors if tag == "tensor" else self.arrays
            if type(value) is not int or not 0 <= value < len(table):
                raise ValueError(f"{tag} row {value!r} is not in its table of {len(table)}")
            self.seen[tag].add(value)
            return table[value]
        if tag == "object":
            return self._object(value)
        if tag == "global":
            if type(value) is not str or ":" not in value:
                raise ValueError(f"global node {value!r:.80} is not a 'module:qualname' string")
            return objects.resolve(value, self.weights_only)
        decode = _SCALARS.get(tag)
        if decode is None:
            raise ValueError(f"unknown tag {tag!r}")
        return decode(self, value)

    def _mapping(self, kind, pairs, key_type=None):
        out = kind()
        for pair in _array(pairs, kind.__name__):
            if type(pair) is not list or len(pair) != 2:
                raise ValueError(f"a {kind.__name__} item must be a [key, value] pair, not {pair!r:.80}")
            key = self.node(pair[0])
            if key_type is not None and type(key) is not key_type:
                raise ValueError(f"a Namespace attribute name must be a string, not {key!r:.80}")
            if key in out:
                raise ValueError(f"duplicate key {key!r:.80}")
            out[key] = self.node(pair[1])
        return out

    def _object(self, row):
        if row in self._objects:
            return self._objects[row]
        if type(row) is not int or not 0 <= row < len(self.object_rows):
            raise ValueError(f"object row {row!r} is not in its table of {len(self.object_rows)}")
        info = self.object_rows[row]
        if type(info) is not dict or set(info) != {"class", "state"} or type(info["class"]) is not str:
            raise ValueError(f"object row {info!r:.120} is not {{\"class\": name, \"state\": node}}")

        def state_of(obj):
            self._objects[row] = obj
            return self.node(info["state"])

        return objects.rebuild(objects.resolve(info["class"], self.weights_only), state_of)

    def _float(self, value):
        if value not in ("nan", "inf", "-inf"):
            raise ValueError(f"float node {value!r:.80} is not nan, inf or -inf")
        return float(value)

    def _complex(self, value):
        parts = [self.node(v) for v in _array(value, "complex")]
        if len(parts) != 2 or not all(type(p) is float for p in parts):
            raise ValueError(f"complex node {value!r:.80} is not [real, imag]")
        return complex(*parts)

    def _bytes(self, value, kind=bytes):
        if type(value) is not str:
            raise ValueError(f"{kind.__name__} node {value!r:.80} is not a base64 string")
        try:
            return kind(base64.b64decode(value, validate=True))
        except binascii.Error as e:
            raise ValueError(f"{kind.__name__} node is not base64: {e}") from None

    def _numpy(self, value):
        if type(value) is not list or len(value) != 2 or value[0] not in _SCALAR_DTYPES:
            raise ValueError(f"numpy node {value!r:.80} is not [dtype name, value]")
        dtype, scalar = np.dtype(value[0]), self.node(value[1])
        if type(scalar) is not _SCALAR_VALUE[dtype.kind]:
            raise ValueError(f"numpy {dtype} value {scalar!r:.80} is not a {_SCALAR_VALUE[dtype.kind].__name__}")
        return dtype.type(scalar)  # (OverflowError when out of range)

    def _device(self, value):
        if type(value) is not str:
            raise ValueError(f"device node {value!r:.80} is not a string")
        return _C.device(value)  # a ValueError for a bad name

    def _dtype(self, value):
        if value not in DTYPES_BY_NAME:
            raise ValueError(f"dtype node {value!r:.80} is not one of {', '.join(DTYPES_BY_NAME)}")
        return DTYPES_BY_NAME[value]


_SCALARS = {"float": Decoder._float, "complex": Decoder._complex, "bytes": Decoder._bytes,
            "bytearray": lambda self, v: self._bytes(v, bytearray), "numpy": Decoder._numpy,
            "device": Decoder._device, "dtype": Decoder._dtype}


def _array(value, tag):
    if type(value) is not list:
        raise ValueError(f"a {tag} node holds a JSON array, not {value!r:.80}")
    return value
