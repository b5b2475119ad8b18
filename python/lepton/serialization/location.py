"""load's map_location, as torch's: where each loaded tensor goes, given where it was saved."""

from lepton import _C


def restorer(map_location):
    """A function (cpu_tensor, saved_location, name) -> tensor on its destination, for any form of
    map_location: None (where it was saved), a device or device string, a dict from saved location
    strings to destinations, or a callable(storage, location) returning a tensor or None."""
    if map_location is None:
        return lambda t, location, name: _move(t, _device(location), name)
    if isinstance(map_location, (str, _C.device)):
        target = _device(map_location, "map_location")
        return lambda t, location, name: _move(t, target, name)
    if isinstance(map_location, dict):
        targets = {str(k): _device(v, f"map_location[{k!r}]") for k, v in map_location.items()}
        return lambda t, location, name: _move(t, targets.get(location) or _device(location), name)
    if callable(map_location):
        return lambda t, location, name: _call(map_location, t, location, name)
    raise TypeError(f"load: map_location must be None, a device, a str, a dict or a callable, not "
                    f"{type(map_location).__name__}")


def _device(where, what=None):
    """A lepton.device from a device or string; a ValueError naming `what` (or the saved location)."""
    if isinstance(where, _C.device):
        return where
    if not isinstance(where, str):
        raise TypeError(f"load: {what} must be a device or a device string, not {type(where).__name__}")
    try:
        return _C.device(where)
    except ValueError as e:
        raise ValueError(f"load: {what or 'the saved location'} {where!r}: {e}") from None


def _move(t, target, name):
    if target.type == "cuda":
        from lepton import cuda

        if not cuda.is_available():
            raise RuntimeError(f"load: '{name}' would go to {target}, but CUDA is not available here; pass "
                               "map_location='cpu' to load it on the CPU")
        if target.index >= cuda.device_count():
            raise RuntimeError(f"load: '{name}' would go to {target}, but there are only {cuda.device_count()} "
                               "CUDA device(s); map it elsewhere with map_location (e.g. {'cuda:1': 'cuda:0'})")
    return t.to(target)


def _call(fn, t, location, name):
    """torch calls map_location(storage, location); Lepton has no storages, so it gets the CPU tensor."""
    out = fn(t, location)
    if out is None:
        return _move(t, _device(location), name)
    if not isinstance(out, _C.Tensor) or out.dtype != t.dtype or tuple(out.shape) != tuple(t.shape):
        got = f"{out.dtype} {tuple(out.shape)}" if isinstance(out, _C.Tensor) else type(out).__name__
        raise TypeError(f"load: map_location returned {got} for '{name}' ({t.dtype} {tuple(t.shape)}); it must "
                        "return the tensor it was given, moved where it should go, or None")
    return out
