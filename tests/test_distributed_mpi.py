"""lepton.distributed over MPI with 2 and 3 ranks.

Each test starts `mpiexec -n N python tests/test_distributed_mpi.py <case>` (this file is also
the worker script: see the bottom) with a hard timeout, so a hang fails the test instead of CI.
Every rank checks its own results against NumPy or a single-process reference and prints
"OK <case> <rank>"; the test asserts that every rank did.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

HERE = os.path.abspath(__file__)
pytest.importorskip("mpi4py", reason="needs mpi4py + an MPI library: pip install 'lepton[dist]'")


def _mpiexec():
    from lepton.distributed.launch import find_mpiexec

    try:
        return find_mpiexec()
    except RuntimeError as e:
        pytest.skip(str(e))


def _run(case, n, timeout=60, dist_timeout=20, extra_env=None, script=HERE):
    """(process, seconds, what the ranks reported): reports go to one file per rank, since the
    ranks' stdout lines can interleave mid-line on mpiexec's pipe. `script` is the worker."""
    with tempfile.TemporaryDirectory() as reports:
        env = dict(os.environ, LEPTON_DIST_TIMEOUT=str(dist_timeout), OMP_NUM_THREADS="1",
                   LEPTON_TEST_REPORTS=reports, **(extra_env or {}))
        start = time.monotonic()
        proc = _run_bounded([_mpiexec(), "-n", str(n), sys.executable, script, case], env, timeout)
        took = time.monotonic() - start
        reported = "".join(open(os.path.join(reports, f)).read() for f in sorted(os.listdir(reports)))
    return proc, took, reported


def _run_bounded(cmd, env, timeout):
    """Run `cmd`; past `timeout` kill its whole process group (mpiexec and every rank) and fail."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung for {timeout} s\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _check_ok(case, n, **kw):
    proc, _, reported = _run(case, n, **kw)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for r in range(n):
        assert f"OK {case} {r}\n" in reported, out


@pytest.mark.parametrize("n,check", [(2, "1"), (3, "1"), (2, "0")])
def test_collectives_against_numpy(n, check):
    _check_ok("collectives", n, extra_env={"LEPTON_DIST_CHECK": check})


def test_new_group_and_errors():
    _check_ok("groups_errors", 3)


@pytest.mark.parametrize("n", [2, 3])
def test_ddp_matches_single_process(n):
    _check_ok("ddp", n)


def test_ddp_checks():
    _check_ok("ddp_checks", 2)


def test_stopped_rank_makes_the_others_time_out():
    # (a rank that raises ends the job at once: test_distributed_checks.py)
    proc, took, reported = _run("dead_hang", 3, timeout=40, dist_timeout=2)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for r in (0, 2):  # the survivors
        assert f"rank {r} raised DistTimeoutError\n" in reported, out
    assert "timed out after 2 s on rank 0 of 3: waiting for rank 1," in out, out
    assert took < 20, f"the job took {took:.1f} s to fail with a 2 s timeout\n{out}"


def test_killed_rank_ends_the_job():
    # mpiexec tears the job down when a rank is killed; what matters is that nothing hangs.
    proc, took, _ = _run("dead_kill", 2, timeout=40, dist_timeout=2)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert took < 20


def test_launch_sets_torchrun_variables(tmp_path):
    from lepton.distributed.launch import launch_command

    # each rank writes its own file: two ranks printing to one pipe can interleave mid-line
    script = tmp_path / "show.py"
    script.write_text("import os, sys\n"
                      "import lepton.distributed as dist\n"
                      "dist.init_process_group()\n"
                      "line = ' '.join(map(str, ['RANKS', dist.get_rank(), os.environ['RANK'], "
                      "os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'], dist.get_local_rank(), "
                      "os.environ['LEPTON_DIST_TIMEOUT'], sys.argv[1:], __name__]))\n"
                      f"open(os.path.join({str(tmp_path)!r}, 'rank%d.txt' % dist.get_rank()), 'w').write(line)\n"
                      "dist.destroy_process_group()\n")
    cmd = launch_command(2, [str(script), "--lr", "0.1"], timeout=9, mpiexec=_mpiexec())
    proc = _run_bounded(cmd, dict(os.environ), 60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    assert lines == [f"RANKS {r} {r} 2 {r} {r} 9 ['--lr', '0.1'] __main__" for r in range(2)], proc.stdout


# ---------------------------------------------------------------------------------------------
# Worker side: runs under mpiexec, one process per rank.


def _data(rank, shape, dtype):
    rng = np.random.default_rng(1000 + rank)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-50, 50, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * 4).astype(dtype)


