"""Module: the base class of layers and models (registration, state_dict, modes, hooks, repr)."""

import itertools
from collections import OrderedDict, namedtuple

from lepton import _C
from lepton.autograd import no_grad
from lepton.nn.modules.summary import summary_table
from lepton.nn.parameter import Parameter

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """Returned by register_*_hook: handle.remove() (or leaving a `with` block) unregisters the hook."""

    _next_id = itertools.count()

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = next(RemovableHandle._next_id)

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _addindent(text, spaces):
    lines = text.split("\n")
    return lines[0] if len(lines) == 1 else "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


def _parse_to(*args, **kwargs):
    """(device, dtype) from Module.to's torch-style arguments: to(device), to(dtype), to(tensor), keywords."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)  # copies are synchronous; accepted for torch compatibility
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, _C.Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, _C.dtype):
            dtype = a
        elif isinstance(a, (str, _C.device)):
            device = _C.device(a) if isinstance(a, str) else a
        else:
            raise TypeError(f"to() expects a device, a dtype or a Tensor, got {type(a).__name__}")
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
    return device, dtype


class Module:
    """Base class for all neural-network modules; subclasses set attributes in __init__ and define forward."""

    def __init__(self):
        # object.__setattr__ because our __setattr__ consults these dicts
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ---- registration ---------------------------------------------------------------------

    def _check_name(self, kind, name):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f'{kind} name can\'t be empty or contain ".", got: {name!r}')

    def register_parameter(self, name, param):
        """Adds a Parameter (or None, a declared-but-absent parameter such as bias=False) under `name`."""
        self._check_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(lepton.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Adds non-learnable state (e.g. running statistics); persistent buffers go into state_dict."""
        self._check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, _C.Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(lepton.Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Adds a child module (or None) under `name`."""
        self._check_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module

    register_module = add_module

    def _forget(self, name, keep=None):
        """Drops `name` from every store but `keep`, where a reassignment keeps its place (as in torch:
        resnet.conv1 = Conv2d(...) stays the first child)."""
        for store in (self.__dict__, self._parameters, self._buffers, self._modules):
            if store is not keep:
                store.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_name("parameters", name)
            self._forget(name, keep=self._parameters)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(lepton.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            self._check_name("child module", name)
            self._forget(name, keep=self._modules)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(lepton.nn.Module or None expected)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, _C.Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(lepton.Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails
        for store in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # ---- traversal ------------------------------------------------------------------------

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(qualified name, module) for self and every descendant, each module once by default."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, store, prefix, recurse, remove_duplicate):
        seen = set()
        owners = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for owner_prefix, owner in owners:
            for name, value in getattr(owner, store).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{owner_prefix}.{name}" if owner_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(qualified name, Parameter) pairs; a parameter shared by several modules appears once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- state ----------------------------------------------------------------------------

    def _state_items(self):
        """This module's own (name, tensor) entries of state_dict: parameters, then persistent buffers."""
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield name, b

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """An OrderedDict of parameters and persistent buffers under dotted names, detached unless keep_vars."""
        destination = OrderedDict() if destination is None else destination
        for name, t in self._state_items():
            destination[prefix + name] = t if keep_vars else t.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copies tensors from state_dict into this module's parameters and buffers, in place.

        Shape mismatches always raise; with strict=True missing or unexpected keys raise too.
        Returns (missing_keys, unexpected_keys).
        """
        targets = OrderedDict()
        for prefix, module in self.named_modules(remove_duplicate=False):
            for name, t in module._state_items():
                targets[f"{prefix}.{name}" if prefix else name] = t
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        errors = []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if not isinstance(value, _C.Tensor):
                errors.append(f'While copying the parameter named "{key}", expected a lepton.Tensor, '
                              f"got {type(value).__name__}.")
            elif tuple(value.shape) != tuple(target.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} from "
                              f"checkpoint, the shape in current model is {tuple(target.shape)}.")
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        with no_grad():
            for key, target in targets.items():
                if key in state_dict:
                    target.copy_(state_dict[key])
        return _IncompatibleKeys(missing, unexpected)

    # ---- modes and bulk changes -----------------------------------------------------------

    def train(self, mode=True):
        """Sets training mode on self and every descendant (affects Dropout, BatchNorm...)."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clears the gradients of every parameter: to None (the default) or to zeros in place."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def apply(self, fn):
        """Calls fn on every submodule (children first) and then on self; e.g. custom initialisation."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        """Moves/casts parameters and buffers: to(device), to(dtype), to(device, dtype), to(tensor).

        dtype applies to floating-point tensors only. A parameter that already has the wanted
        device and dtype stays the same object. One that must change is replaced by a new
        Parameter carrying requires_grad and its converted .grad: the engine offers no way to
        swap a tensor's storage under an existing Python object, so build optimizers after to().
        """
        device, dtype = _parse_to(*args, **kwargs)

        def convert(t):
            want = dtype if dtype is not None and t.dtype.is_floating_point else t.dtype
            if t.dtype == want and (device is None or t.device == device):
                return t
            return t.to(device=device, dtype=want)

        replaced = {}  # id(old) -> new, so a parameter shared by several modules (tied weights) stays shared
        with no_grad():
            for m in self.modules():
                for name, p in m._parameters.items():
                    if p is not None and id(p) in replaced:
                        m._parameters[name] = replaced[id(p)]
                        continue
                    data = None if p is None else convert(p)
                    if data is p:
                        continue
                    new = Parameter(data, p.requires_grad)
                    if p.grad is not None:
                        new.grad = convert(p.grad)
                    m._parameters[name] = replaced[id(p)] = new
                for name, b in m._buffers.items():
                    if b is not None:
                        m._buffers[name] = convert(b)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(_C.device("cuda", device))

    def float(self):
        return self.to(dtype=_C.dtype.float32)

    def double(self):
        return self.to(dtype=_C.dtype.float64)

    def half(self):
        return self.to(dtype=_C.dtype.float16)

    def bfloat16(self):
        return self.to(dtype=_C.dtype.bfloat16)

    # ---- hooks ----------------------------------------------------------------------------

    def register_forward_pre_hook(self, hook):
        """hook(module, args) runs before forward; returning a value (or tuple) replaces the positional args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """hook(module, args, output) runs after forward; returning a value replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ---- display --------------------------------------------------------------------------

    def extra_repr(self):
        """The text inside this module's parentheses in repr (e.g. 'in_features=4, out_features=2')."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _addindent(repr(m), 2) for name, m in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"

    def summary(self):
        """Prints a table of submodules with their own parameter counts, and the totals."""
        print(summary_table(self))
