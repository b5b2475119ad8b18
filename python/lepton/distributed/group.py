"""The process-group interface every backend implements, and reduction operators."""

from lepton.distributed.work import DistError


class ReduceOp:
    """Reduction operators for all_reduce and reduce_scatter (names as in torch.distributed)."""

    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"
    ALL = (SUM, AVG, MAX, MIN)


def check_op(op):
    if op not in ReduceOp.ALL:
        raise ValueError(f"unknown reduce op {op!r}; expected one of ReduceOp.SUM, AVG, MAX, MIN")
    return op


class ProcessGroup:
    """A set of processes that run collectives together.

    Backends implement the collectives on contiguous tensors and return a Work; this base keeps
    the timeout and the broken state: after one collective fails or times out the group is
    aborted and every later call raises at once rather than waiting on a peer that is gone.
    """

    backend = "?"
    # True when collectives advance only while someone polls them (MPI without a progress
    # thread): DDP then polls its reductions in flight from every gradient hook.
    progress_by_polling = False

    def __init__(self, timeout):
        self.timeout = float(timeout)
        self._error = None

    def rank(self):
        raise NotImplementedError

    def size(self):
        raise NotImplementedError

    def check_usable(self):
        if self._error is not None:
            raise DistError(f"lepton.distributed: the {self.backend} process group is unusable after an earlier "
                            f"failure ({self._error})")

    def _fail(self, exc):
        """Abort the group and raise `exc` (an error that leaves the peers' state unknown)."""
        if self._error is None:
            self._error = exc
            self.abort()
        raise exc

    @property
    def broken(self):
        return self._error is not None

    # Backends override these. Each returns a Work; tensors are contiguous and on a device the
    # backend accepts (checked by the caller in collectives.py).
    def all_reduce(self, tensor, op):
        raise NotImplementedError

    def broadcast(self, tensor, src):
        raise NotImplementedError

    def all_gather_into_tensor(self, output, input):
        raise NotImplementedError

    def reduce_scatter_tensor(self, output, input, op):
        raise NotImplementedError

    def barrier(self):
        raise NotImplementedError

    def abort(self):
        """Tear the communicator down without waiting for peers."""

    def destroy(self):
        """Release the communicator (all ranks call it together)."""
