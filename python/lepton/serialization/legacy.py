"""Reading the first skeleton format (metadata "format": "lepton-1"), which `lepton train`
checkpoints used before lepton-2: dicts as {"__dict__": {"str:key" | "int:key": node}}, tuples as
{"__tuple__": [...]}, tensors as {"__tensor__": entry name}, lists and scalars as themselves."""


def decode(node, tensors, used):
    """The object of a lepton-1 skeleton node; tensors maps entry names to loaded tensors, and
    the names the node refers to are added to `used`.
    A malformed node raises KeyError, TypeError, AttributeError or ValueError."""
    if isinstance(node, list):
        return [decode(v, tensors, used) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        used.add(node["__tensor__"])
        return tensors[node["__tensor__"]]
    if "__tuple__" in node:
        return tuple(decode(v, tensors, used) for v in node["__tuple__"])
    out = {}
    for key, value in node["__dict__"].items():
        kind, _, name = key.partition(":")
        out[int(name) if kind == "int" else name] = decode(value, tensors, used)
    return out
