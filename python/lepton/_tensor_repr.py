"""Python-side Tensor conveniences: repr, iteration, dtype casts."""

import numpy as np

from lepton import _C
from lepton._settings import print_options

Tensor = _C.Tensor
_DTYPE = _C.dtype


def _repr(self):
    dt = self.dtype
    host = self.detach().cpu()
    if dt in (_DTYPE.bfloat16, _DTYPE.float16):
        host = host.to(_DTYPE.float32)
    arr = host.numpy()
    with np.printoptions(**print_options()):
        body = np.array2string(arr, separator=", ", prefix="tensor(")
    extras = []
    if self.device.type != "cpu":
        extras.append(f"device='{self.device}'")
    if dt not in (_DTYPE.float32, _DTYPE.int64, _DTYPE.bool):
        extras.append(f"dtype={dt!r}")
    if self.numel() == 0 and self.ndim != 1:
        extras.append(f"size={self.shape}")
    if self.grad_fn is not None:
        extras.append(f"grad_fn={self.grad_fn!r}")
    elif self.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def _iter(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (self[i] for i in range(self.shape[0]))


def _cast(dtype):
    def method(self):
        return self.to(dtype)

    method.__name__ = dtype.name
    return method


Tensor.__array_priority__ = 1000  # np.float32(2) * t defers to Tensor.__rmul__, as with torch
Tensor.__repr__ = _repr
Tensor.__str__ = _repr
Tensor.__iter__ = _iter
Tensor.float = _cast(_DTYPE.float32)
Tensor.double = _cast(_DTYPE.float64)
Tensor.half = _cast(_DTYPE.float16)
Tensor.bfloat16 = _cast(_DTYPE.bfloat16)
Tensor.int = _cast(_DTYPE.int32)
Tensor.long = _cast(_DTYPE.int64)
Tensor.bool = _cast(_DTYPE.bool)
Tensor.byte = _cast(_DTYPE.uint8)
