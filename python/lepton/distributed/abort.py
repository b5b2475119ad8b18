"""Ending the whole job when one rank dies of an unhandled Python exception.

Its peers would otherwise wait in their next collective until the timeout. Once Python has
printed the traceback, the rank says which rank it is, aborts its communicators (NCCL kernels
waiting on peers) and, when MPI runs the job, calls MPI_Abort, on which mpiexec ends every rank
at once. Under other launchers (torchrun) the process exits non-zero and the launcher ends the
others; a peer left waiting still times out.
"""

import sys
import time

from lepton.distributed.work import DistError

ABORT_GRACE_S = 1.0
_groups = []  # the process groups that an unhandled exception aborts
_previous_hook = None


def watch(group):
    global _previous_hook
    if _previous_hook is None:
        _previous_hook, sys.excepthook = sys.excepthook, _excepthook
    _groups.append(group)


def forget(group):
    if group in _groups:
        _groups.remove(group)


def _excepthook(kind, value, tb):
    _previous_hook(kind, value, tb)
    live = [g for g in _groups if g.size() > 1]
    if not live:
        return
    print(f"lepton.distributed: rank {live[0].rank()} of {live[0].size()} died of an unhandled {kind.__name__}; "
          "aborting the job", file=sys.stderr, flush=True)
    for g in live:
        g.abort()
    # A DistError usually strikes the peers at the same moment (a mismatch, a timeout): let
    # them print theirs before the job goes.
    end_mpi_job(ABORT_GRACE_S if issubclass(kind, DistError) else 0.0)


def end_mpi_job(grace):
    """MPI_Abort on COMM_WORLD after `grace` seconds, when MPI is running (else nothing)."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(grace)
    MPI.COMM_WORLD.Abort(1)
