"""Collective safety over 2 MPI ranks: mismatched calls raise DistError on every rank before any
data moves, a rank that skips a collective makes its peer time out naming it, and a rank that
raises ends the whole job at once.

Each test starts `mpiexec -n 2 python tests/test_distributed_checks.py <case>` (this file is also
the worker script: see the bottom) through test_distributed_mpi's runner, with a hard timeout.
"""

import os
import sys
import time

import numpy as np
from test_distributed_mpi import _report, _run

HERE = os.path.abspath(__file__)

MISMATCHES = ["shape", "same_numel_shape", "float32_float64", "float32_int32", "op", "all_gather_size",
              "broadcast_src", "reduce_scatter_op", "skipped_then_barrier", "async"]


def test_mismatched_calls_raise_on_every_rank():
    proc, _, reported = _run("mismatches", 2, script=HERE)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for r in range(2):
        for case in MISMATCHES + ["still_usable"]:
            assert f"OK {case} {r}\n" in reported, out


def test_skipped_collective_times_out_naming_the_rank():
    # rank 1 skips all_reduce #2 and stays busy for 30 s: rank 0 raises after its 3 s timeout,
    # and its unhandled DistTimeoutError ends the job (rank 1 included) at once
    proc, took, reported = _run("skip", 2, timeout=40, dist_timeout=3, script=HERE)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert ("all_reduce #2 timed out after 3 s on rank 0 of 2: waiting for rank 1, which has not reached this "
            "collective") in reported, out
    assert "rank 0 of 2 died of an unhandled DistTimeoutError; aborting the job" in out, out
    assert took < 15, f"the job took {took:.1f} s to end with a 3 s timeout\n{out}"


def test_raising_rank_ends_the_job_at_once():
    # rank 0 waits in all_reduce #2 for rank 1, which raised: the job must end long before the 60 s timeout
    proc, took, reported = _run("raise", 2, timeout=50, dist_timeout=60, script=HERE)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "ValueError: rank 1 fails on purpose" in out, out
    assert "rank 1 of 2 died of an unhandled ValueError; aborting the job" in out, out
    assert "OK raise" not in reported, out  # rank 0 never got past its all_reduce
    assert took < 15, f"the job took {took:.1f} s to end after a rank raised\n{out}"


# ---------------------------------------------------------------------------------------------
# Worker side: runs under mpiexec, one process per rank.


def _expect_mismatch(dist, fn, text):
    try:
        fn()
    except dist.DistError as e:
        assert text in str(e), f"expected {text!r} in {str(e)!r}"
        assert "no data was exchanged" in str(e), str(e)
    else:
        raise AssertionError(f"no DistError for {text!r}")


