"""Whole modules in a file (torch.save(model)) without pickle: classes and functions by name.

A saved nn.Module is a row of the skeleton's "objects" table, {"class": "module:qualname",
"state": node of its __dict__}; a function or class it refers to (an activation such as F.relu)
is a {"global": "module:qualname"} node; a helper object of Lepton's own that a module holds (an
RNN's cell) is an object row too. The file holds names, never code. Loading takes a name only as
torch's weights_only rules allow: with weights_only=True (the default, as in torch 2.6+) a name
must be one of the safe globals the user allowed (safe_globals(...) / add_safe_globals) or
Lepton's own (the engine itself is trusted code); with weights_only=False any importable name is
taken, so only load files you trust that way.
An object is rebuilt as pickle would rebuild it: cls.__new__(cls), then __setstate__(state) or
its __dict__ updated; its __init__ never runs.
"""

import contextlib
import importlib
import pickle
import sys
import types

_allowed = {}  # "module:qualname" -> object, from add_safe_globals


def reference(obj, path):
    """The "module:qualname" naming `obj`, after checking that the name leads back to it."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    where = path or "<root>"
    if not module or not qualname or "<" in qualname:  # <lambda>, <locals>
        raise TypeError(f"save: the {type(obj).__name__} '{qualname or obj}' at '{where}' has no importable name "
                        "(a lambda or a function/class defined inside another); define it at module level")
    try:
        found = _walk(sys.modules.get(module) or importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        found = None
    if found is not obj:
        raise TypeError(f"save: '{module}.{qualname}' at '{where}' does not lead back to the object saved there")
    return f"{module}:{qualname}"


def resolve(ref, weights_only):
    """The class or function a saved name stands for, as the load's weights_only allows."""
    if weights_only:
        found = _allowed.get(ref) or _lepton_own(ref)
        if found is None:
            name = ref.replace(":", ".")
            raise pickle.UnpicklingError(
                f"load: weights_only=True refuses {name}, which this file names (a saved module's class or a "
                f"function it refers to); allow it with torch.serialization.safe_globals([{name.rpartition('.')[2]}]) "
                "or add_safe_globals([...]), or pass weights_only=False if you trust the file")
        return found
    module, _, qualname = ref.partition(":")
    try:
        return _walk(sys.modules.get(module) or importlib.import_module(module), qualname)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"load: the file names {ref.replace(':', '.')}, which can't be imported here: {e}") from None


def is_lepton_own(cls):
    return cls.__module__.partition(".")[0] == "lepton"


def is_module_part(cls):
    """Whether objects of cls are saved with the module holding them: Lepton's own helpers that
    say so (an RNN's cell, _saved_with_module = True)."""
    return is_lepton_own(cls) and getattr(cls, "_saved_with_module", False)


def _lepton_own(ref):
    """What ref names if it is defined in Lepton itself; None otherwise (also when the walk to it
    passes through another package, as "lepton.io:os.system" would)."""
    module, _, qualname = ref.partition(":")
    if module.partition(".")[0] != "lepton":
        return None
    try:
        found = _walk(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        return None
    named = (getattr(found, "__module__", None), getattr(found, "__qualname__", None))
    return found if named == (module, qualname) and is_lepton_own(found) else None


def rebuild(cls, state_of):
    """A new instance of cls, its state set from state_of(instance) (the instance exists first, so
    state that refers back to it resolves)."""
    if not isinstance(cls, type):
        raise ValueError(f"an object row names {cls!r:.80}, which is not a class")
    obj = cls.__new__(cls)
    state = state_of(obj)
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
    elif type(state) is dict:
        obj.__dict__.update(state)
    else:
        raise ValueError(f"the state of a {cls.__qualname__} must be a dict of its attributes")
    return obj


def state_of(obj):
    """What pickle would save of obj: its __getstate__() where its class defines one, else its __dict__."""
    getstate = type(obj).__getstate__
    return getstate(obj) if getstate is not object.__getstate__ else dict(vars(obj))


def is_global(obj):
    return isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType))


def add_safe_globals(safe_globals):
    """Allows these classes and functions to be named by files loaded with weights_only=True; an item
    may be (obj, "module.qualname") to allow it under another name."""
    for item in safe_globals:
        obj, name = item if isinstance(item, tuple) else (item, None)
        if name is None:
            _allowed[reference(obj, "safe_globals")] = obj
        else:
            module, _, qualname = name.rpartition(".")
            _allowed[f"{module}:{qualname}"] = obj


def get_safe_globals():
    return list(_allowed.values())


def clear_safe_globals():
    _allowed.clear()


@contextlib.contextmanager
def safe_globals(safe_globals):
    """add_safe_globals for the duration of a with-block."""
    before = dict(_allowed)
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        _allowed.clear()
        _allowed.update(before)


def _walk(module, qualname):
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
