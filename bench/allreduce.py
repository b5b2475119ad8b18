"""All-reduce bus bandwidth on CPU ranks (MPI): lepton.distributed.all_reduce on float32 tensors
against mpi4py's own Allreduce on NumPy buffers, 1 KB to 256 MB, in the same job; and what the
cross-rank argument check (lepton/distributed/check.py) costs, against the same call on a group
made with LEPTON_DIST_CHECK=0.

    python bench/allreduce.py [--nproc 2] [--quick] [--json out.json]

starts itself under mpiexec. Bus bandwidth follows nccl-tests: size / time * 2(n-1)/n. Each
sample times a fixed number of calls (chosen by rank 0) and takes the slowest rank's time; a
figure is the median of its samples; ratio = mpi4py time / lepton time (> 1: Lepton faster).
check = median over 15 back-to-back pairs (order alternating) of checked / unchecked time, - 1:
pairing cancels most of the drift of a busy machine, which would swamp a few percent otherwise.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20]


def _fmt_size(b):
    return f"{b >> 20} MB" if b >= 1 << 20 else f"{b >> 10} KB"


def _calls_per_sample(comm, fn, min_time):
    from mpi4py import MPI

    for _ in range(2):
        fn()
    comm.Barrier()
    t0 = time.perf_counter()
    fn()
    once = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    return comm.bcast(max(1, int(min_time / max(once, 1e-7))), root=0)


def _sample(comm, fn, inner):
    """The slowest rank's seconds per call over `inner` calls."""
    from mpi4py import MPI

    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return comm.allreduce((time.perf_counter() - t0) / inner, op=MPI.MAX)


def timed(comm, fn, min_time):
    """Median over 7 samples of the slowest rank's seconds per call (same call count everywhere)."""
    inner = _calls_per_sample(comm, fn, min_time)
    return statistics.median(_sample(comm, fn, inner) for _ in range(7))


def paired(comm, fa, fb, min_time, pairs=15):
    """(median time of fa, of fb, median of the ratios fa/fb over back-to-back pairs)."""
    inner = _calls_per_sample(comm, fa, min_time)
    ta, tb = [], []
    for k in range(pairs):
        first, second = (fa, fb) if k % 2 == 0 else (fb, fa)
        s1, s2 = _sample(comm, first, inner), _sample(comm, second, inner)
        ta.append(s1 if k % 2 == 0 else s2)
        tb.append(s2 if k % 2 == 0 else s1)
    return statistics.median(ta), statistics.median(tb), statistics.median(a / b for a, b in zip(ta, tb))


def worker(quick, json_path, threads):
    from mpi4py import MPI

    import lepton
    import lepton.distributed as dist

    dist.init_process_group("mpi")
    os.environ["LEPTON_DIST_CHECK"] = "0"  # read when a group is made
    unchecked = dist.new_group()
    comm = MPI.COMM_WORLD
    rank, n = comm.Get_rank(), comm.Get_size()
    lepton.set_num_threads(threads)
    rows = []
    if rank == 0:
        print(f"\n## all-reduce float32 sum, {n} CPU ranks (bus GB/s; ratio = mpi4py time / lepton time; "
              "check = checked / unchecked time - 1)")
        print(f"{'size':>8}  {'lepton GB/s':>11}  {'mpi4py GB/s':>11}  {'lepton us':>10}  {'unchecked us':>12}  "
              f"{'mpi4py us':>10}  {'ratio':>6}  {'check':>6}")
    for size in SIZES[:7] if quick else SIZES:
        arr = np.ones(size // 4, dtype=np.float32)
        t = lepton.ones(size // 4)
        min_time = 0.02 if size < (64 << 20) else 0.2
        t_mpi = timed(comm, lambda: comm.Allreduce(MPI.IN_PLACE, arr, op=MPI.SUM), min_time)
        t_lep, t_raw, check = paired(comm, lambda: dist.all_reduce(t), lambda: dist.all_reduce(t, group=unchecked),
                                     min_time)
        bus = size * 2 * (n - 1) / n
        row = {"bytes": size, "lepton_s": t_lep, "unchecked_s": t_raw, "mpi4py_s": t_mpi,
               "lepton_busbw": bus / t_lep / 1e9, "mpi4py_busbw": bus / t_mpi / 1e9, "ratio": t_mpi / t_lep,
               "check_overhead": check - 1}
        rows.append(row)
        if rank == 0:
            print(f"{_fmt_size(size):>8}  {row['lepton_busbw']:11.2f}  {row['mpi4py_busbw']:11.2f}  "
                  f"{t_lep * 1e6:10.1f}  {t_raw * 1e6:12.1f}  {t_mpi * 1e6:10.1f}  {row['ratio']:5.2f}x  "
                  f"{row['check_overhead']:+6.1%}", flush=True)
        del arr, t
    if rank == 0 and json_path:
        import json

        with open(json_path, "w") as f:
            json.dump({"title": f"allreduce {n} ranks", "rows": rows}, f, indent=1)
    dist.destroy_process_group(unchecked)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="sizes up to 4 MB only")
    p.add_argument("--threads", type=int, default=1, help="lepton threads per rank (the averaging division)")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.quick, args.json, args.threads)
    from lepton.distributed.launch import find_mpiexec

    cmd = [find_mpiexec(), "-n", str(args.nproc), sys.executable, os.path.abspath(__file__), "--worker",
           "--threads", str(args.threads)]
    cmd += ["--quick"] * args.quick + (["--json", os.path.abspath(args.json)] if args.json else [])
    return subprocess.call(cmd, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))


if __name__ == "__main__":
    sys.exit(main())
