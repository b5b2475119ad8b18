"""Gradient mode: no_grad, enable_grad, set_grad_enabled (torch.autograd.grad_mode)."""

import functools

from lepton import _C

__all__ = ["no_grad", "enable_grad", "set_grad_enabled"]


class _GradMode:
    """Context manager and decorator that sets the grad mode and restores it afterwards."""

    mode = True

    def __enter__(self):
        self._prev = _C.is_grad_enabled()
        _C.set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _C.set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Ops inside record no graph (like torch.no_grad): for evaluation and optimizer steps."""

    mode = False


class enable_grad(_GradMode):
    """Turns graph recording back on inside a no_grad region."""

    mode = True


class set_grad_enabled(_GradMode):
    """set_grad_enabled(False) as a call, a context manager or a decorator."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self._prev = _C.is_grad_enabled()
        _C.set_grad_enabled(self.mode)

    def __enter__(self):
        return self

    def __call__(self, fn):
        mode = self.mode
        _C.set_grad_enabled(self._prev)  # used as a decorator: don't change the mode now

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper
