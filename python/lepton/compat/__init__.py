"""Run PyTorch programs on Lepton: `import torch` and `import torchvision` resolve to Lepton's modules.

`install()` puts a finder first on sys.meta_path. It answers every module name under `torch` and
`torchvision` by importing the Lepton module that implements it (the table in `aliases.py`) and
registering that very module object under the torch name, so `torch.nn.Linear is lepton.nn.Linear`
and a class is never loaded twice. torch's deep module paths that only re-export classes
(`torch.nn.modules.activation`, ...) become small views onto the Lepton package that holds the
names. A torch module Lepton does not provide raises ModuleNotFoundError naming it.

`lepton run script.py` (and `python -m lepton.run`) calls install() and runs the script as
`__main__`; nothing of PyTorch is imported or copied.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

from lepton.compat.aliases import ALIASES, VIEW_SUBMODULES, VIEWS, resolve

__all__ = ["install", "uninstall", "is_installed"]


class _AliasLoader(importlib.abc.Loader):
    """Loads a torch name by putting the Lepton module in sys.modules under it.

    The import system re-reads sys.modules[name] after exec_module, so the placeholder module it
    created is dropped and the Lepton module itself is what `import torch.x` binds."""

    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        sys.modules[module.__name__] = self.target


class _ViewLoader(importlib.abc.Loader):
    """A torch module path that only re-exports names: its attributes come from Lepton modules,
    searched in order."""

    def __init__(self, sources):
        self.sources = sources

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        sources = [m for m in map(_existing_module, self.sources) if m is not None]
        module.__getattr__ = lambda name: _view_attr(module.__name__, sources, name)
        module.__path__ = []  # a package, so its own submodules (torch.nn.modules.x.y) resolve too


def _existing_module(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if not (name == e.name or name.startswith(f"{e.name}.")):  # (a module that fails inside is a real error)
            raise
        return None


def _view_attr(view_name, sources, name):
    if name in VIEW_SUBMODULES.get(view_name, ()):
        return importlib.import_module(f"{view_name}.{name}")
    for source in sources:
        if hasattr(source, name):
            return getattr(source, name)
    raise AttributeError(f"module '{view_name}' has no attribute '{name}' "
                         f"(Lepton provides it as {sources[0].__name__}, which lacks it)")


class _TorchFinder(importlib.abc.MetaPathFinder):
    def __init__(self):
        # (module, attribute, value before) for each Lepton module attribute the import system
        # rebinds to a torch view (importing torch.nn.modules sets lepton.nn.modules): undone by
        # uninstall()
        self.shadowed = []
        self.put_aside = {}  # a real torch's modules, imported before install()

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top not in ("torch", "torchvision"):
            return None
        kind, where = resolve(fullname)
        if kind == "alias":
            module = importlib.import_module(where)
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(module), is_package=True)
        if kind == "view":
            parent_name, _, attr = fullname.rpartition(".")
            parent = sys.modules.get(parent_name)
            if parent is not None and parent.__name__.partition(".")[0] == "lepton" and hasattr(parent, attr):
                self.shadowed.append((parent, attr, getattr(parent, attr)))
            return importlib.machinery.ModuleSpec(fullname, _ViewLoader(where), is_package=True)
        raise ModuleNotFoundError(f"No module named '{fullname}': Lepton does not provide {fullname} "
                                  f"(under `lepton run`, '{top}' is Lepton; {where})", name=fullname)


_FINDER = _TorchFinder()


def is_installed():
    return _FINDER in sys.meta_path


def install():
    """Make `import torch` / `import torchvision` resolve to Lepton (idempotent).

    A real torch imported earlier in this process is put aside until uninstall() (mixing two
    engines' tensors in one program cannot work): later imports of torch names get Lepton's."""
    if is_installed():
        return
    for name in _torch_names():
        _FINDER.put_aside[name] = sys.modules.pop(name)
    sys.meta_path.insert(0, _FINDER)
    for name in VIEW_SUBMODULES:  # bound as attributes now, as torch's own import binds them
        importlib.import_module(name)


def uninstall():
    """Undo install(): torch names stop resolving to Lepton, its torch entries leave sys.modules
    and a real torch put aside by install() is restored (Lepton's modules stay imported)."""
    if is_installed():
        sys.meta_path.remove(_FINDER)
    while _FINDER.shadowed:
        module, attr, value = _FINDER.shadowed.pop()
        setattr(module, attr, value)
    for name in _torch_names():
        del sys.modules[name]
    sys.modules.update(_FINDER.put_aside)  # a real torch's modules come back as they were
    _FINDER.put_aside.clear()


def _torch_names():
    return [n for n in sys.modules if n.partition(".")[0] in ("torch", "torchvision")]


assert set(ALIASES).isdisjoint(VIEWS)
