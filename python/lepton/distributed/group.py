"""The process-group interface every backend implements, and reduction operators."""

from lepton.distributed import abort
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
        self.checker = None  # a check.Checker when every call is compared with the other ranks'

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

    def submit(self, kind, start, tensor=None, op=None, root=None, blocking=False):
        """The Work of start(), which launches collective `kind` (after the check, when there is
        one); blocking: the caller waits for it at once."""
        if self.checker is None:
            return start()
        return self.checker.submit(kind, start, tensor, op, root, blocking)

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

    def _exit(self):
        """At exit (atexit): MPI_Finalize could wait forever on a peer that is gone, with our MPI
        requests pending, so a broken group ends the whole job instead (our error has been printed
        by now), after a moment that lets the other survivors, which fail at about the same time,
        print theirs."""
        if self.broken:
            abort.end_mpi_job(abort.ABORT_GRACE_S)
