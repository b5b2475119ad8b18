"""Data-parallel Trainer and `lepton train --nproc` on 2 MPI ranks.

Like tests/test_distributed_mpi.py, each MPI test starts `mpiexec -n 2 python
tests/test_train_distributed.py <case>` with a hard timeout (this file is the worker script too:
see the bottom). Every rank checks its results against a single-process Trainer run in the same
worker and reports "OK <case> <rank>" through a file of its own (the ranks' stdout lines can
interleave mid-line on mpiexec's pipe); the test asserts that every rank did.

Tolerances: the 2-rank run sums the same samples' gradients in another order (per-rank means
averaged vs one mean over the global batch), so float32 weights after 8 Adam steps agree to
rtol 1e-5 / atol 1e-6 (6e-8 measured), and summed loss figures to rtol 1e-5; counts (accuracy,
confusion matrices) must be equal.
"""

import json
import os
import sys

import numpy as np
import pytest

HERE = os.path.abspath(__file__)
PER_RANK, FEATURES, CLASSES = 29, 10, 3  # 29 samples per rank: batches of 8 leave a partial one


def _mpiexec():
    pytest.importorskip("mpi4py", reason="needs mpi4py + an MPI library: pip install 'lepton[dist]'")
    from lepton.distributed.launch import find_mpiexec

    try:
        return find_mpiexec()
    except RuntimeError as e:
        pytest.skip(str(e))


def _run_bounded(cmd, env, timeout):
    """test_distributed_mpi's runner (kills the whole job past `timeout`); imported once mpi4py
    is known to be there, since that module skips itself without it."""
    from test_distributed_mpi import _run_bounded as run

    return run(cmd, env, timeout)


def _env(**extra):
    return dict(os.environ, LEPTON_DIST_TIMEOUT="20", OMP_NUM_THREADS="1", **extra)


def _check_ok(case, tmp_path, n=2):
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = _run_bounded([_mpiexec(), "-n", str(n), sys.executable, HERE, case, str(tmp_path)],
                        _env(LEPTON_TEST_REPORTS=str(reports)), 90)
    reported = "".join((reports / f).read_text() for f in sorted(os.listdir(reports)))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for r in range(n):
        assert f"OK {case} {r}\n" in reported, reported + out
    return reported


def test_two_ranks_match_one_process_over_the_concatenated_batches(tmp_path):
    _check_ok("matches_single", tmp_path)


def test_evaluation_is_split_and_summed_exactly(tmp_path):
    _check_ok("evaluate", tmp_path)


def test_only_rank_0_writes_and_a_stop_on_one_rank_stops_all(tmp_path):
    _check_ok("rank0_writes", tmp_path)


def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path):
    _check_ok("resume", tmp_path)


def test_a_nonfinite_loss_on_one_rank_stops_every_rank(tmp_path):
    reported = _check_ok("nonfinite", tmp_path)
    assert reported.count("NonFiniteError on rank 1:") == 2, reported  # both ranks name the culprit


# ---- in one process -----------------------------------------------------------------------------

def test_distributed_argument_without_a_process_group():
    import lepton
    from lepton import nn, optim
    from lepton.train import Trainer

    model = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match="needs a process group"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), distributed=True)
    with pytest.raises(TypeError, match="distributed must be True, False or None"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), distributed="yes")
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())  # auto: one process
    assert trainer.world_size == 1 and trainer.is_main_process and trainer.ddp is None
    x = lepton.randn(6, 3)
    assert trainer.fit((x, lepton.tensor([0, 1, 0, 1, 1, 0])), batch_size=4, verbose=0)["loss"]


