"""lepton.inference_mode: no_grad for serving (torch.inference_mode's contract).

Lepton's autograd records a graph node, and saves tensors for backward, only when grad mode is
on and an input requires grad, so grad mode off already gives "no graph, no saved tensors";
inference_mode is that mode under torch's name, usable as a context manager or a decorator. Like
grad mode (thread-local in C++), it applies to the calling thread only.
"""

import functools
import threading

from lepton import _C

__all__ = ["inference_mode", "is_inference_mode_enabled"]

_state = threading.local()


class inference_mode:
    """Ops inside record no graph and keep no tensors for backward. inference_mode(False) changes
    nothing (as in torch), so code can switch it with a flag."""

    def __init__(self, mode=True):
        self.enabled = bool(mode)

    def __enter__(self):
        self._prev = (_C.is_grad_enabled(), getattr(_state, "on", False))
        if self.enabled:
            _C.set_grad_enabled(False)
            _state.on = True
        return self

    def __exit__(self, *exc):
        _C.set_grad_enabled(self._prev[0])
        _state.on = self._prev[1]
        return False

    def __call__(self, fn):
        enabled = self.enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(enabled):
                return fn(*args, **kwargs)

        return wrapper


def is_inference_mode_enabled():
    """Whether the calling thread runs inside inference_mode()."""
    return getattr(_state, "on", False)
