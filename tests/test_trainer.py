"""lepton.train.Trainer: fit/evaluate/predict, callbacks, loggers, NaN detection and exact resume,
on tiny models and synthetic data."""

import csv
import json
import math

import numpy as np
import pytest

import lepton
from lepton import nn, optim
from lepton.data import DataLoader, TensorDataset
from lepton.train import (Callback, CSVLogger, EarlyStopping, JSONLLogger, LRSchedulerCallback, ModelCheckpoint,
                          NonFiniteError, Trainer)


def blobs(n=240, classes=3, dim=6, seed=0):
    """Gaussian clusters, one per class: separable enough to learn in a few epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 3
    y = rng.integers(0, classes, n)
    x = (centres[y] + rng.standard_normal((n, dim))).astype(np.float32)
    return x, y.astype(np.int64)


def mlp(dim=6, classes=3, dropout=0.0):
    layers = [nn.Linear(dim, 16), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(16, classes)]
    return nn.Sequential(*layers)


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def loader(x, y, batch_size=32, shuffle=True, seed=0):
    return DataLoader(TensorDataset(lepton.from_numpy(x), lepton.from_numpy(y)), batch_size=batch_size,
                      shuffle=shuffle, seed=seed)


def test_fit_evaluate_predict_on_arrays():
    x, y = blobs()
    model = mlp()
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.02), nn.CrossEntropyLoss(),
                      metrics=["accuracy", "f1"])
    history = trainer.fit((x, y), batch_size=32, epochs=4, validation_split=0.25, verbose=0)
    assert trainer.epoch == 4 and trainer.step == 4 * math.ceil(180 / 32)
    for key in ("loss", "accuracy", "f1", "val_loss", "val_accuracy", "val_f1", "lr", "time", "samples_per_s"):
        assert len(history[key]) == 4, key
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9
    # validation_split holds out the last quarter, as Keras; the model has not changed since
    ev = trainer.evaluate((x[180:], y[180:]), batch_size=7)
    assert ev["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-6)
    assert ev["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    out = trainer.predict(x, batch_size=50)
    assert tuple(out.shape) == (240, 3)
    with lepton.no_grad():
        model.eval()
        np.testing.assert_allclose(out.numpy(), model(lepton.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)
    manual = nn.functional.cross_entropy(out, lepton.from_numpy(y)).item()
    assert trainer.evaluate((x, y))["loss"] == pytest.approx(manual, rel=1e-5)
    # fit counts totals: asking for 4 epochs again does nothing, 5 does one more
    trainer.fit((x, y), batch_size=32, epochs=4, verbose=0)
    assert trainer.epoch == 4
    trainer.fit((x, y), batch_size=32, epochs=5, verbose=0)
    assert trainer.epoch == 5 and len(trainer.history["loss"]) == 5


def test_steps_limit_ends_a_partial_epoch_and_one_line_per_epoch(capsys):
    x, y = blobs(n=100)
    model = mlp()
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), metrics=["accuracy"])
    history = trainer.fit(loader(x, y, batch_size=25), steps=7, verbose=1)  # 4 batches per epoch
    assert trainer.step == 7 and trainer.epoch == 2 and len(history["loss"]) == 2
    lines = capsys.readouterr().out.splitlines()  # not a terminal: one summary line per epoch
    assert len(lines) == 2 and lines[0].startswith("epoch 1  4 batches") and "samples/s" in lines[0]
    assert lines[1].startswith("epoch 2  3 batches")
    trainer.fit(loader(x, y), steps=9, verbose=0)
    assert trainer.step == 9


def test_gradient_accumulation_equals_a_bigger_batch():
    x, y = blobs(n=40)
    results = []
    for batch_size, accum in ((16, 1), (8, 2)):  # 16+16+8 vs (8+8)+(8+8)+(8)
        lepton.manual_seed(3)
        model = mlp()
        trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.5), nn.CrossEntropyLoss(), grad_accum_steps=accum)
        trainer.fit(loader(x, y, batch_size, shuffle=False), epochs=2, verbose=0)
        assert trainer.step == 6
        results.append(weights(model))
    for k in results[0]:
        np.testing.assert_allclose(results[0][k], results[1][k], rtol=1e-5, atol=1e-6)


def test_clip_grad_norm_bounds_the_update():
    x, y = blobs(n=32)
    model = mlp()
    before = weights(model)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=1.0), nn.CrossEntropyLoss(), clip_grad_norm=1e-3)
    trainer.fit(loader(x, y, batch_size=32), steps=1, verbose=0)
    change = math.sqrt(sum(((weights(model)[k] - before[k]) ** 2).sum() for k in before))
    assert 0 < change <= 1e-3 * (1 + 1e-5)


class Recorder(Callback):
    def __init__(self):
        self.events, self.snapshots = [], []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs):
        self.events.append(f"epoch_end {epoch}")
        self.snapshots.append(weights(self.trainer.model))

    def on_train_end(self, logs=None):
        self.events.append("train_end")


def test_early_stopping_and_restore_best_weights():
    x, y = blobs()
    model = mlp()
    rec = Recorder()
    # "max" on a loss that keeps falling: only the first epoch counts as an improvement
    stop = EarlyStopping(monitor="val_loss", mode="max", patience=2, restore_best_weights=True)
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.01), nn.CrossEntropyLoss(), callbacks=[stop, rec])
    trainer.fit((x, y), batch_size=32, epochs=10, validation_split=0.2, verbose=0)
    assert trainer.epoch == 3 and trainer.stop_reason == "early_stopping" and stop.stopped_epoch == 2
    assert rec.events == ["train_begin", "epoch_begin 0", "epoch_end 0", "epoch_begin 1", "epoch_end 1",
                          "epoch_begin 2", "epoch_end 2", "train_end"]
    now = weights(model)
    for k in now:
        np.testing.assert_array_equal(now[k], rec.snapshots[0][k])
    with pytest.raises(ValueError, match="'val_acc' is not in the logs"):
        Trainer(mlp(), optim.SGD(mlp().parameters(), lr=0.1), nn.CrossEntropyLoss(),
                callbacks=[EarlyStopping("val_acc")]).fit((x, y), batch_size=32, verbose=0)


def test_model_checkpoint_best_only_and_formatted_paths(tmp_path):
    x, y = blobs()
    model = mlp()
    best = ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_loss", mode="max", save_best_only=True)
    every = ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{val_loss:.3f}.safetensors"))
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.01), nn.CrossEntropyLoss(),
                      callbacks=[best, every])
    history = trainer.fit((x, y), batch_size=48, epochs=3, validation_split=0.2, verbose=0)
    saved = lepton.load(tmp_path / "best.safetensors")
    assert saved["trainer"]["epoch"] == 1 and saved["trainer"]["step"] == 4  # written after epoch 1 only
    assert saved["callbacks"]["ModelCheckpoint"]["best"] == history["val_loss"][0]
    for epoch in (1, 2, 3):
        assert (tmp_path / f"e{epoch:02d}-{history['val_loss'][epoch - 1]:.3f}.safetensors").exists()
    assert every.last_saved["epoch"] == 3 and every.last_saved["step"] == 12


def test_lr_scheduler_callbacks():
    x, y = blobs(n=64)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(),
                      callbacks=[LRSchedulerCallback(optim.lr_scheduler.StepLR(opt, 1, gamma=0.5))])
    history = trainer.fit(loader(x, y), epochs=3, verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])  # the lr each epoch ran with
    opt = optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), callbacks=[
        LRSchedulerCallback(optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (1 + s)), interval="step")])
    trainer.fit(loader(x, y), epochs=2, verbose=0)  # 4 steps
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 5)
    # ReduceLROnPlateau is fed the monitored figure: "max" on a falling loss never improves after epoch 1
    opt = optim.SGD(model.parameters(), lr=0.1)
    plateau = optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0)
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), callbacks=[LRSchedulerCallback(plateau, monitor="val_loss")])
    history = trainer.fit(loader(x, y), epochs=3, validation_data=loader(x, y, shuffle=False), verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05])
    with pytest.raises(ValueError, match="once per epoch"):
        LRSchedulerCallback(plateau, interval="step")


def test_csv_and_jsonl_loggers(tmp_path):
    x, y = blobs(n=64)
    model = mlp()
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), metrics=["accuracy"],
                      callbacks=[CSVLogger(tmp_path / "log.csv"), JSONLLogger(tmp_path / "log.jsonl", every_n_steps=3)])
    history = trainer.fit(loader(x, y), epochs=3, verbose=0)  # 2 steps per epoch
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["loss"]) for r in rows] == history["loss"]
    assert [float(r["accuracy"]) for r in rows] == history["accuracy"]
    records = read_jsonl(tmp_path / "log.jsonl")
    assert [(r["event"], r["step"]) for r in records] == [("epoch", 2), ("step", 3), ("epoch", 4), ("step", 6),
                                                          ("epoch", 6)]
    assert [r["loss"] for r in records if r["event"] == "epoch"] == history["loss"]


class NaNAfter:
    """Cross-entropy that turns NaN from its `n`-th call on."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, output, target):
        self.calls += 1
        loss = nn.functional.cross_entropy(output, target)
        return loss * float("nan") if self.calls >= self.n else loss


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_good_checkpoint(tmp_path):
    x, y = blobs(n=64)
    model = mlp()
    ckpt = ModelCheckpoint(tmp_path / "last.safetensors")
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), callbacks=[ckpt])
    trainer.loss_fn = NaNAfter(4)  # epoch 1 (2 batches) is clean; batch 2 of epoch 2 is NaN
    with pytest.raises(NonFiniteError, match=r"loss is nan at epoch 2, batch 2/2 \(before optimizer step 4\)"):
        trainer.fit(loader(x, y), epochs=5, verbose=0)
    assert trainer.step == 3 and trainer.stop_reason == "nonfinite"
    assert all(np.isfinite(w).all() for w in weights(model).values())  # the NaN batch never reached the weights
    saved = lepton.load(tmp_path / "last.safetensors")
    assert saved["trainer"]["step"] == 2 and all(np.isfinite(t.numpy()).all() for t in saved["model"].values())
    # weights that are not finite are never written over a good checkpoint
    with lepton.no_grad():
        next(model.parameters()).fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="is not finite after step 3.*was not written"):
        trainer.save_checkpoint(tmp_path / "last.safetensors")
    assert lepton.load(tmp_path / "last.safetensors")["trainer"]["step"] == 2


