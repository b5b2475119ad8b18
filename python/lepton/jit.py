"""torch.jit and torch.compile under an eager engine: Lepton has no graph compiler, so the entry
points return what they were given, and say so once. Saving a scripted module is refused."""

import warnings

_noted = set()


def _note(what):
    if what not in _noted:
        _noted.add(what)
        warnings.warn(f"{what}: Lepton runs eagerly; the model/function is used as it is", stacklevel=3)


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None,
            disable=False):
    """torch.compile: returns model unchanged (also as a decorator, with or without arguments)."""
    if model is None:
        return lambda fn: compile(fn)
    if not disable:
        _note("torch.compile")
    return model


def script(obj, *args, **kwargs):
    _note("torch.jit.script")
    return obj


def trace(func, example_inputs=None, *args, **kwargs):
    _note("torch.jit.trace")
    return func


def ignore(fn=None, **kwargs):
    return fn if fn is not None else (lambda f: f)


unused = export = ignore


def is_scripting():
    return False


def is_tracing():
    return False


def save(m, f, **kwargs):
    raise NotImplementedError("torch.jit.save: Lepton has no TorchScript; save model.state_dict() with lepton.save "
                              "or export to ONNX with lepton.onnx.export")


def load(f, **kwargs):
    raise NotImplementedError("torch.jit.load: Lepton cannot run TorchScript archives")