@pytest.mark.parametrize("n", [0, 1, 5, 7, 8])
def test_shard_sampler_splits_another_samplers_order(n):
    from lepton.distributed import DistributedSampler, ShardSampler

    class Reversed:  # a sampler with an order of its own, told the epoch
        epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return n

        def __iter__(self):
            return iter(range(n - 1, -1, -1))

    for drop_last in (False, True):  # even: as DistributedSampler splits (padded or cut), on the base's order
        shards = [ShardSampler(n, 3, r, drop_last=drop_last) for r in range(3)]
        want = [list(DistributedSampler(range(n), 3, r, shuffle=False, drop_last=drop_last)) for r in range(3)]
        assert [list(s) for s in shards] == want and [len(s) for s in shards] == [len(w) for w in want]
    base = Reversed()
    shards = [ShardSampler(base, 3, r, even=False) for r in range(3)]  # uneven: every index exactly once
    shards[0].set_epoch(4)
    assert base.epoch == 4
    got = [list(s) for s in shards]
    assert sorted(sum(got, [])) == list(range(n)) and [len(s) for s in shards] == [len(g) for g in got]
    assert got[0] == list(range(n - 1, -1, -3))
    with pytest.raises(ValueError, match="ShardSampler: rank 3 is outside"):
        ShardSampler(base, 3, 3)


@pytest.mark.parametrize("nproc", ["0", "-2", "two"])
def test_bad_nproc_is_one_line_exit_2(capsys, nproc):
    from lepton.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--nproc", nproc, "--steps", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert "--nproc" in err and "positive integer" in err and nproc in err, err