def case_mismatches(dist, rank):
    import lepton

    def mine(t0, t1):
        return t0 if rank == 0 else t1

    # the data must not move: each rank's tensor keeps its own values
    x = mine(lepton.full((1024,), 1.0), lepton.full((512,), 2.0))
    _expect_mismatch(dist, lambda: dist.all_reduce(x),
                     "lepton.distributed: all_reduce mismatch at call #1: rank 0 float32[1024] op=sum, "
                     "rank 1 float32[512] op=sum;")
    assert x.tolist() == [float(rank + 1)] * x.numel()
    _report(rank, f"OK shape {rank}")

    x = lepton.zeros(mine((2, 3), (3, 2)))
    _expect_mismatch(dist, lambda: dist.all_reduce(x), "call #2: rank 0 float32[2, 3] op=sum, rank 1 float32[3, 2]")
    _report(rank, f"OK same_numel_shape {rank}")

    x = lepton.full((1024,), float(rank + 1), dtype=mine(lepton.float32, lepton.float64))
    _expect_mismatch(dist, lambda: dist.all_reduce(x), "rank 0 float32[1024] op=sum, rank 1 float64[1024] op=sum;")
    assert x.tolist() == [float(rank + 1)] * 1024
    _report(rank, f"OK float32_float64 {rank}")

    x = lepton.ones(1024, dtype=mine(lepton.float32, lepton.int32))
    _expect_mismatch(dist, lambda: dist.all_reduce(x), "rank 0 float32[1024] op=sum, rank 1 int32[1024] op=sum;")
    _report(rank, f"OK float32_int32 {rank}")

    x = lepton.full((8,), float(rank))
    _expect_mismatch(dist, lambda: dist.all_reduce(x, mine("sum", "max")),
                     "all_reduce mismatch at call #5: rank 0 float32[8] op=sum, rank 1 float32[8] op=max;")
    assert x.tolist() == [float(rank)] * 8
    _report(rank, f"OK op {rank}")

    n = mine(3, 4)
    outs = [lepton.full((n,), -1.0) for _ in range(2)]
    _expect_mismatch(dist, lambda: dist.all_gather(outs, lepton.full((n,), float(rank))),
                     "all_gather mismatch at call #6: rank 0 float32[3], rank 1 float32[4];")
    assert all(o.tolist() == [-1.0] * n for o in outs)
    _report(rank, f"OK all_gather_size {rank}")

    b = lepton.full((4,), float(rank))
    _expect_mismatch(dist, lambda: dist.broadcast(b, src=mine(0, 1)),
                     "broadcast mismatch at call #7: rank 0 float32[4] src=0, rank 1 float32[4] src=1;")
    assert b.tolist() == [float(rank)] * 4
    _report(rank, f"OK broadcast_src {rank}")

    out = lepton.zeros(2)
    _expect_mismatch(dist, lambda: dist.reduce_scatter_tensor(out, lepton.ones(4), mine("sum", "avg")),
                     "rank 0 float32[4] op=sum, rank 1 float32[4] op=avg;")
    _report(rank, f"OK reduce_scatter_op {rank}")

    # rank 1 skips an all_reduce and goes on to a barrier: the two calls meet and disagree
    _expect_mismatch(dist, (lambda: dist.all_reduce(lepton.ones(4))) if rank == 0 else dist.barrier,
                     "collective mismatch at call #9: rank 0 all_reduce float32[4] op=sum, rank 1 barrier;")
    _report(rank, f"OK skipped_then_barrier {rank}")

    # asynchronous: the mismatched call raises at its wait(); the calls around it still complete
    xs = [lepton.full((100,), 1.0), lepton.ones(100, dtype=mine(lepton.float32, lepton.float64)),
          lepton.full((100,), float(rank))]
    works = [dist.all_reduce(t, async_op=True) for t in xs]
    works[2].wait()
    assert xs[2].tolist() == [1.0] * 100
    _expect_mismatch(dist, works[1].wait, "call #11: rank 0 float32[100] op=sum, rank 1 float64[100] op=sum;")
    _expect_mismatch(dist, works[1].is_completed, "call #11")
    assert works[0].wait() and xs[0].tolist() == [2.0] * 100
    _report(rank, f"OK async {rank}")

    # the group is still usable, and matched collectives give the right results
    x = lepton.full((1 << 16,), float(rank + 1))
    dist.all_reduce(x)
    np.testing.assert_array_equal(x.numpy(), np.full(1 << 16, 3.0, np.float32))
    g = lepton.zeros(4)
    dist.all_gather_into_tensor(g, lepton.full((2,), float(rank)))
    assert g.tolist() == [0.0, 0.0, 1.0, 1.0]
    b = lepton.full((3,), float(rank))
    dist.broadcast(b, src=1)
    assert b.tolist() == [1.0] * 3
    dist.barrier()
    _report(rank, f"OK still_usable {rank}")


def case_skip(dist, rank):
    import lepton

    dist.all_reduce(lepton.ones(3))
    if rank == 1:
        time.sleep(30)  # skips all_reduce #2, busy elsewhere
    try:
        dist.all_reduce(lepton.ones(3), async_op=True).wait()  # (the blocking path: test_distributed_mpi's dead_hang)
    except dist.DistTimeoutError as e:
        _report(rank, str(e))
        raise


def case_raise(dist, rank):
    import lepton

    dist.all_reduce(lepton.ones(3))
    if rank == 1:
        raise ValueError("rank 1 fails on purpose")
    dist.all_reduce(lepton.ones(3))


if __name__ == "__main__":
    import lepton.distributed

    lepton.distributed.init_process_group("mpi")
    me = lepton.distributed.get_rank()
    globals()[f"case_{sys.argv[1]}"](lepton.distributed, me)
    lepton.distributed.barrier()
    _report(me, f"OK {sys.argv[1]} {me}")
    lepton.distributed.destroy_process_group()
