"""From the bytes of a file to the saved object: a Lepton file (lepton-2, or lepton-1 from earlier
versions) or a plain safetensors file, whose tensors come back as a flat {name: tensor} dict."""

from lepton import _C
from lepton.serialization import legacy
from lepton.serialization.arrays import TENSOR_DTYPES, array_from, tensor_from
from lepton.serialization.container import corrupt, parse, parse_json
from lepton.serialization.skeleton import Decoder

FORMAT = "lepton-2"
_DOCUMENT_FIELDS = {"root", "tensors", "ndarrays"}  # and "objects" when the file holds modules
_TENSOR_FIELDS = {"data", "device", "requires_grad", "parameter"}


def load_buffer(buf, source, restore, weights_only=True):
    """The object saved in `buf`; restore(cpu_tensor, saved_location, name) places each tensor;
    weights_only limits the classes and functions a file may name (serialization/objects.py)."""
    entries, metadata, data = parse(buf, source)
    fmt = metadata.get("format", "")
    if fmt in (FORMAT, "lepton-1") and "lepton" not in metadata:
        raise corrupt(source, f"format {fmt} but no skeleton in its metadata")
    if fmt == FORMAT:
        return _load_lepton2(metadata["lepton"], entries, data, restore, source, weights_only)
    if fmt == "lepton-1":
        try:  # (lepton-1 wrote non-finite floats as NaN/Infinity)
            skeleton = parse_json(metadata["lepton"], constants=True)
        except ValueError as e:
            raise corrupt(source, f"unreadable skeleton: {e}") from None
        tensors = {name: restore(_tensor(entries, name, data, source), "cpu", name) for name in entries}
        used = set()
        try:
            obj = legacy.decode(skeleton, tensors, used)
        except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as e:
            raise corrupt(source, f"its structure does not match its tensors: {e!r}") from None
        if len(used) != len(tensors):
            raise corrupt(source, f"entries {sorted(set(tensors) - used)!r:.120} belong to no object")
        return obj
    if fmt.startswith("lepton-"):
        raise ValueError(f"load: {source} is in format {fmt!r}, which this version of Lepton does not read "
                         f"(it reads {FORMAT} and lepton-1); a newer Lepton wrote it")
    return {name: restore(_tensor(entries, name, data, source), "cpu", name) for name in entries}


def _tensor(entries, name, data, source):
    e = entries[name]
    t = tensor_from(e.dtype, e.shape, data[e.begin:e.end])
    if t is None:
        raise ValueError(f"load: '{name}' in {source} has dtype {e.dtype}, which Lepton tensors do not have "
                         f"(unsupported; they are {', '.join(TENSOR_DTYPES.values())})")
    return t


def _load_lepton2(text, entries, data, restore, source, weights_only):
    try:
        doc = parse_json(text)
    except ValueError as e:
        raise corrupt(source, f"unreadable skeleton: {e}") from None
    if type(doc) is not dict or set(doc) - {"objects"} != _DOCUMENT_FIELDS or not all(
            type(doc[k]) is list for k in ("tensors", "ndarrays", "objects") if k in doc):
        raise corrupt(source, "the skeleton must be {\"root\": node, \"tensors\": [...], \"ndarrays\": [...]} "
                              "(and \"objects\": [...] if it holds modules)")
    used, bases, tensors = set(), {}, []
    for row in doc["tensors"]:
        name, device = _row(row, _TENSOR_FIELDS, entries, source), row.get("device")
        flags = (row.get("requires_grad", False), row.get("parameter", False))
        if type(device) is not str or not all(type(f) is bool for f in flags):
            raise corrupt(source, f"tensor row {row!r:.120} needs a device string and boolean flags")
        if name in bases:  # another tensor viewing the same memory: shares its storage again
            t = bases[name].detach()
        else:
            bases[name] = t = restore(_tensor(entries, name, data, source), _location(device, source), name)
        tensors.append(_flagged(t, *flags, source))
        used.add(name)
    arrays = []
    for row in doc["ndarrays"]:
        name = _row(row, {"data"}, entries, source)
        e = entries[name]
        a = array_from(e.dtype, e.shape, data[e.begin:e.end])
        if a is None or name in used:
            raise corrupt(source, f"'{name}' ({e.dtype}) can't be a NumPy array of its own")
        arrays.append(a)
        used.add(name)
    if len(used) != len(entries):
        raise corrupt(source, f"entries {sorted(set(entries) - used)!r:.120} belong to no object")
    decoder = Decoder(tensors, arrays, doc.get("objects", ()), weights_only)
    try:
        obj = decoder.node(doc["root"])
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as e:
        raise corrupt(source, f"bad skeleton: {e}") from None
    unseen = [row["data"] for tag, table in (("tensor", doc["tensors"]), ("ndarray", doc["ndarrays"]))
              for i, row in enumerate(table) if i not in decoder.seen[tag]]
    if unseen:  # (a root that is, say, a bare string would drop them)
        raise corrupt(source, f"entries {unseen!r:.120} belong to no object")
    return obj


def _row(row, fields, entries, source):
    """The entry name of a table row, after checking the row's fields."""
    name = row.get("data") if type(row) is dict else None
    if type(name) is not str or name not in entries or not set(row) <= fields:
        raise corrupt(source, f"table row {row!r:.120} does not name one of the file's entries")
    return name


def _location(device, source):
    try:
        return str(_C.device(device))
    except ValueError:
        raise corrupt(source, f"saved location {device!r} is not a device") from None


def _flagged(t, requires_grad, parameter, source):
    if requires_grad and not t.is_floating_point():
        raise corrupt(source, f"a {t.dtype} tensor can't require grad")
    if parameter:
        from lepton.nn.parameter import Parameter

        return Parameter(t, requires_grad=requires_grad)
    return t.requires_grad_(True) if requires_grad else t
