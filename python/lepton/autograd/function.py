"""torch.autograd.Function: an op whose forward and backward are Python static methods.

forward runs under no_grad on the arguments as given; when grad mode is on and a tensor argument
requires grad, its outputs join the graph through one C++ node (_C._record_function) whose
backward calls the class's backward with one gradient per differentiable output (zeros where
none arrived) and expects one gradient (or None) per forward argument.
"""

import functools

from lepton import _C
from lepton.autograd.grad_mode import no_grad

__all__ = ["Function", "FunctionCtx", "once_differentiable"]


class FunctionCtx:
    """The ctx of forward/backward: save_for_backward / saved_tensors, needs_input_grad,
    mark_non_differentiable, set_materialize_grads; any other attribute is free for the user."""

    def save_for_backward(self, *tensors):
        for t in tensors:
            if t is not None and not isinstance(t, _C.Tensor):
                raise TypeError(f"save_for_backward can only save tensors or None, got {type(t).__name__}")
        self._saved = tensors

    @property
    def saved_tensors(self):
        return getattr(self, "_saved", ())

    def mark_non_differentiable(self, *outputs):
        self._non_differentiable = {id(o) for o in outputs}

    def mark_dirty(self, *tensors):
        raise NotImplementedError("Function ctx.mark_dirty: in-place Functions are not supported by Lepton; return a "
                                  "new tensor from forward instead")

    def set_materialize_grads(self, value):
        # Gradients that never arrived reach backward as zeros either way (the node fills them in).
        self.materialize_grads = bool(value)


class Function:
    """Subclass with @staticmethod forward(ctx, *args) and backward(ctx, *grads) (or forward(*args)
    plus setup_context(ctx, inputs, output)); call MyFunction.apply(*args)."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__}: call {type(self).__name__}.apply(...) instead of creating an "
                           "instance (forward and backward are static methods)")

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("a Function subclass must define forward")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a Function subclass must define backward to be differentiated")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        if kwargs:
            raise TypeError(f"{cls.__name__}.apply takes positional arguments only (as torch's), got "
                            f"{', '.join(kwargs)}")
        ctx = FunctionCtx()
        positions = [i for i, a in enumerate(args) if isinstance(a, _C.Tensor)]
        ctx.needs_input_grad = tuple(isinstance(a, _C.Tensor) and a.requires_grad for a in args)
        with no_grad():
            if cls.setup_context is Function.setup_context:
                output = cls.forward(ctx, *args)
            else:
                output = cls.forward(*args)
                cls.setup_context(ctx, args, output)
        if not (_C.is_grad_enabled() and any(ctx.needs_input_grad)):
            return output
        return _connect(cls, ctx, args, positions, output)


def _connect(cls, ctx, args, positions, output):
    """Puts the outputs into the graph: each differentiable one as a fresh alias (so a returned
    input keeps its own history, and the node holds no tensor that holds it)."""
    single = isinstance(output, _C.Tensor)
    outputs = (output,) if single else tuple(output) if isinstance(output, (tuple, list)) else None
    if outputs is None:
        raise TypeError(f"{cls.__name__}.forward must return a tensor or a tuple of them, got {type(output).__name__}")
    skip = getattr(ctx, "_non_differentiable", set())
    result, recorded, slots = [], [], []  # slots: where each recorded output sits among all outputs
    for n, o in enumerate(outputs):
        if isinstance(o, _C.Tensor) and o.is_floating_point() and id(o) not in skip:
            o = o.detach()
            recorded.append(o)
            slots.append(n)
        result.append(o)
    inputs = [args[i] for i in positions]
    specs = [(tuple(o.shape), o.dtype, o.device) if isinstance(o, _C.Tensor) else None for o in outputs]

    def backward(*grads):
        # One gradient per forward output, as in torch: zeros for tensors outside the graph, None otherwise.
        full = [None if spec is None else _C.zeros(spec[0], dtype=spec[1], device=spec[2]) for spec in specs]
        for n, g in zip(slots, grads):
            full[n] = g
        grads_in = cls.backward(ctx, *full)
        grads_in = grads_in if isinstance(grads_in, tuple) else (grads_in,)
        if len(grads_in) != len(args):
            raise RuntimeError(f"function {cls.__name__}Backward returned an incorrect number of gradients "
                               f"(expected {len(args)}, got {len(grads_in)})")
        out = []
        for i, g in enumerate(grads_in):
            if i not in positions:
                if g is not None:
                    raise RuntimeError(f"function {cls.__name__}Backward returned a gradient different than None "
                                       f"at position {i + 1}, but the corresponding forward input was not a tensor")
                continue
            if g is not None and tuple(g.shape) != tuple(args[i].shape):
                raise RuntimeError(f"function {cls.__name__}Backward returned an invalid gradient at index {i} - got "
                                   f"{list(g.shape)} but expected shape compatible with {list(args[i].shape)}")
            out.append(g if args[i].requires_grad else None)
        return out

    if recorded:
        _C._record_function(f"{cls.__name__}Backward", inputs, recorded, backward)
    return result[0] if single else type(output)(result) if isinstance(output, tuple) else result


def once_differentiable(fn):
    """Marks a backward that is not itself differentiable: it runs under no_grad."""

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            return fn(ctx, *args)

    return wrapper