class Kill(Callback):
    """Simulates the process dying right after optimizer step `at`."""

    def __init__(self, at):
        self.at = at

    def on_train_batch_end(self, step, logs):
        if step == self.at:
            raise KeyboardInterrupt


def resumable_run(tmp_path, seed, kill_at=None, save_every=None, resume=None, steps=15):
    """A run with everything a resume must restore: dropout (lepton RNG), shuffling, Adam, a per-step
    lr schedule, early-stopping state, gradient accumulation, streaming metrics and validation."""
    x, y = blobs(n=150, seed=1)
    lepton.manual_seed(seed)  # a resumed run starts from other random weights: the checkpoint must win
    model = mlp(dropout=0.3)
    opt = optim.Adam(model.parameters(), lr=0.02)
    callbacks = [LRSchedulerCallback(optim.lr_scheduler.warmup_cosine(opt, 3, steps), interval="step"),
                 EarlyStopping(monitor="val_loss", patience=50),
                 ModelCheckpoint(tmp_path / "ckpt.safetensors", save_freq=save_every or 10**9),
                 CSVLogger(tmp_path / "log.csv"), JSONLLogger(tmp_path / "log.jsonl", every_n_steps=2)]
    if kill_at:
        callbacks.append(Kill(kill_at))
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), metrics=["accuracy", "f1"], callbacks=callbacks,
                      grad_accum_steps=2, config={"name": "resume-test"})
    train = loader(x[:120], y[:120], batch_size=16)  # 8 batches: 4 optimizer steps per epoch
    trainer.fit(train, steps=steps, validation_data=(x[120:], y[120:]), verbose=0, resume=resume)
    trainer.final_rng_state = lepton.get_rng_state()
    return trainer