def _lt(a, dtype):
    import lepton

    # a copy: the collectives write into t
    t = lepton.from_numpy(np.array(a, dtype=np.float32 if dtype == "bfloat16" else a.dtype))
    return t.to(lepton.bfloat16) if dtype == "bfloat16" else t


def _np(t):
    import lepton

    return (t.float() if t.dtype == lepton.bfloat16 else t).numpy()


def _expect_reduce(stack, op, dtype):
    if dtype == "bool":
        return stack.all(0) if op == "min" else stack.any(0)
    acc = stack.astype(np.float64) if dtype in ("float16", "bfloat16") else stack
    out = {"sum": acc.sum(0), "avg": acc.sum(0) / len(stack), "max": acc.max(0), "min": acc.min(0)}[op]
    return out.astype(stack.dtype) if stack.dtype.kind in "iu" else out  # integers wrap around, as in C


def _close(got, want, dtype, what):
    tol = {"float16": 2e-2, "bfloat16": 6e-2, "float32": 1e-5, "float64": 1e-12}.get(dtype, 0)
    if tol:
        np.testing.assert_allclose(got.astype(np.float64), np.asarray(want, np.float64), rtol=tol, atol=tol,
                                   err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def case_collectives(dist, rank, n):
    import lepton

    ops = ["sum", "avg", "max", "min"]
    for dtype in ["float32", "float64", "int32", "int64", "int8", "uint8", "float16", "bfloat16", "bool"]:
        for shape in [(1,), (7,), (3, 5), (0,), (1 << 16) + 3]:
            inputs = [_data(r, shape, "float32" if dtype == "bfloat16" else dtype) for r in range(n)]
            if dtype == "bfloat16":  # round the inputs to bfloat16 first so the reference sees them
                inputs = [_np(_lt(a, dtype)) for a in inputs]
            stack = np.stack(inputs)
            for op in ops:
                if op == "avg" and (dtype.startswith("int") or dtype in ("uint8", "bool")):
                    continue
                t = _lt(inputs[rank], dtype)
                dist.all_reduce(t, op)
                _close(_np(t), _expect_reduce(stack, op, dtype), dtype, f"all_reduce {op} {dtype} {shape}")
            t = _lt(inputs[rank], dtype)
            dist.broadcast(t, src=n - 1)
            _close(_np(t), inputs[n - 1], dtype, f"broadcast {dtype} {shape}")
            outs = [lepton.zeros(shape, dtype=_lt(inputs[0], dtype).dtype) for _ in range(n)]
            dist.all_gather(outs, _lt(inputs[rank], dtype))
            for r in range(n):
                _close(_np(outs[r]), inputs[r], dtype, f"all_gather {dtype} {shape} from {r}")
            if dtype != "bool":
                # reduce_scatter: rank r's input block j is inputs[(r + j) % n]; rank j gets the sum of its blocks
                blocks = [_lt(inputs[(rank + j) % n], dtype) for j in range(n)]
                out = _lt(np.zeros(shape, dtype=np.float32 if dtype == "bfloat16" else dtype), dtype)
                dist.reduce_scatter(out, blocks, "sum")
                want = _expect_reduce(np.stack([inputs[(r + rank) % n] for r in range(n)]), "sum", dtype)
                _close(_np(out), want, dtype, f"reduce_scatter {dtype} {shape}")

    # async: several collectives in flight at once, completed in any order
    xs = [lepton.full((1000,), float(rank + k)) for k in range(4)]
    works = [dist.all_reduce(x, "sum", async_op=True) for x in xs]
    for w in reversed(works):
        assert w.wait() is True and w.is_completed()
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(x.numpy(), np.full(1000, sum(r + k for r in range(n)), np.float32))
    b = lepton.full((5,), float(rank))
    w = dist.broadcast(b, 0, async_op=True)
    w.wait()
    assert b.tolist() == [0.0] * 5
    g = lepton.zeros(n * 3)
    dist.all_gather_into_tensor(g, lepton.full((3,), float(rank)), async_op=True).wait()
    assert g.tolist() == [float(r) for r in range(n) for _ in range(3)]
    o = lepton.zeros(2)
    dist.reduce_scatter_tensor(o, lepton.arange(2 * n, dtype=lepton.float32) * (rank + 1), "avg", async_op=True).wait()
    scale = sum(r + 1 for r in range(n)) / n
    np.testing.assert_allclose(o.numpy(), np.arange(2 * rank, 2 * rank + 2) * scale, rtol=1e-6)
    assert dist.barrier(async_op=True).wait()
    dist.barrier()

    # metrics: a weighted average, max, and names checked across ranks
    m = dist.reduce_metrics({"loss": float(rank), "acc": 1.0}, weight=rank + 1)
    want = sum(r * (r + 1) for r in range(n)) / sum(r + 1 for r in range(n))
    assert abs(m["loss"] - want) < 1e-12 and m["acc"] == 1.0, m
    assert dist.reduce_metrics({"x": float(rank)}, op="max") == {"x": float(n - 1)}
    assert dist.all_gather_json({"r": rank}) == [{"r": r} for r in range(n)]
    assert dist.is_main_process() == (rank == 0)
    assert dist.init_from_env() is True  # already initialized: nothing to do


def case_groups_errors(dist, rank, n):
    import lepton

    sub = dist.new_group([0, n - 1])
    if rank in (0, n - 1):
        t = lepton.tensor([float(rank)])
        dist.all_reduce(t, group=sub)
        assert t.item() == float(n - 1) and dist.get_world_size(sub) == 2
        assert dist.get_rank(sub) == (0 if rank == 0 else 1)
    else:
        assert sub is None
    dist.barrier()

    def raises(exc, fn, text):
        try:
            fn()
        except exc as e:
            assert text in str(e), str(e)
        else:
            raise AssertionError(f"expected {exc.__name__} ({text})")

    raises(ValueError, lambda: dist.all_reduce(lepton.zeros(4, 4).T), "contiguous")
    raises(TypeError, lambda: dist.all_reduce(lepton.zeros(3, dtype=lepton.int64), "avg"), "floating-point")
    raises(ValueError, lambda: dist.all_reduce(lepton.zeros(3), "prod"), "unknown reduce op")
    raises(ValueError, lambda: dist.broadcast(lepton.zeros(3), src=n), "src")
    raises(ValueError, lambda: dist.all_gather([lepton.zeros(3)], lepton.zeros(3)), "tensor_list")
    raises(ValueError, lambda: dist.all_gather_into_tensor(lepton.zeros(5), lepton.zeros(3)), "must hold")
    raises(ValueError, lambda: dist.reduce_scatter_tensor(lepton.zeros(2), lepton.zeros(5)), "must hold")
    raises(TypeError, lambda: dist.all_reduce(np.zeros(3)), "lepton Tensor")
    raises(RuntimeError, lambda: dist.init_process_group("mpi"), "already")
    dist.barrier()  # the group still works after rejected calls


def _sgd_run(model, batches, ddp_model=None, accumulate=1):
    """20 SGD steps; with ddp_model the batches are this rank's shards."""
    import lepton
    from lepton import nn

    runner = ddp_model if ddp_model is not None else model
    opt = lepton.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for micro in batches:
        opt.zero_grad()
        for k, (x, y) in enumerate(micro):
            last = k == len(micro) - 1
            ctx = ddp_model.no_sync() if (ddp_model is not None and not last) else _nullcontext()
            with ctx:
                loss = nn.functional.cross_entropy(runner(x), y)
                loss.backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _global_batches(steps, micro, per_rank, n, shape, classes, seed):
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal((per_rank * n,) + shape).astype(np.float32),
              rng.integers(0, classes, per_rank * n)) for _ in range(micro)] for _ in range(steps)]


