"""Parameter: a tensor that a Module registers as learnable state.

`lepton.Tensor` is a pybind11 class with no Python constructor, so a Python subclass cannot
be instantiated (`class P(Tensor)` gives "No constructor defined") and an existing tensor
cannot be re-classed (`__class__` assignment fails: the deallocators differ). Parameter is
therefore a marker: `Parameter(data)` returns a plain `lepton.Tensor` (a leaf sharing
`data`'s storage, as torch's does) and remembers that exact Python object in a weak registry,
so `isinstance(p, lepton.Tensor)` and `isinstance(p, Parameter)` are both true, `p.grad`
is the engine's own, and a module hands back the same object every time (the bindings keep one
Python object per live tensor, so `p.requires_grad_()` and hooks return `p` itself). Tensors
derived from a parameter (`p * 2`, `p.detach()`) are plain tensors, as in torch.
"""

import weakref

from lepton._C import Tensor, empty

_registry = weakref.WeakValueDictionary()  # id -> tensor; entries vanish with their tensor


class _ParameterMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and _registry.get(id(obj)) is obj  # (get's default None is no Parameter)


class Parameter(metaclass=_ParameterMeta):
    """Parameter(data=None, requires_grad=True): a leaf tensor aliasing `data`, marked as a parameter."""

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter(): data must be a lepton.Tensor, not {type(data).__name__}")
        p = data.detach()
        p.requires_grad = bool(requires_grad)
        _registry[id(p)] = p
        return p
