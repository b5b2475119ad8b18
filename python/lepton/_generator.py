"""torch.Generator over Lepton's counter-based Philox generator.

Lepton draws every random number from one global (seed, offset) stream (identical on CPU and
CUDA). A Generator holds a stream of its own; a draw with `generator=g` swaps g's state in for
the duration of the draw and takes the advanced state back, so g's numbers are independent of
the global stream and reproducible from g.manual_seed(). `default_generator` is the global
stream itself. The swap is not guarded against another thread drawing at the same moment.
"""

import contextlib
import random as _random

from lepton import _C


class Generator:
    def __init__(self, device="cpu"):
        self.device = _C.device(device)
        self._state = (_random.getrandbits(63), 0)

    def manual_seed(self, seed):
        self._state = (_check_seed(seed), 0)
        return self

    def seed(self):
        seed = _random.getrandbits(63)
        self._state = (seed, 0)
        return seed

    def initial_seed(self):
        return self._state[0]

    def get_state(self):
        return self._state

    def set_state(self, state):
        self._state = _check_state(state)
        return self

    def __repr__(self):
        return f"<lepton.Generator device={self.device} seed={self._state[0]}>"


class _DefaultGenerator(Generator):
    """The global stream that lepton.rand/randn/dropout draw from."""

    def __init__(self):
        self.device = _C.device("cpu")

    def manual_seed(self, seed):
        _C.manual_seed(_check_seed(seed))
        return self

    def seed(self):
        seed = _random.getrandbits(63)
        _C.manual_seed(seed)
        return seed

    def initial_seed(self):
        return _C.initial_seed()

    def get_state(self):
        return _C.get_rng_state()

    def set_state(self, state):
        _C.set_rng_state(_check_state(state))
        return self

    @property
    def _state(self):
        return _C.get_rng_state()


default_generator = _DefaultGenerator()


def _check_seed(seed):
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}") from None
    if not -(2 ** 63) <= seed < 2 ** 64:
        raise ValueError(f"Overflow when unpacking long: seed {seed} must be within [-2**63, 2**64)")
    return seed % (2 ** 64) if seed < 0 else seed


def _check_state(state):
    state = tuple(int(v) for v in (state.tolist() if isinstance(state, _C.Tensor) else state))
    if len(state) != 2 or min(state) < 0:
        raise ValueError(f"a generator state is (seed, offset) with both >= 0, got {state!r}")
    return state


def manual_seed(seed):
    """Seed the global stream (CPU and CUDA draws alike); returns the default generator."""
    return default_generator.manual_seed(seed)


def seed():
    """Seed the global stream from a non-deterministic source; returns the seed."""
    return default_generator.seed()


@contextlib.contextmanager
def using_generator(generator):
    """Run the draws inside with `generator`'s stream (the global one when None)."""
    if generator is None or isinstance(generator, _DefaultGenerator):
        yield
        return
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a lepton.Generator, got {type(generator).__name__}")
    saved = _C.get_rng_state()
    _C.set_rng_state(generator._state)
    try:
        yield
    finally:
        generator._state = _C.get_rng_state()
        _C.set_rng_state(saved)
