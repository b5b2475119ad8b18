"""Trainer: Keras-style fit / evaluate / predict around a lepton model, optimizer and loss.

    trainer = Trainer(model, optim.Adam(model.parameters()), nn.CrossEntropyLoss(), metrics=["accuracy"])
    history = trainer.fit((x, y), batch_size=128, epochs=5, validation_split=0.1)
    trainer.evaluate((x_test, y_test))          # {"loss": ..., "accuracy": ...}

Counting: `epoch` is the number of completed epochs, `step` the number of optimizer steps (one
per grad_accum_steps batches), `batch` the batches consumed in the epoch in progress. fit's
epochs= and steps= are totals for the run, so `fit(epochs=10, resume=ckpt)` after a checkpoint
of epoch 4 trains epochs 5 to 10. A run cut short by steps= ends its last epoch early (that
partial epoch is validated and logged like any other).

Resuming: save_checkpoint() writes everything the continuation depends on (weights, optimizer
and callback state (schedulers included), the position in the data loader and its state, the
lepton RNG state, the running sums of the epoch in progress, history and the run's config);
fit(resume=path) restores it, so a run killed after a checkpoint and resumed from it produces
the same weights and figures, bit for bit, as one that was never interrupted.
"""

import copy
import math
import time

import numpy as np

import lepton
from lepton._C import Tensor
from lepton.autograd import no_grad
from lepton.nn.utils import clip_grad_norm_
from lepton.train.callbacks import Callback, ModelCheckpoint
from lepton.train.metrics import _numpy, get_metric
from lepton.train.progress import ProgressBar

__all__ = ["Trainer", "NonFiniteError", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "lepton-trainer-1"
_UNTIMED = ("time", "samples_per_s")  # history entries that vary from run to run


class NonFiniteError(FloatingPointError):
    """The loss (or the weights about to be saved) became NaN or infinite."""


def _is_loader(data):
    return hasattr(data, "__iter__") and not isinstance(data, (tuple, list, np.ndarray, Tensor))


def _as_tensor(a):
    if isinstance(a, Tensor):
        return a
    a = np.asarray(a)
    if a.dtype == np.float64:  # NumPy's default float; models run in float32 (as Keras casts)
        a = a.astype(np.float32)
    elif a.dtype.kind in "iu":
        a = a.astype(np.int64)
    return lepton.from_numpy(np.ascontiguousarray(a))


def _arrays(data, what):
    """(x,) or (x, y) as lepton tensors from a tuple/list of arrays or a single array."""
    parts = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"{what}: expected a data loader, x, or a tuple (x, y); got a sequence of {len(parts)}")
    tensors = tuple(_as_tensor(p) for p in parts)
    if len(tensors) == 2 and tensors[0].shape[0] != tensors[1].shape[0]:
        raise ValueError(f"{what}: x and y have different numbers of samples: {tuple(tensors[0].shape)} vs "
                         f"{tuple(tensors[1].shape)}")
    return tensors


def _epoch_loggable(logs):
    return {k: v for k, v in logs.items() if isinstance(v, (int, float))}


