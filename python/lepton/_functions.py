"""PyTorch-style free functions (lepton.exp(x), lepton.sum(x, dim)...) over Tensor methods."""

from lepton import _C
from lepton._C import Tensor

_UNARY = ["neg", "abs", "square", "sign", "relu", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid",
          "sin", "cos", "floor", "ceil", "round", "reciprocal", "erf", "log1p", "expm1", "log2",
          "logical_not", "clone", "contiguous", "flatten", "squeeze", "unsqueeze", "t", "nonzero"]
_BINARY = ["add", "sub", "mul", "div", "true_divide", "pow", "floor_divide", "remainder", "maximum",
           "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"]
_OTHER = ["sum", "mean", "var", "std", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "all",
          "any", "logsumexp", "clamp", "reshape", "permute", "transpose", "swapaxes", "split", "chunk",
          "unbind", "select", "narrow", "index_select", "expand", "matmul", "bmm", "addmm", "mm", "mv", "dot",
          "outer", "baddbmm", "masked_fill", "masked_select", "gather", "scatter", "scatter_add", "index_add",
          "index_fill", "sort", "argsort", "msort", "topk", "cumsum", "multinomial", "tril", "triu", "repeat_interleave",
          "flip", "roll", "norm", "isnan", "isinf", "isfinite", "nan_to_num", "allclose", "isclose", "equal",
          "clamp_min", "clamp_max", "softmax", "log_softmax", "addcmul", "addcdiv", "lerp", "bernoulli", "numel",
          "is_floating_point", "is_complex"]


def _forward(name):
    method = getattr(Tensor, name)

    def fn(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(f"lepton.{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
        return method(input, *args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"lepton.{name}(input, ...) is input.{name}(...)"
    return fn


for _name in _UNARY + _BINARY + _OTHER:
    globals()[_name] = _forward(_name)

def is_tensor(obj):
    return isinstance(obj, Tensor)


def concat(tensors, dim=0):
    return _C.cat(tensors, dim)


def hstack(tensors):
    return _C.cat(tensors, 0 if all(t.ndim == 1 for t in tensors) else 1)


def vstack(tensors):
    return _C.cat([t.reshape(1, -1) if t.ndim < 2 else t for t in tensors], 0)


clip = globals()["clamp"]
negative = globals()["neg"]
multiply, subtract, divide = globals()["mul"], globals()["sub"], globals()["div"]

concatenate = concat

__all__ = _UNARY + _BINARY + _OTHER + ["clip", "negative", "multiply", "subtract", "divide", "is_tensor", "concat",
                                      "concatenate", "hstack", "vstack"]
