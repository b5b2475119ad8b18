"""Handles for collectives in flight, and the errors they raise."""

import os
import time


class DistError(RuntimeError):
    """A collective failed, or the process group is no longer usable."""


class DistTimeoutError(DistError, TimeoutError):
    """A collective did not finish in time: a peer has probably died, raised or hung."""


class Work:
    """A collective in flight, as returned by the `async_op=True` variants.

    `poll()` asks the backend whether the operation is done (driving its progress); `finish()`
    runs once on completion (e.g. the division of an average, a copy out of a staging buffer).
    `keep` holds whatever buffers the backend reads or writes until then.
    """

    def __init__(self, name, group, poll, finish=None, keep=()):
        self._name, self._group, self._poll, self._finish, self._keep = name, group, poll, finish, keep
        self._done = False

    def is_completed(self):
        """True once the operation has finished (its result is then in place)."""
        if not self._done and self._test():
            self._complete()
        return self._done

    def _test(self):
        try:
            return self._poll()
        except DistError:
            raise
        except Exception as e:  # the library's own error (MPI.Exception...): the group is lost
            self._group._fail(DistError(f"lepton.distributed: {self._name} failed: {e}"))

    def wait(self, timeout=None):
        """Block until done; raise DistTimeoutError after `timeout` seconds (default: the group's)."""
        if self._done:
            return True
        if self._test():
            self._complete()
            return True
        limit = self._group.timeout if timeout is None else float(timeout)
        start = time.monotonic()
        while not self._test():
            waited = time.monotonic() - start
            if waited > limit:
                self._group._fail(DistTimeoutError(
                    f"lepton.distributed: {self._name} did not finish within {limit:g} s on rank "
                    f"{self._group.rank()} of {self._group.size()}; a peer has probably died, raised or hung, "
                    "and the process group can no longer be used"))
            # Spin briefly (latency, as MPI's own blocking calls do), then yield the core between
            # polls (the peer may need it: ranks often outnumber free cores), and after a second
            # sleep, so that a long wait (a peer writing a checkpoint) costs next to nothing.
            if waited > 1.0:
                time.sleep(1e-3)
            elif waited > 1e-4:
                os.sched_yield()
        self._complete()
        return True

    def _complete(self):
        self._done = True
        finish, self._finish, self._keep = self._finish, None, ()
        if finish is not None:
            finish()


def completed_work(group, name="noop"):
    """A Work that is already done (collectives on empty tensors)."""
    w = Work(name, group, lambda: True)
    w._done = True
    return w