@pytest.mark.parametrize("save_every, kill_at", [(6, 9), (4, 5)])  # mid-epoch / end-of-epoch checkpoint
def test_killed_and_resumed_run_is_bit_identical(tmp_path, save_every, kill_at):
    straight = resumable_run(tmp_path / "a", seed=0)
    with pytest.raises(KeyboardInterrupt):
        resumable_run(tmp_path / "b", seed=0, kill_at=kill_at, save_every=save_every)
    saved = lepton.load(tmp_path / "b" / "ckpt.safetensors")
    assert saved["trainer"]["step"] == save_every and saved["config"] == {"name": "resume-test"}
    # in the killed run's directory, as `lepton train --resume` does: its logs are rewritten to match
    resumed = resumable_run(tmp_path / "b", seed=99, resume=tmp_path / "b" / "ckpt.safetensors")
    assert resumed.step == straight.step == 15 and resumed.epoch == straight.epoch == 4
    a, b = weights(straight.model), weights(resumed.model)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for key, values in straight.history.items():
        if key not in ("time", "samples_per_s"):
            assert resumed.history[key] == values, key
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for i in sa:
        assert sa[i]["step"] == sb[i]["step"]
        np.testing.assert_array_equal(sa[i]["exp_avg_sq"].numpy(), sb[i]["exp_avg_sq"].numpy())
    assert resumed.final_rng_state == straight.final_rng_state
    untimed = lambda record: {k: v for k, v in record.items() if k not in ("time", "samples_per_s")}  # noqa: E731
    logs = {}
    for run in ("a", "b"):
        with open(tmp_path / run / "log.csv") as f:
            logs[run, "csv"] = [untimed(r) for r in csv.DictReader(f)]
        logs[run, "jsonl"] = [untimed(r) for r in read_jsonl(tmp_path / run / "log.jsonl")]
    assert len(logs["a", "csv"]) == 4 and len(logs["a", "jsonl"]) == 4 + 7
    assert logs["a", "csv"] == logs["b", "csv"] and logs["a", "jsonl"] == logs["b", "jsonl"]