class Trainer:
    """Trains `model` with `optimizer` on `loss_fn(output, target)`.

    metrics: Metric objects or names ("accuracy", "top5_accuracy", "f1", "precision_micro", ...),
    computed on the training batches of each epoch and on the validation data.
    callbacks: lepton.train.callbacks / logs objects; checkpoints are written after the other
    callbacks have run, so they hold those callbacks' updated state.
    grad_accum_steps: batches whose gradients are summed (each loss divided by the group size)
    before one optimizer step. clip_grad_norm: max global L2 norm of the gradients, or None.
    config: plain data saved in every checkpoint (the recipe that built this run).
    """

    def __init__(self, model, optimizer, loss_fn, metrics=None, callbacks=None, device="cpu", grad_accum_steps=1,
                 clip_grad_norm=None, config=None):
        if not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be a positive int, got {grad_accum_steps!r}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None, got {clip_grad_norm!r}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        self.device = lepton.device(device)
        self.model = model.to(self.device)
        self.optimizer, self.loss_fn = optimizer, loss_fn
        self.metrics = [get_metric(m) for m in (metrics or [])]
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback objects, got {type(cb).__name__}")
        self.callbacks = sorted(callbacks, key=lambda cb: isinstance(cb, ModelCheckpoint))
        for cb in self.callbacks:
            cb.set_trainer(self)
        self.grad_accum_steps, self.clip_grad_norm = grad_accum_steps, clip_grad_norm
        self.config = config or {}
        self.epoch = self.step = self.batch = 0
        self.history = {}
        self.stop_training, self.stop_reason, self.resumed = False, None, False
        self._loader = None
        self._step_lr = self.lr
        self._epoch_start = time.perf_counter()
        self._reset_epoch_sums()

    @property
    def lr(self):
        """The first param group's learning rate (None without an optimizer: evaluate/predict only)."""
        return self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None

    # ---- data ---------------------------------------------------------------------------------

    def _loader_for(self, data, batch_size, shuffle, what):
        if _is_loader(data):
            if batch_size is not None:
                raise ValueError(f"{what}: batch_size is for arrays; a data loader has its own")
            return data
        from lepton.data import DataLoader, TensorDataset

        return DataLoader(TensorDataset(*_arrays(data, what)), batch_size=batch_size or 32, shuffle=shuffle,
                          seed=lepton.initial_seed())

    def _split_batch(self, batch):
        """(inputs, target) on the trainer's device from an (inputs..., target) batch."""
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("training and evaluation need (inputs..., target) batches, got "
                             f"{type(batch).__name__} of {len(batch) if isinstance(batch, (tuple, list)) else 1}")
        batch = [t.to(self.device) for t in batch]
        return batch[:-1], batch[-1]

    # ---- fit ----------------------------------------------------------------------------------

    def fit(self, train_data, epochs=None, steps=None, batch_size=None, validation_data=None, validation_split=None,
            shuffle=True, verbose=1, resume=None):
        """Trains until `epochs` epochs or `steps` optimizer steps have been done in total (the
        first reached; one epoch if neither is given). train_data: a data loader yielding
        (inputs..., target) batches, or arrays (x, y) with batch_size (default 32). Validation
        data likewise, or validation_split: the last fraction of the arrays (as Keras).
        verbose: 0 silent, 1 a live bar on a terminal (else one line per epoch), 2 one line per
        epoch. resume: a checkpoint path to continue from. Returns history."""
        for name, value in (("epochs", epochs), ("steps", steps)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"fit: {name} must be an int >= 0, got {value!r}")
        if epochs is None and steps is None:
            epochs = 1
        if validation_split is not None:
            if _is_loader(train_data):
                raise ValueError("fit: validation_split needs arrays; pass validation_data with a data loader")
            if validation_data is not None:
                raise ValueError("fit: give validation_data or validation_split, not both")
            if not 0 < validation_split < 1:
                raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split}")
            tensors = _arrays(train_data, "fit")
            n = tensors[0].shape[0]
            cut = n - int(round(n * validation_split))
            if not 0 < cut < n:
                raise ValueError(f"fit: validation_split={validation_split} leaves no training or validation "
                                 f"samples out of {n}")
            train_data = tuple(t[:cut] for t in tensors)
            validation_data = tuple(t[cut:] for t in tensors)
        loader = self._loader_for(train_data, batch_size, shuffle, "fit")
        val_loader = None if validation_data is None else \
            self._loader_for(validation_data, None if _is_loader(validation_data) else batch_size, False,
                             "fit validation_data")
        self._loader = loader
        if resume is not None:
            self.load_checkpoint(resume)
        self.stop_training, self.stop_reason = False, None
        self._call("on_train_begin")
        try:
            while not self.stop_training:
                if (epochs is not None and self.epoch >= epochs) or (steps is not None and self.step >= steps):
                    break
                self._run_epoch(loader, val_loader, epochs, steps, verbose)
            self.stop_reason = "early_stopping" if self.stop_training else "completed"
        except NonFiniteError:
            self.stop_reason = "nonfinite"
            raise
        except BaseException:
            self.stop_reason = "interrupted"
            raise
        finally:
            self._call("on_train_end")
        return self.history

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def _reset_epoch_sums(self):
        self._loss_sum, self._samples, self._epoch_seconds = 0.0, 0, 0.0
        for m in self.metrics:
            m.reset()

    def _run_epoch(self, loader, val_loader, epochs, steps, verbose):
        if self.batch == 0:
            self._reset_epoch_sums()
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(self.epoch)
            self._call("on_epoch_begin", self.epoch)
        total = len(loader) if hasattr(loader, "__len__") else None
        k = self.grad_accum_steps
        full = None if total is None else total - total % k  # batches in complete accumulation groups
        desc = f"epoch {self.epoch + 1}" + (f"/{epochs}" if epochs is not None else "")
        bar = ProgressBar(desc, total, live=None if verbose == 1 else False) if verbose else None
        start = self._epoch_start = time.perf_counter()
        self.model.train()
        # resumed from a checkpoint written after the epoch's last step: only the epoch's end is left
        if total is None or self.batch < total:
            for batch in loader:
                if self.batch % k == 0:
                    self.optimizer.zero_grad()
                group = k if full is None or self.batch < full else total - full
                self._train_batch(batch, group, total)
                self.batch += 1
                stepped = self.batch % k == 0 or self.batch == total
                if stepped:
                    self._optimizer_step()
                if bar:
                    bar.update(self.batch, self._samples, self._running_logs)
                if stepped and (self.stop_training or (steps is not None and self.step >= steps)):
                    break
            else:
                if total is None and self.batch % k:  # a loader without len() ended inside a group
                    self._optimizer_step()
        if self.batch == 0:  # nothing to train on: steps= would never be reached
            raise ValueError("fit: the training data yielded no batches")
        self._end_epoch(val_loader, bar, start)

    def _train_batch(self, batch, group, total):
        inputs, target = self._split_batch(batch)
        output = self.model(*inputs)
        loss = self.loss_fn(output, target)
        value = loss.item()
        if not math.isfinite(value):
            where = f"{self.batch + 1}/{total}" if total else f"{self.batch + 1}"
            raise NonFiniteError(f"loss is {value} at epoch {self.epoch + 1}, batch {where} (before optimizer step "
                                 f"{self.step + 1}); training stopped with the weights of step {self.step}")
        (loss if group == 1 else loss * (1.0 / group)).backward()
        n = target.shape[0] if target.dim() else 1
        self._loss_sum += value * n
        self._samples += n
        if self.metrics:
            out, tgt = _numpy(output), _numpy(target)
            for m in self.metrics:
                m.update(out, tgt)
        self._batch_loss = value

    def _optimizer_step(self):
        if self.clip_grad_norm is not None:
            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self._step_lr = self.lr
        self.optimizer.step()
        self.step += 1
        if self.callbacks:
            self._call("on_train_batch_end", self.step, {"loss": self._batch_loss, "lr": self._step_lr})

    def _running_logs(self):
        logs = {"loss": self._loss_sum / max(self._samples, 1)}
        for m in self.metrics:
            logs[m.name] = m.compute()
        return _epoch_loggable(logs)

    def _end_epoch(self, val_loader, bar, start):
        train_seconds = self._epoch_seconds + time.perf_counter() - start
        logs = self._running_logs()
        if val_loader is not None:
            logs.update({f"val_{k}": v for k, v in _epoch_loggable(self.evaluate(val_loader)).items()})
        logs["lr"] = self._step_lr
        logs["time"] = self._epoch_seconds + time.perf_counter() - start
        logs["samples_per_s"] = self._samples / max(train_seconds, 1e-9)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        epoch = self.epoch
        self.epoch, self.batch = epoch + 1, 0
        self._epoch_seconds = 0.0
        if bar:
            bar.close({k: v for k, v in logs.items() if k not in _UNTIMED}, logs["time"], logs["samples_per_s"])
        self._call("on_epoch_end", epoch, logs)

    # ---- evaluate / predict -------------------------------------------------------------------

    def evaluate(self, data, batch_size=None, metrics=None):
        """{"loss": mean loss per sample, metric name: value} over `data` (a loader or (x, y)),
        in eval mode without gradients. `metrics` adds metrics for this call only (e.g. a
        ConfusionMatrix, whose value is an array)."""
        loader = self._loader_for(data, batch_size, False, "evaluate")
        metrics = [copy.deepcopy(m) for m in self.metrics] + [get_metric(m) for m in (metrics or [])]
        for m in metrics:
            m.reset()
        loss_sum, samples = 0.0, 0
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                for batch in loader:
                    inputs, target = self._split_batch(batch)
                    output = self.model(*inputs)
                    n = target.shape[0] if target.dim() else 1
                    loss_sum += self.loss_fn(output, target).item() * n
                    samples += n
                    if metrics:
                        out, tgt = _numpy(output), _numpy(target)
                        for m in metrics:
                            m.update(out, tgt)
        finally:
            self.model.train(was_training)
        return {"loss": loss_sum / max(samples, 1), **{m.name: m.compute() for m in metrics}}

    def predict(self, data, batch_size=None):
        """The model's outputs for every sample of `data`, concatenated along dim 0. data: x
        (array or tensor) with batch_size, or a loader; of each loader batch the inputs are all
        tensors but the last (the target), or the only one."""
        if _is_loader(data):
            loader = self._loader_for(data, batch_size, False, "predict")
        else:
            loader = self._loader_for((_as_tensor(data),), batch_size, False, "predict")
        outputs = []
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                for batch in loader:
                    batch = batch if isinstance(batch, (tuple, list)) else (batch,)
                    inputs = batch if len(batch) == 1 else batch[:-1]
                    outputs.append(self.model(*[t.to(self.device) for t in inputs]))
        finally:
            self.model.train(was_training)
        if not outputs:
            raise ValueError("predict: the data is empty")
        return lepton.cat(outputs, 0)

    # ---- checkpoints --------------------------------------------------------------------------

    def state_dict(self):
        """Everything a resumed run needs, as lepton.save can store it."""
        loader = self._loader.state_dict() if hasattr(self._loader, "state_dict") else None
        names = _callback_names(self.callbacks)
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "callbacks": {name: cb.state_dict() for name, cb in zip(names, self.callbacks)},
            "trainer": {"epoch": self.epoch, "step": self.step, "batch": self.batch, "loss_sum": self._loss_sum,
                        "samples": self._samples, "step_lr": self._step_lr,
                        "epoch_seconds": self._epoch_seconds + time.perf_counter() - self._epoch_start
                        if self.batch else 0.0,
                        "metrics": [m.state_dict() for m in self.metrics]},
            "loader": loader,
            "rng": {"lepton": lepton.get_rng_state()},
            "history": self.history,
            "config": self.config,
        }

    def save_checkpoint(self, path):
        """Writes state_dict() to `path` atomically; refuses (NonFiniteError) when a weight is
        not finite, so the checkpoint already there stays the last good one."""
        for name, t in self.model.state_dict().items():
            if t.is_floating_point() and not np.isfinite(t.float().cpu().numpy()).all():
                raise NonFiniteError(f"weight '{name}' is not finite after step {self.step} (epoch {self.epoch + 1}); "
                                     f"'{path}' was not written")
        lepton.save(self.state_dict(), path)

    def load_state_dict(self, state):
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a trainer checkpoint (no 'format': 'lepton-trainer-1' entry)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        saved = state["callbacks"]
        for name, cb in zip(_callback_names(self.callbacks), self.callbacks):
            if name in saved:
                cb.load_state_dict(saved[name])
        t = state["trainer"]
        self.epoch, self.step, self.batch = t["epoch"], t["step"], t["batch"]
        self._loss_sum, self._samples, self._epoch_seconds = t["loss_sum"], t["samples"], t["epoch_seconds"]
        self._step_lr = t["step_lr"]
        if len(t["metrics"]) != len(self.metrics):
            raise ValueError(f"the checkpoint has {len(t['metrics'])} metrics, this trainer {len(self.metrics)}")
        for m, s in zip(self.metrics, t["metrics"]):
            m.load_state_dict(s)
        if state["loader"] is not None and hasattr(self._loader, "load_state_dict"):
            self._loader.load_state_dict(state["loader"])
        lepton.set_rng_state(tuple(state["rng"]["lepton"]))
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.config = state.get("config") or self.config
        self.resumed = True

    def load_checkpoint(self, path):
        try:
            state = lepton.load(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"checkpoint '{path}' does not exist") from None
        try:
            self.load_state_dict(state)
        except (ValueError, KeyError, RuntimeError) as e:
            raise ValueError(f"can't resume from '{path}': {e}") from None


def _callback_names(callbacks):
    """Stable keys for callbacks' states: the class name, with '#i' for the i-th repeat."""
    seen, names = {}, []
    for cb in callbacks:
        base = type(cb).__name__
        i = seen.get(base, 0)
        seen[base] = i + 1
        names.append(base if i == 0 else f"{base}#{i}")
    return names