def test_nproc_without_mpi4py_says_what_to_install(capsys, monkeypatch, tmp_path):
    from lepton.cli import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    code = main(["train", "--nproc", "2", "--steps", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert 'pip install "lepton[dist]"' in err, err
    assert not os.listdir(tmp_path)


def test_lepton_train_nproc_2_end_to_end(tmp_path, capsys):
    mpiexec = _mpiexec()
    out = tmp_path / "run"
    env = _env(PATH=os.path.dirname(mpiexec) + os.pathsep + os.environ.get("PATH", ""))
    proc = _run_bounded([sys.executable, "-m", "lepton", "train", "mnist-mlp", "--nproc", "2", "--steps", "20",
                         "--batch-size", "64", "--threads", "1", "--out", str(out), "--verbose", "2"], env, 120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # one checkpoint set, written by rank 0 alone (a second writer would leave .tmp-<pid> files behind at worst)
    files = sorted(os.listdir(out))
    assert {"checkpoint.safetensors", "best.safetensors", "metrics.json", "log.jsonl"} <= set(files), files
    assert not [f for f in files if ".tmp" in f], files
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["world_size"] == 2 and metrics["global_batch_size"] == 128, metrics
    assert metrics["config"]["batch_size"] == 64
    assert 0.6 < metrics["test"]["accuracy"] <= 1.0, metrics["test"]  # 20 steps of 128 digits already learn
    assert proc.stdout.count("batch 64 per rank x 2 ranks = 128") == 1, proc.stdout  # rank 0 alone prints
    assert proc.stdout.count("test loss") == 1, proc.stdout

    from lepton.cli import main

    code = main(["eval", str(out / "checkpoint.safetensors")])
    report = capsys.readouterr().out
    assert code == 0, report
    assert f"accuracy {100 * metrics['test']['accuracy']:.2f}%" in report, report


# ---------------------------------------------------------------------------------------------
# Worker side: runs under mpiexec, one process per rank.

def _report(rank, line):
    with open(os.path.join(os.environ["LEPTON_TEST_REPORTS"], f"rank{rank}.txt"), "a") as f:
        f.write(line + "\n")


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def _model(seed, dropout=0.0):
    import lepton
    from lepton.models import MLP

    lepton.manual_seed(seed)
    return MLP(FEATURES, (16,), CLASSES, dropout=dropout)


def _params(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _trainer(model, metrics=("accuracy",), **kw):
    from lepton import nn, optim
    from lepton.train import Trainer

    return Trainer(model, optim.Adam(model.parameters(), lr=0.02), nn.CrossEntropyLoss(), metrics=list(metrics), **kw)


def _close(a, b, what, rtol=1e-5, atol=1e-6):
    for k in a:
        if not np.allclose(a[k], b[k], rtol=rtol, atol=atol):
            raise AssertionError(f"{what}: {k} differs by {np.abs(a[k] - b[k]).max()}")


def _reference_loader(x, y, batch_size, seed):
    """One process over the batches of both ranks: a 1-replica DistributedSampler gives the
    permutation that the 2-rank run splits (rank r takes every 2nd index from r)."""
    import lepton
    from lepton.data import DataLoader, TensorDataset
    from lepton.distributed import DistributedSampler

    ds = TensorDataset(lepton.from_numpy(x), lepton.from_numpy(y))
    return DataLoader(ds, batch_size=batch_size, sampler=DistributedSampler(ds, 1, 0, seed=seed))


def case_matches_single(dist, rank, n, tmp):
    import lepton
    from lepton.distributed import collectives

    x, y = _data(PER_RANK * n)
    xv, yv = _data(23, seed=1)
    for per_rank, accum in ((8, 1), (4, 2)):  # (4, 2): accumulation, whose earlier batches use no_sync
        calls = []
        real = collectives.all_reduce
        collectives.all_reduce = lambda *a, **k: calls.append(1) or real(*a, **k)
        try:
            trainer = _trainer(_model(7), grad_accum_steps=accum)
            lepton.manual_seed(100 + rank)  # ranks seeded apart: they must still split rank 0's shuffle
            history = trainer.fit((x, y), batch_size=per_rank, epochs=2, validation_data=(xv, yv), verbose=0)
        finally:
            collectives.all_reduce = real
        assert trainer.world_size == n and trainer.ddp is not None
        assert len(calls) == trainer.step * len(trainer.ddp._buckets), (len(calls), trainer.step)  # one per step
        # the reference: one process, n times the batch, from a loader shuffled like the ranks'
        ref = _trainer(_model(7), grad_accum_steps=accum, distributed=False)
        ref_history = ref.fit(_reference_loader(x, y, per_rank * n, 100), epochs=2, validation_data=(xv, yv), verbose=0)
        assert ref.step == trainer.step
        _close(_params(trainer.model), _params(ref.model), f"weights, batch {per_rank} x accumulation {accum}")
        for key in ("loss", "val_loss"):
            assert np.allclose(history[key], ref_history[key], rtol=1e-5), (key, history[key], ref_history[key])
        for key in ("accuracy", "val_accuracy"):
            assert history[key] == ref_history[key], (key, history[key], ref_history[key])
        # every rank holds the same weights (DDP) and the same figures, to the bit
        everyone = dist.all_gather_json([history["loss"], history["accuracy"], float(_params(trainer.model)
                                                                                       ["1.weight"].sum())])
        assert all(e == everyone[0] for e in everyone), everyone


def case_evaluate(dist, rank, n, tmp):
    import lepton
    from lepton import nn
    from lepton.data import DataLoader, TensorDataset
    from lepton.train import Trainer
    from lepton.train.metrics import ConfusionMatrix

    x, y = _data(37, seed=2)  # 37: a prime, the ranks get 19 and 18 samples
    lepton.manual_seed(3)
    model = nn.Sequential(nn.Linear(FEATURES, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, CLASSES))
    dist.broadcast(model[0].weight, 0)
    dist.broadcast(model[3].weight, 0)
    with lepton.no_grad():  # the ranks' running statistics differ, as after their last training forward
        model[1].running_mean.fill_(0.1 * rank)
    want = Trainer(model, None, nn.CrossEntropyLoss(), metrics=["accuracy"], distributed=False)
    loader = DataLoader(TensorDataset(lepton.from_numpy(x), lepton.from_numpy(y)), batch_size=5)
    trainer = Trainer(model, None, nn.CrossEntropyLoss(), metrics=["accuracy"])
    assert trainer.ddp is None  # evaluation alone needs no gradient averaging
    got = trainer.evaluate(loader, metrics=[ConfusionMatrix()])  # rank 0's statistics are broadcast first
    ref = want.evaluate(loader, metrics=[ConfusionMatrix()])
    assert float(model[1].running_mean.numpy()[0]) == 0.0
    assert abs(got["loss"] - ref["loss"]) <= 1e-6 * abs(ref["loss"]), (got, ref)
    assert got["accuracy"] == ref["accuracy"] and got["confusion_matrix"].sum() == 37, (got, ref)
    assert (got["confusion_matrix"] == ref["confusion_matrix"]).all(), (got, ref)


def case_rank0_writes(dist, rank, n, tmp):
    import lepton
    from lepton.train import Callback, CSVLogger, EarlyStopping, JSONLLogger, ModelCheckpoint

    out = os.path.join(tmp, f"rank{rank}")  # each rank is given its own directory: rank 1's must stay empty

    class StopOnRank1(Callback):
        def on_epoch_end(self, epoch, logs):
            if rank == 1 and epoch == 1:
                self.trainer.stop_training = True

    x, y = _data(PER_RANK * n)
    callbacks = [CSVLogger(os.path.join(out, "log.csv")), JSONLLogger(os.path.join(out, "log.jsonl"), 2),
                 EarlyStopping("val_loss", patience=5), StopOnRank1(),
                 ModelCheckpoint(os.path.join(out, "last.safetensors"), save_freq=3),
                 ModelCheckpoint(os.path.join(out, "best-{epoch}.safetensors"), monitor="val_accuracy",
                                 save_best_only=True)]
    trainer = _trainer(_model(5), callbacks=callbacks)
    history = trainer.fit((x, y), batch_size=8, epochs=6, validation_split=0.2, verbose=1)
    assert trainer.epoch == 2 and trainer.stop_reason == "early_stopping", (trainer.epoch, trainer.stop_reason)
    written = sorted(os.listdir(out)) if os.path.isdir(out) else []
    if rank == 0:
        assert {"log.csv", "log.jsonl", "last.safetensors", "best-1.safetensors"} <= set(written), written
        state = lepton.load(os.path.join(out, "last.safetensors"))
        assert state["trainer"]["world_size"] == n and len(state["rng"]["ranks"]) == n
        with open(os.path.join(out, "log.csv")) as f:
            rows = f.read().splitlines()
        assert len(rows) == 3 and rows[1].startswith("1,"), rows
        assert float(rows[2].split(",")[1]) == history["loss"][1]
    else:
        assert written == [], written


def case_resume(dist, rank, n, tmp):
    import lepton
    from lepton.train import ModelCheckpoint

    x, y = _data(PER_RANK * n)
    ckpt = os.path.join(tmp, "ckpt.safetensors")  # one path on every rank: rank 0 writes, all read

    def run(steps, resume=None):
        model = _model(9, dropout=0.3)
        lepton.manual_seed(11 + rank)  # ranks seeded apart: their dropout differs, the data split must not
        trainer = _trainer(model, callbacks=[ModelCheckpoint(ckpt, save_freq=5)], grad_accum_steps=1)
        history = trainer.fit((x, y), batch_size=4, steps=steps, resume=resume, verbose=0)
        return trainer, history

    full, full_history = run(19)
    cut, _ = run(7)  # killed after step 7; its last checkpoint is step 5, batch 5 of 8 in epoch 1
    assert lepton.load(ckpt)["trainer"]["batch"] == 5
    resumed, resumed_history = run(19, resume=ckpt)
    assert resumed.step == full.step == 19
    for k, v in _params(full.model).items():
        assert np.array_equal(v, _params(resumed.model)[k]), k
    for key in ("loss", "accuracy"):
        assert resumed_history[key] == full_history[key], (key, resumed_history[key], full_history[key])


def case_nonfinite(dist, rank, n, tmp):
    from lepton.train import NonFiniteError

    x, y = _data(PER_RANK * n)
    x[17, 3] = np.nan  # unshuffled, rank r takes samples r, r + 2, ...: 17 is in rank 1's second batch
    trainer = _trainer(_model(1))
    try:
        trainer.fit((x, y), batch_size=8, epochs=1, shuffle=False, verbose=0)
    except NonFiniteError as e:
        assert "at epoch 1, batch 2/4" in str(e) and "weights of step 1" in str(e), e
        _report(rank, f"NonFiniteError on rank {str(e).split('on rank ')[1].split(' ')[0]}:")
    else:
        raise AssertionError("no NonFiniteError")


def _worker(case, tmp):
    import lepton.distributed as dist

    dist.init_process_group("mpi")
    rank, n = dist.get_rank(), dist.get_world_size()
    globals()[f"case_{case}"](dist, rank, n, tmp)
    dist.barrier()
    _report(rank, f"OK {case} {rank}")
    dist.destroy_process_group()


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
