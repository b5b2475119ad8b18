"""ZeroRedundancyOptimizer (lepton.distributed.optim) over MPI, and in one process.

The MPI tests start `mpiexec -n N python tests/test_distributed_zero.py <case>` (this file is
also the worker script: see the bottom) through test_distributed_mpi's runner, with a hard
timeout. Every rank checks its own results and reports "OK <case> <rank>".
"""

import os
import sys

import numpy as np
import pytest
from test_distributed_mpi import _report, _run

import lepton
from lepton import nn
from lepton.distributed.optim import ZeroRedundancyOptimizer

HERE = os.path.abspath(__file__)


def _check_ok(case, n, **kw):
    proc, _, reported = _run(case, n, script=HERE, **kw)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for r in range(n):
        assert f"OK {case} {r}\n" in reported, out
    return reported


@pytest.mark.parametrize("n", [1, 2])
def test_matches_unsharded_ddp(n):
    _check_ok("match", n)


def test_each_rank_holds_its_shard_only():
    reported = _check_ok("shards", 2)
    print("".join(line + "\n" for line in reported.splitlines() if line.startswith("MEM")))


def test_consolidated_checkpoint_round_trip(tmp_path):
    _check_ok("checkpoint", 2, extra_env={"ZERO_TEST_DIR": str(tmp_path)})


# ---------------------------------------------------------------------------------------------
# In one process, without a process group: a world of one.


def test_without_process_group_is_a_plain_optimizer():
    lepton.manual_seed(0)
    model, ref = _mlp(), _mlp()
    ref.load_state_dict(model.state_dict())
    zero = ZeroRedundancyOptimizer(model.parameters(), lepton.optim.AdamW, lr=0.01)
    plain = lepton.optim.AdamW(ref.parameters(), lr=0.01)
    x, y = lepton.randn(8, 12), lepton.randint(0, 5, (8,))
    for m, opt in ((model, zero), (ref, plain)):
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
    assert (zero.world_size, zero.rank) == (1, 0)
    for a, b in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    with pytest.raises(RuntimeError, match=r"consolidate_state_dict\(to=0\)"):
        zero.state_dict()
    with pytest.raises(ValueError, match="to=1 is not a rank"):
        zero.consolidate_state_dict(to=1)
    zero.consolidate_state_dict()
    _assert_same_state(zero.state_dict(), plain.state_dict())


def test_bad_arguments():
    params = list(_mlp().parameters())
    with pytest.raises(TypeError, match="params must be an iterable"):
        ZeroRedundancyOptimizer(3, lepton.optim.SGD)
    with pytest.raises(ValueError, match="empty parameter list"):
        ZeroRedundancyOptimizer([], lepton.optim.SGD)
    with pytest.raises(TypeError, match="should be an iterable of Tensors"):
        ZeroRedundancyOptimizer(params[0], lepton.optim.SGD)
    with pytest.raises(TypeError, match="optimizer_class must be an Optimizer class"):
        ZeroRedundancyOptimizer(params, lepton.optim.SGD(params))
    with pytest.raises(TypeError, match="optimizer_class must be an Optimizer class"):
        ZeroRedundancyOptimizer(params, dict)
    with pytest.raises(NotImplementedError, match="overlap_with_ddp=True"):
        ZeroRedundancyOptimizer(params, lepton.optim.SGD, overlap_with_ddp=True)
    with pytest.raises(ValueError, match="Invalid learning rate"):  # the local optimizer checks its options
        ZeroRedundancyOptimizer(params, lepton.optim.SGD, lr=-1.0)


# ---------------------------------------------------------------------------------------------
# Shared by both sides.


def _mlp():
    return nn.Sequential(nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 5))


def _assert_same_state(got, want):
    assert got["param_groups"] == want["param_groups"]
    assert sorted(got["state"]) == sorted(want["state"])
    for i, s in want["state"].items():
        assert sorted(got["state"][i]) == sorted(s), i
        for k, v in s.items():
            w = got["state"][i][k]
            if isinstance(v, lepton.Tensor):
                np.testing.assert_array_equal(w.numpy(), v.numpy(), err_msg=f"state[{i}][{k}]")
            else:
                assert w == v, (i, k)


