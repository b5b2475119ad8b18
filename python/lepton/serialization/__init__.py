"""The parts of lepton.save / lepton.load (lepton/io.py): the safetensors container, the JSON
skeleton of an object, tensors and arrays as raw bytes, map_location, and the way back from a file.

As a module it is torch.serialization under `lepton run`: save, load and the safe-globals list
that load(weights_only=True) consults."""

from lepton.serialization.objects import add_safe_globals, clear_safe_globals, get_safe_globals, safe_globals

__all__ = ["save", "load", "add_safe_globals", "clear_safe_globals", "get_safe_globals", "safe_globals"]


def __getattr__(name):  # (lepton.io imports this package's parts, so it is imported on first use)
    if name in ("save", "load"):
        from lepton import io

        return getattr(io, name)
    raise AttributeError(f"module 'lepton.serialization' has no attribute {name!r}")