def _shard(batches, rank, n, per_rank):
    import lepton

    sl = slice(rank * per_rank, (rank + 1) * per_rank) if n else slice(None)
    return [[(lepton.from_numpy(np.ascontiguousarray(x[sl])), lepton.from_numpy(np.ascontiguousarray(y[sl])))
             for x, y in micro] for micro in batches]


def case_ddp(dist, rank, n):
    import lepton
    from lepton import nn

    def mlp():
        return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 5))

    def cnn():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4 * 4 * 4, 5))

    per_rank = 4
    cases = [("mlp", mlp, (12,), 1, 25.0), ("mlp-small-buckets", mlp, (12,), 1, 0.001),
             ("mlp-no_sync", mlp, (12,), 3, 0.002), ("cnn", cnn, (1, 8, 8), 1, 25.0)]
    for name, make, shape, micro, cap in cases:
        batches = _global_batches(20, micro, per_rank, n, shape, 5, seed=7)
        lepton.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
        model = make()
        ddp = dist.DistributedDataParallel(model, bucket_cap_mb=cap)
        if name == "mlp-small-buckets":
            assert len(ddp._buckets) > 2, len(ddp._buckets)
        got = _sgd_run(model, _shard(batches, rank, n, per_rank), ddp)
        ddp.remove_hooks()
        lepton.manual_seed(100)  # rank 0's initial weights, trained alone on the whole batch
        ref_model = make()
        # one process sees the micro-batches of all ranks: the mean over n*per_rank samples
        ref = _sgd_run(ref_model, [[(lepton.from_numpy(x), lepton.from_numpy(y)) for x, y in m] for m in batches])
        for k, (a, b) in enumerate(zip(got, ref)):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=f"{name}: parameter {k} differs")
        # every rank holds the same parameters
        for a in got:
            t = lepton.from_numpy(a.copy())
            hi, lo = t.clone(), t.clone()
            dist.all_reduce(hi, "max")
            dist.all_reduce(lo, "min")
            np.testing.assert_array_equal(hi.numpy(), lo.numpy(), err_msg=f"{name}: ranks disagree")