# ---------------------------------------------------------------------------------------------
# Worker side: runs under mpiexec, one process per rank.

PER_RANK = 4


def _batches(steps, rank, n):
    """This rank's part of `steps` global batches of PER_RANK * n samples."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(steps):
        x = rng.standard_normal((PER_RANK * n, 12)).astype(np.float32)
        y = rng.integers(0, 5, PER_RANK * n)
        sl = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        out.append((lepton.from_numpy(np.ascontiguousarray(x[sl])), lepton.from_numpy(np.ascontiguousarray(y[sl]))))
    return out


def _loss(ddp, x, y):
    return nn.functional.cross_entropy(ddp(x), y)


def _ddp_model(dist, seed=3):
    lepton.manual_seed(seed)
    model = _mlp()
    return model, dist.DistributedDataParallel(model)


def _params(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


def _same_on_all_ranks(dist, arrays, what):
    for a in arrays:
        hi, lo = lepton.from_numpy(a.copy()), lepton.from_numpy(a.copy())
        dist.all_reduce(hi, "max")
        dist.all_reduce(lo, "min")
        np.testing.assert_array_equal(hi.numpy(), lo.numpy(), err_msg=f"{what}: ranks disagree")


def _train_adamw(dist, rank, n, sharded, bucket_view=False):
    """10 steps of AdamW in two groups (weights decayed, biases not) under a StepLR schedule."""
    model, ddp = _ddp_model(dist)
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    groups = [{"params": weights, "weight_decay": 0.1}, {"params": biases, "weight_decay": 0.0}]
    opt = (ZeroRedundancyOptimizer(groups, lepton.optim.AdamW, parameters_as_bucket_view=bucket_view, lr=0.01)
           if sharded
           else lepton.optim.AdamW(groups, lr=0.01))
    schedule = lepton.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    for x, y in _batches(10, rank, n):
        opt.zero_grad()
        _loss(ddp, x, y).backward()
        opt.step()
        schedule.step()
    ddp.remove_hooks()
    if sharded:
        assert opt.optim.param_groups[0]["lr"] == 0.01 * 0.5 ** 3, opt.optim.param_groups[0]["lr"]
    return _params(model)


def _train_sgd(dist, rank, n, sharded):
    """10 steps of SGD with momentum through closures; the last layer joins by add_param_group,
    and the first group's lr is changed by hand half way."""
    model, ddp = _ddp_model(dist)
    *front, last = list(model.children())
    front = [p for m in front for p in m.parameters()]
    kw = dict(lr=0.05, momentum=0.9, weight_decay=1e-3)
    opt = ZeroRedundancyOptimizer(front, lepton.optim.SGD, **kw) if sharded else lepton.optim.SGD(front, **kw)
    opt.add_param_group({"params": list(last.parameters()), "lr": 0.02, "nesterov": True})
    for k, (x, y) in enumerate(_batches(10, rank, n)):
        if k == 5:
            opt.param_groups[0]["lr"] = 0.01

        def closure():
            opt.zero_grad(set_to_none=False)
            loss = _loss(ddp, x, y)
            loss.backward()
            return loss
        assert opt.step(closure) is not None
    ddp.remove_hooks()
    return _params(model)


def case_match(dist, rank, n):
    for name, train, kw in (("adamw", _train_adamw, {}), ("adamw-buckets", _train_adamw, {"bucket_view": True}),
                            ("sgd", _train_sgd, {})):
        got, want = train(dist, rank, n, sharded=True, **kw), train(dist, rank, n, sharded=False)
        for k, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=f"{name}: parameter {k}")
        _same_on_all_ranks(dist, got, name)


