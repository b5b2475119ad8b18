"""Activation checkpointing (torch.utils.checkpoint): trade compute for memory.

checkpoint(fn, *args) runs fn without keeping its intermediate activations; backward runs fn
again on the saved inputs, with the random state and autocast state the first run had (so
dropout masks and dtypes match), and backpropagates through that recomputation. Gradients
reach fn's inputs and every parameter fn uses, whether or not an input requires grad.
use_reentrant=True and False give the same gradients here: both recompute inside backward.
"""

import lepton
from lepton import _C
from lepton.autograd.function import Function

__all__ = ["checkpoint", "checkpoint_sequential"]

_AUTOCAST_DEVICES = ("cpu", "cuda")


def checkpoint(function, *args, use_reentrant=None, context_fn=None, determinism_check="default", debug=False,
               preserve_rng_state=True, **kwargs):
    """function(*args, **kwargs), its activations recomputed in backward instead of kept.
    function must return a tensor or a tuple (tensors and other values)."""
    if context_fn is not None:
        raise NotImplementedError("checkpoint: context_fn (selective checkpointing) is not supported by Lepton; "
                                  "checkpoint the parts whose activations should be dropped instead")
    if determinism_check not in ("default", "none"):
        raise ValueError(f"checkpoint: determinism_check must be 'default' or 'none', got {determinism_check!r}")
    if use_reentrant and kwargs:
        raise ValueError("checkpoint: keyword arguments are only supported with use_reentrant=False (as in torch)")
    if not _C.is_grad_enabled():
        return function(*args, **kwargs)  # nothing would be saved anyway
    # A leaf that requires grad joins the inputs, so the recomputation is recorded even when no
    # input requires grad and only parameters inside function do.
    anchor = lepton.empty(0, requires_grad=True)
    return _Checkpoint.apply(function, kwargs, preserve_rng_state, determinism_check == "default", anchor, *args)


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Runs the modules of `functions` (an nn.Sequential or a list) in order, split into `segments`
    chunks of consecutive modules; every chunk but the last is checkpointed."""
    functions = list(functions.children()) if isinstance(functions, lepton.nn.Sequential) else list(functions)
    if not isinstance(segments, int) or not 1 <= segments <= max(len(functions), 1):
        raise ValueError(f"checkpoint_sequential: segments must be an integer from 1 to {len(functions)} "
                         f"(the number of functions), got {segments!r}")
    size = len(functions) // segments

    def run(chunk):
        def forward(x):
            for f in chunk:
                x = f(x)
            return x

        return forward

    end = 0
    for start in range(0, size * (segments - 1), size):
        end = start + size
        input = checkpoint(run(functions[start:end]), input, use_reentrant=use_reentrant, **kwargs)
    return run(functions[end:])(input)


class _Checkpoint(Function):
    @staticmethod
    def forward(ctx, function, kwargs, preserve_rng_state, check, anchor, *args):
        ctx.function, ctx.kwargs, ctx.check = function, kwargs, check
        ctx.rng_state = lepton.get_rng_state() if preserve_rng_state else None
        ctx.autocast = [(d, _C.is_autocast_enabled(d), _C.get_autocast_dtype(d)) for d in _AUTOCAST_DEVICES]
        ctx.args = args
        output = function(*args, **kwargs)
        outputs = output if isinstance(output, tuple) else (output,)
        ctx.shapes = [tuple(o.shape) if isinstance(o, _C.Tensor) else None for o in outputs]
        return output

    @staticmethod
    def backward(ctx, *grads):
        inputs = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, _C.Tensor) else a for a in ctx.args]
        with _Recomputing(ctx):
            output = ctx.function(*inputs, **ctx.kwargs)
        outputs = output if isinstance(output, tuple) else (output,)
        if ctx.check:
            shapes = [tuple(o.shape) if isinstance(o, _C.Tensor) else None for o in outputs]
            if shapes != ctx.shapes:
                raise RuntimeError(f"checkpoint: recomputing the function gave outputs of shapes {shapes}, but the "
                                   f"first run gave {ctx.shapes}; the function must be deterministic in its shapes")
        tensors = [o for o in outputs if isinstance(o, _C.Tensor)]
        pairs = [(o, g) for o, g in zip(tensors, grads) if o.requires_grad]
        if pairs:
            lepton.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        return (None, None, None, None, None) + tuple(
            i.grad if isinstance(i, _C.Tensor) and i.requires_grad else None for i in inputs)


class _Recomputing:
    """Grad mode on, the first run's random and autocast state, and the caller's restored after."""

    def __init__(self, ctx):
        self.ctx = ctx

    def __enter__(self):
        self.grad_mode = _C.is_grad_enabled()
        _C.set_grad_enabled(True)
        self.rng_state = lepton.get_rng_state() if self.ctx.rng_state is not None else None
        if self.rng_state is not None:
            lepton.set_rng_state(self.ctx.rng_state)
        self.autocast = [(d, _C.is_autocast_enabled(d), _C.get_autocast_dtype(d)) for d in _AUTOCAST_DEVICES]
        self.suspended = _C._set_autocast_suspended(False)  # (backward suspends autocast)
        for d, on, dtype in self.ctx.autocast:
            _C._set_autocast_enabled(d, on)
            _C._set_autocast_dtype(d, dtype)

    def __exit__(self, *exc):
        for d, on, dtype in self.autocast:
            _C._set_autocast_enabled(d, on)
            _C._set_autocast_dtype(d, dtype)
        _C._set_autocast_suspended(self.suspended)
        if self.rng_state is not None:
            lepton.set_rng_state(self.rng_state)
        _C.set_grad_enabled(self.grad_mode)
        return False
