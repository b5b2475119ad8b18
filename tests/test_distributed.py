"""lepton.distributed in one process: the sampler, environment, launcher, NCCL loading, errors.

The multi-process tests (collectives, DDP, dead ranks) are in test_distributed_mpi.py.
"""

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

import lepton
import lepton.distributed as dist
from lepton.distributed import env
from lepton.distributed.launch import add_launch_parser, launch_command
from lepton.distributed.sampler import DistributedSampler

# ---- DistributedSampler


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 13])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sampler_covers_the_dataset(n, replicas, shuffle):
    data = list(range(n))
    shares = [list(DistributedSampler(data, replicas, r, shuffle=shuffle, seed=3)) for r in range(replicas)]
    per = -(-n // replicas)
    assert all(len(s) == per == len(DistributedSampler(data, replicas, r)) for r, s in enumerate(shares))
    everything = sorted(i for s in shares for i in s)
    assert set(everything) == set(data)  # every sample is seen
    assert len(everything) - len(set(everything)) == per * replicas - n  # only the padding repeats
    if not shuffle:  # rank r takes every replicas-th index from r, wrapping around for the padding
        assert shares == [[(r + k * replicas) % n for k in range(per)] for r in range(replicas)]


@pytest.mark.parametrize("n,replicas", [(10, 3), (7, 2), (2, 3), (9, 3)])
def test_sampler_drop_last(n, replicas):
    shares = [list(DistributedSampler(range(n), replicas, r, shuffle=True, drop_last=True)) for r in range(replicas)]
    assert all(len(s) == n // replicas for s in shares)
    flat = [i for s in shares for i in s]
    assert len(flat) == len(set(flat))  # nothing repeated, the tail dropped


def test_sampler_epochs_shuffle_identically_on_every_rank():
    a0, a1 = DistributedSampler(range(100), 2, 0, seed=5), DistributedSampler(range(100), 2, 1, seed=5)
    first = (list(a0), list(a1))
    assert sorted(first[0] + first[1]) == list(range(100))
    a0.set_epoch(1)
    a1.set_epoch(1)
    second = (list(a0), list(a1))
    assert sorted(second[0] + second[1]) == list(range(100)) and second != first
    a0.set_epoch(0)
    assert list(a0) == first[0]  # depends only on seed + epoch
    assert list(DistributedSampler(range(100), 2, 0, seed=6)) != first[0]


def test_sampler_with_dataloader():
    from lepton.data import DataLoader, TensorDataset

    x = lepton.arange(10, dtype=lepton.float32)
    seen = []
    for r in range(2):
        loader = DataLoader(TensorDataset(x), batch_size=2, sampler=DistributedSampler(range(10), 2, r, shuffle=False))
        seen += [v for (b,) in loader for v in b.tolist()]
    assert sorted(seen) == [float(i) for i in range(10)]


def test_sampler_bad_arguments():
    with pytest.raises(ValueError, match="rank 2 is outside"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be >= 1"):
        DistributedSampler(range(4), num_replicas=0, rank=0)
    s = DistributedSampler(range(5))  # no process group: the whole dataset on one replica
    assert (s.num_replicas, s.rank, len(s)) == (1, 0, 5)


# ---- environment, helpers without a process group


def test_env_prefers_torchrun_names(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "SLURM_PROCID",
                 "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LEPTON_DIST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert env.env_rank() is None and env.env_local_rank() == 0
    monkeypatch.setenv("PMI_RANK", "3")
    monkeypatch.setenv("MPI_LOCALRANKID", "1")
    assert env.env_rank() == 3 and env.env_local_rank() == 1 and dist.get_local_rank() == 1
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert env.env_rank() == 5 and env.env_local_rank() == 2
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x'"):
        env.env_rank()
    assert env.env_timeout() == env.DEFAULT_TIMEOUT_S == 60
    monkeypatch.setenv("LEPTON_DIST_TIMEOUT", "2.5")
    assert env.env_timeout() == 2.5
    monkeypatch.setenv("LEPTON_DIST_TIMEOUT", "-1")
    with pytest.raises(ValueError, match="positive"):
        env.env_timeout()
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert env.master_addr_port() == ("10.0.0.1", 29500)


def test_check_switch(monkeypatch):
    monkeypatch.delenv("LEPTON_DIST_CHECK", raising=False)
    assert env.checks_enabled()
    monkeypatch.setenv("LEPTON_DIST_CHECK", "0")
    assert not env.checks_enabled()
    monkeypatch.setenv("LEPTON_DIST_CHECK", "off")
    with pytest.raises(ValueError, match="LEPTON_DIST_CHECK='off'"):
        env.checks_enabled()


def test_check_headers_and_messages():
    from lepton.distributed import check

    x = lepton.zeros(4, 3)
    h = check.encode(7, "all_reduce", x, "max")
    assert isinstance(h, bytes) and len(h) == check.HEADER_BYTES
    assert check.decode(h)[0][:8] == (7, 1, lepton.float32.value + 1, 3, 0, 2, 4, 3)
    assert check.describe(check.decode(h)[0]) == "all_reduce float32[4, 3] op=max"
    b = check.encode(1, "broadcast", lepton.zeros(2, dtype=lepton.int64), root=0)
    assert check.describe(check.decode(b)[0]) == "broadcast int64[2] src=0"
    assert check.describe(check.decode(check.encode(1, "barrier"))[0]) == "barrier"
    # beyond 8 dims the trailing ones fold into one word: shapes that differ there still differ
    a9, b9 = lepton.zeros(*[1] * 9, 2), lepton.zeros(*[1] * 9, 3)
    assert check.encode(1, "all_reduce", a9, "sum") != check.encode(1, "all_reduce", b9, "sum")
    assert check.describe(check.decode(check.encode(1, "all_reduce", a9, "sum"))[0]).endswith(
        "float32[1, 1, 1, 1, 1, 1, 1, ...] op=sum")
    table = check.encode(3, "all_reduce", x, "sum") + check.encode(3, "all_reduce", x, "avg") + \
        check.encode(3, "all_reduce", x, "sum")
    assert check.mismatch_message(table).startswith(
        "lepton.distributed: all_reduce mismatch at call #3: ranks 0,2 float32[4, 3] op=sum, rank 1 float32[4, 3] "
        "op=avg;")
    table = check.encode(5, "all_gather", x) + check.encode(5, "barrier")
    assert check.mismatch_message(table).startswith(
        "lepton.distributed: collective mismatch at call #5: rank 0 all_gather float32[4, 3], rank 1 barrier;")
    table = check.encode(5, "barrier") + check.encode(6, "barrier")
    assert check.mismatch_message(table).startswith(
        "lepton.distributed: barrier mismatch at call #5: rank 0 barrier (call #5), rank 1 barrier (call #6);")


def test_without_a_process_group(monkeypatch):
    assert not dist.is_initialized() and dist.is_main_process()
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert dist.init_from_env() is False  # a lone process stays alone
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert dist.init_from_env() is False and not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(lepton.ones(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.DistributedDataParallel(lepton.nn.Linear(2, 2))
    assert dist.reduce_metrics({"loss": 2, "acc": 0.5}) == {"loss": 2.0, "acc": 0.5}
    with pytest.raises(ValueError, match="unknown backend"):
        dist.init_process_group("gloo")
    with pytest.raises(ValueError, match="timeout must be positive"):
        dist.init_process_group("mpi", timeout=0)
    assert not dist.is_initialized()


# ---- launcher


def test_launch_command_and_cli_hook():
    cmd = launch_command(3, ["train.py", "--epochs", "2"], hosts="a,b", timeout=60, mpiexec="/x/mpiexec")
    assert cmd == ["/x/mpiexec", "-n", "3", "-hosts", "a,b", "-genv", "LEPTON_DIST_TIMEOUT", "60", sys.executable, "-m",
                   "lepton.distributed.run", "train.py", "--epochs", "2"]
    with pytest.raises(ValueError, match="at least 1"):
        launch_command(0, ["x.py"], mpiexec="m")
    with pytest.raises(ValueError, match="no script"):
        launch_command(2, [], mpiexec="m")
    parser = argparse.ArgumentParser(prog="lepton")
    add_launch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["launch", "-n", "2", "--dry-run", "-m", "pkg.train", "--lr", "1"])
    assert (args.nproc, args.module, args.dry_run) == (2, ["pkg.train", "--lr", "1"], True)
    args = parser.parse_args(["launch", "-n", "2", "train.py", "-n", "5"])  # the script's own -n stays its own
    assert (args.nproc, args.script, args.module) == (2, ["train.py", "-n", "5"], None)


def test_launch_dry_run_prints_the_command(capsys):
    parser = argparse.ArgumentParser(prog="lepton")
    add_launch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["launch", "-n", "2", "--dry-run", "-m", "pkg.train", "--lr", "1"])
    try:
        assert args.func(args) == 0
    except RuntimeError as e:  # no mpiexec on this machine
        pytest.skip(str(e))
    tail = f"-n 2 {sys.executable} -m lepton.distributed.run -m pkg.train --lr 1"
    assert capsys.readouterr().out.strip().endswith(tail)


def test_run_sets_rank_variables_and_runs_the_script(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import os, sys\nprint(os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'], "
                      "sys.argv[1:], __name__)\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    out = subprocess.run([sys.executable, "-m", "lepton.distributed.run", str(script), "a"], capture_output=True,
                         text=True, env=dict(clean, PMI_RANK="1", PMI_SIZE="4", MPI_LOCALRANKID="1"), timeout=60)
    assert out.stdout.split("\n")[0] == "1 4 1 ['a'] __main__", out.stderr


# ---- the TCP rendezvous that shares the NCCL unique id without MPI


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rendezvous_shares_rank0_bytes():
    from concurrent.futures import ThreadPoolExecutor

    from lepton.distributed.rendezvous import share_bytes

    port, payload = _free_port(), bytes(range(128))
    with ThreadPoolExecutor(3) as pool:
        # the other ranks may start first: they retry until rank 0 listens
        futures = [pool.submit(share_bytes, payload if r == 0 else b"", r, 3, "127.0.0.1", port, 10) for r in (2, 1, 0)]
        assert [f.result(timeout=30) for f in futures] == [payload] * 3
    assert share_bytes(b"x", 0, 1, "127.0.0.1", port, 1) == b"x"  # one rank: nothing to share


def test_rendezvous_times_out():
    from lepton.distributed.rendezvous import share_bytes

    with pytest.raises(dist.DistTimeoutError, match="could not reach rank 0"):
        share_bytes(b"", 1, 2, "127.0.0.1", _free_port(), 0.3)
    with pytest.raises(dist.DistTimeoutError, match="did not connect"):
        share_bytes(b"id", 0, 2, "127.0.0.1", _free_port(), 0.3)


# ---- NCCL library loading (no GPU needed)


def test_nccl_missing_library_is_a_clear_error():
    code = ("from lepton import _C\n"
            "try:\n    print('loaded', _C._dist.nccl_load(['/nonexistent/libnccl.so.2']))\n"
            "except RuntimeError as e:\n    print('error', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    if out.startswith("loaded"):
        pytest.skip("this machine has a system libnccl.so.2")
    assert out.startswith("error") and "/nonexistent/libnccl.so.2" in out and "lepton[cuda]" in out, out


def test_nccl_candidates_find_the_wheel(tmp_path, monkeypatch):
    lib = tmp_path / "nvidia" / "nccl" / "lib"
    lib.mkdir(parents=True)
    (lib / "libnccl.so.2").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LEPTON_NCCL_PATH", "/opt/custom/libnccl.so.2")
    for mod in [m for m in sys.modules if m == "nvidia" or m.startswith("nvidia.")]:
        monkeypatch.delitem(sys.modules, mod)
    from lepton.distributed.nccl import nccl_candidates

    found = nccl_candidates()
    assert found[0] == "/opt/custom/libnccl.so.2" and str(lib / "libnccl.so.2") in found


def test_nccl_real_library_loads_and_makes_unique_ids():
    """With the nvidia-nccl wheel (or LEPTON_NCCL_PATH): every symbol binds, ids are 128 random bytes."""
    code = ("from lepton.distributed.nccl import load_nccl\nfrom lepton import _C\n"
            "path, version = load_nccl()\na, b = _C._dist.nccl_unique_id(), _C._dist.nccl_unique_id()\n"
            "print(path, version, len(a), a != b)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if "could not load libnccl" in proc.stderr:
        pytest.skip("no NCCL library here (pip install nvidia-nccl-cu13 or set LEPTON_NCCL_PATH)")
    assert proc.returncode == 0, proc.stderr
    path, version, n, differ = proc.stdout.split()
    assert int(version) >= 21200 and n == "128" and differ == "True"


def test_nccl_backend_needs_cuda():
    if lepton.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(RuntimeError, match="needs CUDA"):
        dist.init_process_group("nccl")
    assert not dist.is_initialized()


@pytest.mark.cuda
def test_nccl_one_rank_on_gpu():
    """One-rank communicator smoke test and DDP on one GPU (run on a lent GPU machine)."""
    if not lepton.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    try:
        from lepton.distributed.nccl import load_nccl

        load_nccl()
    except RuntimeError as e:
        pytest.skip(str(e))
    dist.init_process_group("nccl", timeout=30)
    try:
        assert dist.get_backend() == "nccl" and dist.get_world_size() == 1
        x = lepton.arange(10, dtype=lepton.float32).cuda()
        dist.all_reduce(x, "avg")
        dist.broadcast(x, 0)
        out = lepton.zeros(10).cuda()
        dist.all_gather_into_tensor(out, x)
        dist.reduce_scatter_tensor(out, x, "sum", async_op=True).wait()
        dist.barrier()
        assert out.cpu().tolist() == [float(i) for i in range(10)]
        model, ref = lepton.nn.Linear(4, 3).to("cuda"), lepton.nn.Linear(4, 3).to("cuda")
        ref.load_state_dict(model.state_dict())
        ddp = dist.DistributedDataParallel(model)
        x = lepton.randn(5, 4).to("cuda")
        ddp(x).sum().backward()
        ref(x).sum().backward()
        assert model.weight.grad.device.type == "cuda"  # one rank: the average is the local gradient
        np.testing.assert_allclose(model.weight.grad.cpu().numpy(), ref.weight.grad.cpu().numpy(), rtol=1e-6)
        ddp.remove_hooks()
    finally:
        dist.destroy_process_group()