def case_shards(dist, rank, n):
    # 4 x (256x256 + 256) params: 263k, AdamW state 2.1 MB unsharded
    lepton.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(256, 256) for _ in range(4)])
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    for p in params:
        p.grad = lepton.ones(*p.shape)
    zero = ZeroRedundancyOptimizer(params, lepton.optim.AdamW, lr=0.01)
    before = lepton.cpu.memory_allocated()
    lepton.cpu.reset_peak_memory_stats()
    zero.step()
    sharded_bytes = lepton.cpu.memory_allocated() - before
    peak_bytes = lepton.cpu.max_memory_allocated() - before
    plain = lepton.optim.AdamW(params, lr=0.01)
    before = lepton.cpu.memory_allocated()
    plain.step()
    plain_bytes = lepton.cpu.memory_allocated() - before

    index = {id(p): i for i, p in enumerate(params)}
    mine = sorted(index[id(p)] for p in zero.state)
    assert all(sorted(s) == ["exp_avg", "exp_avg_sq", "step"] for s in zero.state.values())
    assert len(zero.optim.state) == len(mine) and zero.optim.state is zero.state
    numel = sum(params[i].numel() for i in mine)
    everyone = dist.all_gather_json([mine, numel])
    assert sorted(i for owned, _ in everyone for i in owned) == list(range(len(params))), everyone  # once each
    assert sum(e for _, e in everyone) == total
    assert abs(numel - total / n) <= max(p.numel() for p in params), everyone  # balanced
    state_bytes = sum(t.numel() * t.element_size() for s in zero.state.values() for t in s.values()
                      if isinstance(t, lepton.Tensor))
    assert state_bytes == 8 * numel
    assert abs(sharded_bytes - state_bytes) <= 4096 * len(mine), (sharded_bytes, state_bytes)
    assert peak_bytes == sharded_bytes, (peak_bytes, sharded_bytes)  # params are broadcast in place
    assert abs(plain_bytes - 8 * total) <= 4096 * len(params), (plain_bytes, total)
    _report(rank, f"MEM rank {rank}/{n}: {total} params, AdamW state {plain_bytes} B unsharded, "
                  f"{sharded_bytes} B sharded ({numel} params owned)")


def case_checkpoint(dist, rank, n):
    path = os.path.join(os.environ["ZERO_TEST_DIR"], "zero.safetensors")
    batches = _batches(8, rank, n)

    def run(opt, ddp, steps):
        for x, y in steps:
            opt.zero_grad()
            _loss(ddp, x, y).backward()
            opt.step()

    model, ddp = _ddp_model(dist)
    zero = ZeroRedundancyOptimizer(model.parameters(), lepton.optim.AdamW, lr=0.01)
    run(zero, ddp, batches[:4])
    zero.consolidate_state_dict(to=1)
    if rank == 1:
        saved_on_1 = zero.state_dict()
    else:
        try:
            zero.state_dict()
        except RuntimeError as e:
            assert "consolidate_state_dict(to=0)" in str(e), str(e)
        else:
            raise AssertionError("state_dict() on a rank without the consolidated state")
    zero.consolidate_state_dict(to=0)
    if rank == 0:
        lepton.save(zero.state_dict(), path)
    dist.barrier()
    checkpoint = lepton.load(path)
    if rank == 1:
        _assert_same_state(saved_on_1, checkpoint)

    # the same state as an unsharded AdamW's after the same steps
    plain_model, plain_ddp = _ddp_model(dist)
    plain = lepton.optim.AdamW(plain_model.parameters(), lr=0.01)
    run(plain, plain_ddp, batches[:4])
    plain_ddp.remove_hooks()
    _assert_same_state(checkpoint, plain.state_dict())

    # resumed by a fresh optimizer (other options, to be replaced by the loaded ones)
    fresh = ZeroRedundancyOptimizer(model.parameters(), lepton.optim.AdamW, lr=0.5, weight_decay=0.0)
    fresh.load_state_dict(checkpoint)
    assert len(fresh.state) == len(zero.state) and fresh.optim.param_groups[0]["lr"] == 0.01
    run(fresh, ddp, batches[4:])
    ddp.remove_hooks()

    straight_model, straight_ddp = _ddp_model(dist)
    run(ZeroRedundancyOptimizer(straight_model.parameters(), lepton.optim.AdamW, lr=0.01), straight_ddp, batches)
    straight_ddp.remove_hooks()
    for k, (a, b) in enumerate(zip(_params(model), _params(straight_model))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=f"resumed parameter {k}")


def _worker(case):
    import lepton.distributed as dist

    dist.init_process_group("mpi")
    rank, n = dist.get_rank(), dist.get_world_size()
    globals()[f"case_{case}"](dist, rank, n)
    dist.barrier()
    _report(rank, f"OK {case} {rank}")
    dist.destroy_process_group()


if __name__ == "__main__":
    _worker(sys.argv[1])
