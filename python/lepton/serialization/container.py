"""The safetensors container (https://github.com/huggingface/safetensors): an 8-byte little-endian
header size N, N bytes of JSON header {name: {"dtype", "shape", "data_offsets"}, "__metadata__":
{str: str}}, then the raw data, every byte of it belonging to exactly one entry."""

import json
import math
from typing import NamedTuple

from lepton.serialization.arrays import ITEMSIZE

MAX_HEADER = 100 * 1024 * 1024
_ENTRY_FIELDS = {"dtype", "shape", "data_offsets"}
# the format's dtypes beyond those Lepton reads (ITEMSIZE): 8-, 6- and 4-bit floats
_OTHER_DTYPES = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F6_E2M3", "F6_E3M2", "F4"}


class Entry(NamedTuple):
    dtype: str
    shape: list
    begin: int
    end: int


def corrupt(source, why):
    return ValueError(f"load: {source} is not a valid Lepton checkpoint ({why})")


def write(stream, specs, metadata, buffers):
    """Writes the file to `stream`: specs are (name, dtype, shape, nbytes) in data order and
    `buffers` yields each entry's bytes in the same order."""
    header, offset = {}, 0
    for name, dtype, shape, nbytes in specs:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = metadata
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data section starts 8-byte aligned
    stream.write(len(head).to_bytes(8, "little"))
    stream.write(head)
    for (name, _, _, nbytes), data in zip(specs, buffers, strict=True):
        if data.nbytes != nbytes:  # the object changed while it was being saved
            raise RuntimeError(f"save: '{name}' changed size while it was being written")
        stream.write(data)


def _unique_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _finite(text):
    value = float(text)
    if not math.isfinite(value):  # (json.loads would make 1e400 an inf)
        raise ValueError(f"the number {text:.40} is out of range")
    return value


def parse_json(text, constants=False):
    """json.loads that refuses duplicate keys, numbers out of a float's range and (unless
    `constants`, for lepton-1 skeletons, which json.dumps wrote with them) NaN/Infinity (ValueError)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_float=_finite,
                          parse_constant=float if constants else _no_constants)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def parse(buf, source):
    """(entries {name: Entry}, metadata, data memoryview) of the file in `buf`, every offset checked."""
    size = len(buf)
    if size < 8:
        raise corrupt(source, f"only {size} bytes")
    n = int.from_bytes(buf[:8], "little")
    if n > MAX_HEADER or 8 + n > size:
        raise corrupt(source, f"a header of {n} bytes does not fit in a file of {size} bytes")
    head = bytes(buf[8:8 + n])
    if not head.startswith(b"{"):  # the format's rule; it also keeps out a byte-order mark
        raise corrupt(source, f"the header must start with '{{', not {head[:4]!r}")
    try:
        header = parse_json(head.decode("utf-8"))  # (from bytes, json.loads would also take UTF-16/32)
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise corrupt(source, f"unreadable header: {e}") from None
    if type(header) is not dict:
        raise corrupt(source, "the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if type(metadata) is not dict or not all(type(v) is str for v in metadata.values()):
        raise corrupt(source, "__metadata__ must map strings to strings")
    entries = {name: _entry(name, info, source) for name, info in header.items()}
    expected, data_size = 0, size - 8 - n
    for name, e in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if e.begin != expected:
            problem = "overlaps the entry before it" if e.begin < expected else "leaves a gap before it"
            raise corrupt(source, f"'{name}' starts at data byte {e.begin}, which {problem} (expected {expected})")
        expected = e.end
    if expected != data_size:
        raise corrupt(source, f"the entries cover {expected} bytes of data but the file holds {data_size} "
                              f"({'truncated file' if data_size < expected else 'trailing bytes'})")
    return entries, metadata, memoryview(buf)[8 + n:]


def _entry(name, info, source):
    if type(info) is not dict or set(info) != _ENTRY_FIELDS:
        raise corrupt(source, f"entry '{name}' must have exactly the fields dtype, shape and data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in ITEMSIZE:
        what = "a safetensors dtype Lepton does not support" if dtype in _OTHER_DTYPES else "not a safetensors dtype"
        raise corrupt(source, f"'{name}' has dtype {dtype!r}, {what} (Lepton reads {', '.join(ITEMSIZE)})")
    if type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
        raise corrupt(source, f"'{name}' has shape {shape!r}, not a list of non-negative integers")
    if (type(offsets) is not list or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise corrupt(source, f"'{name}' has data_offsets {offsets!r}, not [begin, end] with 0 <= begin <= end")
    need = math.prod(shape) * ITEMSIZE[dtype]
    if need != offsets[1] - offsets[0]:
        raise corrupt(source, f"'{name}' ({dtype}, shape {shape}) needs {need} bytes, its data_offsets "
                              f"{offsets} span {offsets[1] - offsets[0]}")
    return Entry(dtype, shape, offsets[0], offsets[1])
