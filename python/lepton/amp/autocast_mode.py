"""lepton.autocast: torch.autocast's context manager and decorator over the engine's per-thread
autocast state. The policy itself lives in C++ (csrc/lepton/ops/autocast.cpp), applied where ops
dispatch, so every caller of an op is covered; casts are recorded by autograd, so gradients reach
float32 parameters in float32. Casts are not cached (cache_enabled is accepted and ignored)."""

import functools
import warnings

from lepton import _C

_DEVICE_TYPES = ("cpu", "cuda")


def is_autocast_enabled(device_type="cuda"):
    """Whether autocast is on for device_type ('cpu' or 'cuda') on this thread."""
    return _C.is_autocast_enabled(device_type)


def get_autocast_dtype(device_type):
    """The dtype autocast runs lower-precision ops in on device_type (by default cuda: float16, cpu: bfloat16)."""
    return _C.get_autocast_dtype(device_type)


class autocast:
    """with lepton.autocast("cpu"): ... (or as a decorator). Nests: an inner block (say enabled=False)
    restores the outer state when it exits. Backward passes run with autocast off, in the dtypes the
    forward pass recorded, as torch recommends."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        if device_type not in _DEVICE_TYPES:
            raise ValueError(f"autocast: device_type must be one of {_DEVICE_TYPES}, got '{device_type}'")
        self.device = device_type
        self.fast_dtype = _C.get_autocast_dtype(device_type) if dtype is None else dtype
        self._enabled = bool(enabled)
        self._cache_enabled = cache_enabled
        if self.fast_dtype not in (_C.dtype.float16, _C.dtype.bfloat16):
            if self._enabled:
                warnings.warn(f"In {device_type} autocast, but the target dtype {self.fast_dtype} is not supported "
                              "(use float16 or bfloat16). Disabling autocast.")
            self._enabled = False
        if self._enabled and device_type == "cuda":
            from lepton import cuda

            if not cuda.is_available():
                warnings.warn("User provided device_type of 'cuda', but CUDA is not available. Disabling")
                self._enabled = False

    def __enter__(self):
        self._prev = (_C.is_autocast_enabled(self.device), _C.get_autocast_dtype(self.device))
        _C._set_autocast_enabled(self.device, self._enabled)
        if self._enabled:
            _C._set_autocast_dtype(self.device, self.fast_dtype)
        return self

    def __exit__(self, exc_type, exc, tb):
        enabled, dtype = self._prev
        _C._set_autocast_enabled(self.device, enabled)
        _C._set_autocast_dtype(self.device, dtype)
        return False

    def __call__(self, fn):
        device, dtype, enabled, cache = self.device, self.fast_dtype, self._enabled, self._cache_enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(device, dtype, enabled, cache):
                return fn(*args, **kwargs)

        return wrapper