def case_ddp_checks(dist, rank, n):
    import lepton
    from lepton import nn

    # different shapes on different ranks: a clear error on every rank
    try:
        dist.DistributedDataParallel(nn.Linear(3, 4 + rank))
    except ValueError as e:
        assert "different models" in str(e) and "[4, 3]" in str(e) and "[5, 3]" in str(e), str(e)
    else:
        raise AssertionError("DDP accepted different parameter shapes")

    # no_sync keeps gradients local; the next synchronised backward averages the accumulated sums
    lin = nn.Linear(3, 2)
    ddp = dist.DistributedDataParallel(lin)
    x = lepton.full((1, 3), float(rank + 1))
    with ddp.no_sync():
        ddp(x).sum().backward()
    np.testing.assert_array_equal(lin.weight.grad.numpy(), np.full((2, 3), rank + 1.0))
    ddp(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.full((2, 3), sum(2.0 * (r + 1) for r in range(n)) / n))
    ddp.remove_hooks()

    # buffers follow rank 0 at every forward
    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("count", lepton.zeros(1))

        def forward(self, x):
            return self.lin(x) + self.count

    m = WithBuffer()
    ddp = dist.DistributedDataParallel(m)
    m.count.fill_(float(rank + 10))
    ddp(lepton.ones(1, 2))
    assert m.count.item() == 10.0
    ddp.remove_hooks()

    # a parameter left out of the loss is reported at the next forward
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.used(x)

    ddp = dist.DistributedDataParallel(Unused())
    ddp(lepton.ones(1, 2)).sum().backward()
    try:
        ddp(lepton.ones(1, 2))
    except RuntimeError as e:
        assert "unused.weight" in str(e), str(e)
    else:
        raise AssertionError("an unused parameter went unnoticed")
    ddp.remove_hooks()
    dist.barrier()


def case_dead(dist, rank, n, how):
    import lepton

    dist.all_reduce(lepton.ones(3))  # everybody is up
    if rank == 1:
        if how == "hang":
            os.kill(os.getpid(), 19)  # SIGSTOP: alive but never answers
        os.kill(os.getpid(), 9)
    try:
        for _ in range(3):
            dist.all_reduce(lepton.ones(1000))
    except dist.DistTimeoutError:
        _report(rank, f"rank {rank} raised DistTimeoutError")
        raise


def _report(rank, line):
    with open(os.path.join(os.environ["LEPTON_TEST_REPORTS"], f"rank{rank}.txt"), "a") as f:
        f.write(line + "\n")


def _worker(case):
    import lepton.distributed as dist

    dist.init_process_group("mpi")
    rank, n = dist.get_rank(), dist.get_world_size()
    if case.startswith("dead_"):
        case_dead(dist, rank, n, case[5:])
    else:
        globals()[f"case_{case}"](dist, rank, n)
    dist.barrier()
    _report(rank, f"OK {case} {rank}")
    dist.destroy_process_group()


if __name__ == "__main__":
    _worker(sys.argv[1])