def test_resume_errors(tmp_path):
    model = mlp()
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())
    x, y = blobs(n=32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        trainer.fit((x, y), resume=tmp_path / "missing.safetensors", verbose=0)
    lepton.save({"w": lepton.ones(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a trainer checkpoint"):
        trainer.fit((x, y), resume=tmp_path / "plain.safetensors", verbose=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=-1), ValueError, "epochs must be an int >= 0"),
    (dict(steps=2.5), ValueError, "steps must be an int >= 0"),
    (dict(validation_split=1.5), ValueError, r"validation_split must be in \(0, 1\)"),
    (dict(batch_size=4, data="loader"), ValueError, "a data loader has its own"),
    (dict(validation_split=0.2, data="loader"), ValueError, "validation_split needs arrays"),
    (dict(data="mismatch"), ValueError, r"different numbers of samples: \(32, 6\) vs \(31,\)"),
    (dict(data="empty", steps=5), ValueError, "the training data yielded no batches"),
])
def test_fit_argument_errors(kwargs, error, match):
    x, y = blobs(n=32)
    data = {"loader": loader(x, y), "mismatch": (x, y[:31]), "empty": (x[:0], y[:0]), None: (x, y)}[
        kwargs.pop("data", None)]
    model = mlp()
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())
    with pytest.raises(error, match=match):
        trainer.fit(data, verbose=0, **kwargs)


def test_constructor_errors():
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        Trainer(model, opt, nn.CrossEntropyLoss(), grad_accum_steps=0)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        Trainer(model, opt, "mse")
    with pytest.raises(TypeError, match="callbacks must be Callback objects"):
        Trainer(model, opt, nn.CrossEntropyLoss(), callbacks=[print])


@pytest.mark.parametrize("amp", ["bfloat16", "float16"])
def test_mixed_precision_trains_and_checkpoints_its_scaler(tmp_path, amp):
    """amp= runs forward and loss under lepton.autocast (float32 weights and gradients); float16
    scales the loss with a GradScaler whose state the checkpoint keeps."""
    x, y = blobs()
    model = mlp()
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.02), nn.CrossEntropyLoss(), metrics=["accuracy"],
                      amp=amp)
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    history = trainer.fit((x, y), batch_size=32, epochs=4, validation_split=0.25, verbose=0)
    assert set(seen) == {getattr(lepton, amp)}
    assert all(p.dtype == lepton.float32 for p in model.parameters())
    assert history["val_accuracy"][-1] > 0.9 and history["loss"][-1] < history["loss"][0]
    assert trainer.scaler.is_enabled() == (amp == "float16")
    if amp == "float16":
        trainer.scaler.update(1024.0)  # a scale that differs from the initial one
    trainer.save_checkpoint(tmp_path / "ckpt.safetensors")
    model2 = mlp()
    resumed = Trainer(model2, optim.Adam(model2.parameters(), lr=0.02), nn.CrossEntropyLoss(), metrics=["accuracy"],
                      amp=amp)
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    assert resumed.scaler.state_dict() == trainer.scaler.state_dict()
    out = trainer.predict(x[:5])
    assert out.dtype == getattr(lepton, amp)


def test_mixed_precision_argument_is_checked():
    model = mlp()
    with pytest.raises(ValueError, match="amp must be None, 'bfloat16' or 'float16'"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), amp="int8")
