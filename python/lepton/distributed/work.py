"""Handles for collectives in flight, and the errors they raise."""

import os
import time


class DistError(RuntimeError):
    """A collective failed, ranks called mismatched collectives, or the process group is no longer usable."""


class DistTimeoutError(DistError, TimeoutError):
    """A collective did not finish in time: a peer has probably died, raised or hung."""


def spin_until(test, limit, timed_out):
    """Poll test() until it is true; call timed_out() (which raises) once `limit` seconds have passed."""
    if test():
        return
    start = time.monotonic()
    while not test():
        waited = time.monotonic() - start
        if waited > limit:
            timed_out()
        # Spin briefly (latency, as MPI's own blocking calls do), then yield the core between
        # polls (the peer may need it: ranks often outnumber free cores), and after a second
        # sleep, so that a long wait (a peer writing a checkpoint) costs next to nothing.
        if waited > 1.0:
            time.sleep(1e-3)
        elif waited > 1e-4:
            os.sched_yield()


def guarded(group, name, fn):
    """fn(), where an error of the library's own (MPI.Exception...) means the group is lost."""
    try:
        return fn()
    except DistError:
        raise
    except Exception as e:
        group._fail(DistError(f"lepton.distributed: {name} failed: {e}"))


def timed_out(group, name, limit, why):
    """Abort `group` and raise the DistTimeoutError of collective `name`."""
    group._fail(DistTimeoutError(f"lepton.distributed: {name} timed out after {limit:g} s on rank {group.rank()} of "
                                 f"{group.size()}: {why}; the process group can no longer be used"))


class Work:
    """A collective in flight, as returned by the `async_op=True` variants.

    `poll()` asks the backend whether the operation is done (driving its progress); `finish()`
    runs once on completion (e.g. the division of an average, a copy out of a staging buffer).
    `keep` holds whatever buffers the backend reads or writes until then. `name` ("all_reduce #7")
    is what a timeout reports.
    """

    def __init__(self, name, group, poll, finish=None, keep=()):
        self.name, self._group, self._poll, self._finish, self._keep = name, group, poll, finish, keep
        self._done = False

    def is_completed(self):
        """True once the operation has finished (its result is then in place)."""
        if not self._done and self._test():
            self._complete()
        return self._done

    def _test(self):
        return guarded(self._group, self.name, self._poll)

    def _limit(self, timeout):
        return self._group.timeout if timeout is None else float(timeout)

    def wait(self, timeout=None):
        """Block until done; raise DistTimeoutError after `timeout` seconds (default: the group's)."""
        if not self._done:
            limit = self._limit(timeout)
            spin_until(self._test, limit,
                       lambda: timed_out(self._group, self.name, limit, "a peer has probably died, raised or hung"))
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
