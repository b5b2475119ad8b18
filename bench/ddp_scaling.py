"""DDP scaling of the MNIST MLP recipe (784-128-64-10, Adam, batch 128 per rank) from 1 to 2 CPU
ranks, with torch's DistributedDataParallel (gloo) on the same job as the reference, and the
whole `lepton train mnist-mlp --nproc N` path (Trainer: real MNIST, data loading, metrics).

    python bench/ddp_scaling.py [--steps 200] [--threads 1] [--quick] [--json out.json]

Weak scaling, as data-parallel training is used: every rank trains on its own batch of 128, so
2 ranks process twice the samples per step. Each rank gets --threads threads (default 1: the
development machine has 2 cores), so efficiency = samples/s on 2 ranks / (2 x samples/s on 1 rank); 1.0 means the
gradient all-reduce costs nothing. Synthetic MNIST-shaped data (the arithmetic is the same as
on the real digits). Timings are medians over windows of steps, after warm-up. The
`lepton train` row takes the training throughput the command reports in metrics.json (the
epoch's training time, without validation); its 1-rank run is a plain process (no DDP).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

BATCH = 128


def _batches(rank, steps):
    rng = np.random.default_rng(rank)
    return [(rng.standard_normal((BATCH, 784)).astype(np.float32), rng.integers(0, 10, BATCH)) for _ in range(steps)]


def _time_steps(step, data, comm):
    """Median seconds per step over windows of 10 steps (the slowest rank's), after 10 warm-up steps."""
    from mpi4py import MPI

    for x, y in data[:10]:
        step(x, y)
    windows = []
    for w in range(10, len(data) - 9, 10):
        comm.Barrier()
        t0 = time.perf_counter()
        for x, y in data[w:w + 10]:
            step(x, y)
        windows.append(comm.allreduce((time.perf_counter() - t0) / 10, op=MPI.MAX))
    return statistics.median(windows)


def lepton_worker(steps, threads):
    from mpi4py import MPI

    import lepton
    import lepton.distributed as dist
    from lepton import nn
    from lepton.models import MLP

    lepton.set_num_threads(threads)
    dist.init_process_group("mpi")
    comm = MPI.COMM_WORLD
    lepton.manual_seed(0)
    model = MLP()
    ddp = dist.DistributedDataParallel(model) if comm.Get_size() > 1 else model
    opt = lepton.optim.Adam(model.parameters(), lr=2e-3)
    data = [(lepton.from_numpy(x), lepton.from_numpy(y)) for x, y in _batches(comm.Get_rank(), steps)]

    def step(x, y):
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()

    return _time_steps(step, data, comm)


def torch_worker(steps, threads):
    from mpi4py import MPI

    import torch
    import torch.distributed as tdist
    from torch import nn

    torch.set_num_threads(threads)
    comm = MPI.COMM_WORLD
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    if comm.Get_size() > 1:
        tdist.init_process_group("gloo", rank=comm.Get_rank(), world_size=comm.Get_size())
        model_run = nn.parallel.DistributedDataParallel(model)
    else:
        model_run = model
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in _batches(comm.Get_rank(), steps)]

    def step(x, y):
        opt.zero_grad()
        nn.functional.cross_entropy(model_run(x), y).backward()
        opt.step()

    t = _time_steps(step, data, comm)
    if comm.Get_size() > 1:
        tdist.destroy_process_group()
    return t


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job(framework, nproc, steps, threads):
    from lepton.distributed.launch import find_mpiexec

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    cmd = [find_mpiexec(), "-n", str(nproc), sys.executable, os.path.abspath(__file__), "--worker", framework,
           "--steps", str(steps), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} on {nproc} ranks failed:\n{out.stdout}\n{out.stderr}")
    return float(out.stdout.split("SECONDS_PER_STEP")[1].split()[0])


def _train_cli(nproc, steps, threads):
    """Training samples/s of `lepton train mnist-mlp` on nproc ranks (all ranks' samples)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "lepton", "train", "mnist-mlp", "--steps", str(steps), "--batch-size",
               str(BATCH), "--threads", str(threads), "--out", out, "--verbose", "0"]
        cmd += ["--nproc", str(nproc)] if nproc > 1 else []
        done = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS=str(threads)), capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"lepton train on {nproc} ranks failed:\n{done.stdout}\n{done.stderr}")
        with open(os.path.join(out, "metrics.json")) as f:
            return json.load(f)["train_samples_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200, help="steps per run (at least 30)")
    p.add_argument("--threads", type=int, default=1, help="threads per rank")
    p.add_argument("--quick", action="store_true", help="60 steps")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", choices=["lepton", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        from mpi4py import MPI

        t = (lepton_worker if args.worker == "lepton" else torch_worker)(args.steps, args.threads)
        if MPI.COMM_WORLD.Get_rank() == 0:
            print("SECONDS_PER_STEP", t)
        return 0
    steps = 60 if args.quick else max(30, args.steps)
    frameworks = ["lepton"]
    try:
        import torch  # noqa: F401

        frameworks.append("torch")
    except ImportError:
        pass
    print(f"\n## DDP scaling, MNIST MLP 784-128-64-10, Adam, batch {BATCH} per rank, {args.threads} thread(s) per rank")
    print(f"{'framework':<12} {'1 rank samples/s':>17} {'2 ranks samples/s':>18} {'speed-up':>9} {'efficiency':>11}")
    rows = []

    def row(name, s1, s2):
        rows.append({"framework": name, "samples_per_s_1": s1, "samples_per_s_2": s2, "efficiency": s2 / (2 * s1)})
        print(f"{name:<12} {s1:17.0f} {s2:18.0f} {s2 / s1:8.2f}x {100 * s2 / (2 * s1):10.0f}%", flush=True)

    for fw in frameworks:
        row(fw, BATCH / _job(fw, 1, steps, args.threads), 2 * BATCH / _job(fw, 2, steps, args.threads))
    row("lepton train", *(_train_cli(n, steps, args.threads) for n in (1, 2)))
    if "torch" in frameworks:
        print(f"lepton vs torch on 2 ranks: {rows[0]['samples_per_s_2'] / rows[1]['samples_per_s_2']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"title": "ddp scaling", "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
