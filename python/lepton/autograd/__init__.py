"""lepton.autograd: gradient mode, backward/grad over the C++ engine, Function (ops written in
Python), and gradcheck."""

import numpy as np

from lepton import _C
from lepton.autograd.function import Function, FunctionCtx, once_differentiable
from lepton.autograd.grad_mode import enable_grad, no_grad, set_grad_enabled

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "backward", "grad", "gradcheck", "Function", "FunctionCtx",
           "once_differentiable"]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulates the gradients of `tensors` (seeded with `grad_tensors`) into the leaves' .grad."""
    _C._autograd_backward(tensors, grad_tensors, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """The gradients of `outputs` with respect to `inputs`, as a tuple; .grad is left untouched."""
    return _C._autograd_grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compares autograd's gradients of fn(*inputs) with central finite differences.

    Inputs that require grad should be float64 CPU tensors. Checks the full Jacobian, one output
    element at a time, so keep the tensors small. Returns True, or raises (or returns False) with
    the first mismatch.
    """
    inputs = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, _C.Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    for i in wrt:
        if inputs[i].dtype != _C.dtype.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 for finite differences")

    def outputs_of(args):
        out = fn(*args)
        return out if isinstance(out, (list, tuple)) else (out,)

    def flat_values(args):
        with no_grad():
            return np.concatenate([o.detach().double().numpy().ravel() for o in outputs_of(args)])

    outs = outputs_of(inputs)
    sizes = [o.numel() for o in outs]
    n_out = sum(sizes)
    for i in wrt:
        x = inputs[i]
        analytic = np.zeros((n_out, x.numel()))
        row = 0
        for k, o in enumerate(outs):
            for j in range(sizes[k]):
                seed = np.zeros(o.numel())
                seed[j] = 1.0
                gos = [_C.from_numpy(seed.reshape(o.shape).astype(np.float64)).to(o.dtype) if m == k else
                       _C.zeros(oo.shape, dtype=oo.dtype) for m, oo in enumerate(outs)]
                g = grad(list(outs), [x], gos, retain_graph=True, allow_unused=True)[0]
                if g is not None:
                    analytic[row] = g.double().numpy().ravel()
                row += 1
        numeric = np.zeros_like(analytic)
        data = x.detach().numpy().reshape(-1)  # shares memory with x
        for e in range(x.numel()):
            orig = data[e]
            data[e] = orig + eps
            plus = flat_values(inputs)
            data[e] = orig - eps
            minus = flat_values(inputs)
            data[e] = orig
            numeric[:, e] = (plus - minus) / (2 * eps)
        if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), analytic.shape)
            msg = (f"gradcheck: Jacobian mismatch for input {i} at (output {worst[0]}, element {worst[1]}): "
                   f"analytical {analytic[worst]:.6g} vs numerical {numeric[worst]:.6g}")
            if raise_exception:
                raise AssertionError(msg)
            return False
    return True
