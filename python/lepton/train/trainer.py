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

Data-parallel training: start N processes (`lepton launch -n N script.py`, mpiexec, or
`lepton train --nproc N`), call lepton.distributed.init_process_group() in each, then build the
same Trainer and call the same fit on every rank, with the same full data:

    dist.init_process_group()
    trainer = Trainer(model, optim.Adam(model.parameters()), nn.CrossEntropyLoss(), metrics=["accuracy"])
    trainer.fit((x, y), batch_size=64, epochs=5)   # 64 samples per rank and step: global batch 64 x N

The trainer then wraps the model in DistributedDataParallel, gives each rank its share of the
training data (a DistributedSampler, reshuffled each epoch) and of the validation data (each
sample on one rank), and sums the figures over ranks, so loss and metrics are those of one
process over the same data. batch_size is per rank, as in PyTorch DDP. Only rank 0 shows
progress and writes files (checkpoints; loggers and callbacks with main_process_only); the other
callbacks run on every rank with the same figures, so they decide alike (and fit makes a stop
agree). fit, evaluate and save_checkpoint are collective there: call them on every rank.
"""

import contextlib
import copy
import math
import time

import numpy as np

import lepton
from lepton._C import Tensor
from lepton.autograd import no_grad
from lepton.distributed.ddp import DistributedDataParallel
from lepton.nn.utils import clip_grad_norm_
from lepton.train.callbacks import Callback, ModelCheckpoint
from lepton.train.metrics import _numpy, get_metric
from lepton.train.parallel import Ranks, shard_eval, shard_train
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
    amp: None (float32), "bfloat16" or "float16": forward and loss run under lepton.autocast with
    that dtype; float16 also scales the loss with a lepton.amp.GradScaler (steps whose gradients
    overflow are skipped and the scale backed off), whose state checkpoints hold.
    distributed: None (default) trains data-parallel when a process group of more than one rank
    is initialised (lepton.distributed.init_process_group), True requires one (a group of 1
    included), False trains alone in each process. `model` may also be a DistributedDataParallel
    already. Data-parallel training wraps the model (when there is an optimizer) in
    trainer.ddp; trainer.model is always the plain model, whose state_dict checkpoints hold.
    Metric states are summed over ranks, so a custom Metric's state must be counts that add up.
    """

    def __init__(self, model, optimizer, loss_fn, metrics=None, callbacks=None, device="cpu", grad_accum_steps=1,
                 clip_grad_norm=None, config=None, distributed=None, amp=None):
        if not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be a positive int, got {grad_accum_steps!r}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None, got {clip_grad_norm!r}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        self.device = lepton.device(device)
        amp_dtypes = {None: None, "bfloat16": lepton.bfloat16, "bf16": lepton.bfloat16, "float16": lepton.float16,
                      "fp16": lepton.float16}
        if amp not in amp_dtypes:
            raise ValueError(f"amp must be None, 'bfloat16' or 'float16', got {amp!r}")
        self.amp_dtype = amp_dtypes[amp]
        self.scaler = lepton.amp.GradScaler(self.device.type, enabled=self.amp_dtype == lepton.float16)
        self._ranks = Ranks.resolve(distributed, model)
        self.ddp = model if isinstance(model, DistributedDataParallel) else None
        self.model = (model.module if self.ddp is not None else model).to(self.device)
        if self._ranks.group is not None and self.ddp is None and optimizer is not None:
            self.ddp = DistributedDataParallel(self.model, process_group=self._ranks.group)
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
        self._loader = self._source = None  # the loader fit trains on (this rank's share of _source)
        self._step_lr = self.lr
        self._epoch_start = time.perf_counter()
        self._reset_epoch_sums()

    @property
    def lr(self):
        """The first param group's learning rate (None without an optimizer: evaluate/predict only)."""
        return self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None

    @property
    def rank(self):
        return self._ranks.rank

    @property
    def world_size(self):
        """The number of ranks training together (1 for a single process)."""
        return self._ranks.size

    @property
    def is_main_process(self):
        """True on rank 0 (and in a single process): the one that prints and writes files."""
        return self._ranks.is_main

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
        source = self._loader_for(train_data, batch_size, shuffle, "fit")
        # the same loader again continues where the last fit left it, through the same share of it
        loader = self._loader if source is self._source else shard_train(source, self._ranks)
        self._source = source
        if self._ranks.group is not None:  # ranks with different numbers of batches would wait on each other
            self._ranks.check_same(len(loader), "number of training batches per epoch")
        val_loader = None if validation_data is None else \
            self._loader_for(validation_data, None if _is_loader(validation_data) else batch_size, False,
                             "fit validation_data")
        self._loader = loader
        verbose = verbose if self.is_main_process else 0
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
            if self.is_main_process or not cb.main_process_only:
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
                last = (self.batch + 1) % k == 0 or self.batch + 1 == total  # of its accumulation group
                with self._grad_sync(last):
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

    def _grad_sync(self, sync):
        """Data-parallel gradient accumulation averages over ranks once per optimizer step: the
        group's earlier batches accumulate locally (DDP's no_sync), its last one averages the sum."""
        if self.ddp is None or sync:
            return contextlib.nullcontext()
        return self.ddp.no_sync()

    def _train_batch(self, batch, group, total):
        inputs, target = self._split_batch(batch)
        with self._autocast():
            output = (self.ddp or self.model)(*inputs)
            loss = self.loss_fn(output, target)
        value = loss.item()
        n = target.shape[0] if target.dim() else 1
        # every rank's (loss, samples), gathered during backward: all ranks must agree to stop on a
        # non-finite loss (one rank stopping alone would leave the others waiting in the all-reduce)
        losses = self._ranks.start_gather([value, n])
        self.scaler.scale(loss if group == 1 else loss * (1.0 / group)).backward()
        rows = losses.rows()
        bad = [r for r, (v, _) in enumerate(rows) if not math.isfinite(v)]
        if bad:
            where = f"{self.batch + 1}/{total}" if total else f"{self.batch + 1}"
            ranks = f" on rank {', '.join(map(str, bad))}" if self.world_size > 1 else ""
            raise NonFiniteError(f"loss is {rows[bad[0]][0]}{ranks} at epoch {self.epoch + 1}, batch {where} (before "
                                 f"optimizer step {self.step + 1}); training stopped with the weights of step "
                                 f"{self.step}")
        self._loss_sum += sum(v * m for v, m in rows)
        self._samples += int(sum(m for _, m in rows))
        if self.metrics:
            out, tgt = _numpy(output), _numpy(target)
            for m in self.metrics:
                m.update(out, tgt)
        self._batch_loss = value if len(rows) == 1 else sum(v * m for v, m in rows) / sum(m for _, m in rows)

    def _optimizer_step(self):
        if self.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self._step_lr = self.lr
        self.scaler.step(self.optimizer)  # skipped when a gradient is inf/NaN (float16 only)
        self.scaler.update()
        self.step += 1
        if self.callbacks:
            self._call("on_train_batch_end", self.step, {"loss": self._batch_loss, "lr": self._step_lr})

    def _autocast(self):
        return lepton.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _running_logs(self, metrics=None):
        """The epoch's figures so far (metrics: this rank's, unless given the merged ones)."""
        logs = {"loss": self._loss_sum / max(self._samples, 1)}
        for m in self.metrics if metrics is None else metrics:
            logs[m.name] = m.compute()
        return _epoch_loggable(logs)

    def _end_epoch(self, val_loader, bar, start):
        train_seconds = self._epoch_seconds + time.perf_counter() - start
        logs = self._running_logs(self._ranks.merged_metrics(self.metrics))
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
        if self.world_size > 1:  # one rank's callback stopping alone would leave the others waiting
            self.stop_training = self._ranks.any(self.stop_training)

    # ---- evaluate / predict -------------------------------------------------------------------

    def evaluate(self, data, batch_size=None, metrics=None):
        """{"loss": mean loss per sample, metric name: value} over `data` (a loader or (x, y)),
        in eval mode without gradients. `metrics` adds metrics for this call only (e.g. a
        ConfusionMatrix, whose value is an array). Data-parallel, each rank evaluates its share of
        a DataLoader (every sample on one rank) with rank 0's buffers and the figures are summed
        over ranks; other loaders are evaluated whole on every rank."""
        loader, split = shard_eval(self._loader_for(data, batch_size, False, "evaluate"), self._ranks)
        metrics = [copy.deepcopy(m) for m in self.metrics] + [get_metric(m) for m in (metrics or [])]
        for m in metrics:
            m.reset()
        loss_sum, samples = 0.0, 0
        self._ranks.sync_buffers(self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                for batch in loader:
                    inputs, target = self._split_batch(batch)
                    with self._autocast():
                        output = self.model(*inputs)
                        loss = self.loss_fn(output, target)
                    n = target.shape[0] if target.dim() else 1
                    loss_sum += loss.item() * n
                    samples += n
                    if metrics:
                        out, tgt = _numpy(output), _numpy(target)
                        for m in metrics:
                            m.update(out, tgt)
        finally:
            self.model.train(was_training)
        if split:
            sums = self._ranks.gather([loss_sum, samples])
            loss_sum, samples = sum(s[0] for s in sums), sum(s[1] for s in sums)
            metrics = self._ranks.merged_metrics(metrics)
        return {"loss": loss_sum / max(samples, 1), **{m.name: m.compute() for m in metrics}}

    def predict(self, data, batch_size=None):
        """The model's outputs for every sample of `data`, concatenated along dim 0. data: x
        (array or tensor) with batch_size, or a loader; of each loader batch the inputs are all
        tensors but the last (the target), or the only one. Data-parallel, each rank predicts
        all of `data` by itself (no collectives)."""
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
                    with self._autocast():
                        outputs.append(self.model(*[t.to(self.device) for t in inputs]))
        finally:
            self.model.train(was_training)
        if not outputs:
            raise ValueError("predict: the data is empty")
        return lepton.cat(outputs, 0)

    # ---- checkpoints --------------------------------------------------------------------------

    def state_dict(self):
        """Everything a resumed run needs, as lepton.save can store it. Data-parallel it holds the
        metric counts of all ranks and every rank's RNG state (so it is collective there)."""
        loader = self._loader.state_dict() if hasattr(self._loader, "state_dict") else None
        names = _callback_names(self.callbacks)
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "callbacks": {name: cb.state_dict() for name, cb in zip(names, self.callbacks)},
            "trainer": {"epoch": self.epoch, "step": self.step, "batch": self.batch, "loss_sum": self._loss_sum,
                        "samples": self._samples, "step_lr": self._step_lr,
                        "epoch_seconds": self._epoch_seconds + time.perf_counter() - self._epoch_start
                        if self.batch else 0.0,
                        "metrics": [m.state_dict() for m in self._ranks.merged_metrics(self.metrics)],
                        "world_size": self.world_size},
            "loader": loader,
            "rng": {"lepton": lepton.get_rng_state(), "ranks": self._ranks.gather(list(lepton.get_rng_state()))},
            "history": self.history,
            "config": self.config,
        }

    def save_checkpoint(self, path):
        """Writes state_dict() to `path` atomically; refuses (NonFiniteError) when a weight is
        not finite, so the checkpoint already there stays the last good one. Data-parallel,
        every rank calls it and rank 0 alone writes; all ranks raise if one cannot go on."""
        bad = next((name for name, t in self.model.state_dict().items()
                    if t.is_floating_point() and not np.isfinite(t.float().cpu().numpy()).all()), None)
        bad_ranks = [(r, name) for r, name in enumerate(self._ranks.gather(bad)) if name is not None]
        if bad_ranks:
            r, name = bad_ranks[0]
            where = f" on rank {r}" if self.world_size > 1 else ""
            raise NonFiniteError(f"weight '{name}' is not finite{where} after step {self.step} (epoch "
                                 f"{self.epoch + 1}); '{path}' was not written")
        state, error = self.state_dict(), None
        if self.is_main_process:
            try:
                lepton.save(state, path)
            except Exception as e:  # re-raised below, once the other ranks know
                error = e
        failed = self._ranks.gather(None if error is None else f"{type(error).__name__}: {error}")[0]
        if error is not None:
            raise error
        if failed is not None:
            raise RuntimeError(f"rank 0 could not write the checkpoint '{path}' ({failed})")

    def load_state_dict(self, state):
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a trainer checkpoint (no 'format': 'lepton-trainer-1' entry)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        saved = state["callbacks"]
        for name, cb in zip(_callback_names(self.callbacks), self.callbacks):
            if name in saved:
                cb.load_state_dict(saved[name])
        t = state["trainer"]
        saved_world = t.get("world_size", 1)
        if t["batch"] and saved_world != self.world_size:  # the position in the epoch depends on the split
            raise ValueError(f"the checkpoint was written in the middle of an epoch by {saved_world} rank(s); resume "
                             f"it with {saved_world}, not {self.world_size} (or from an end-of-epoch checkpoint)")
        self.epoch, self.step, self.batch = t["epoch"], t["step"], t["batch"]
        self._loss_sum, self._samples, self._epoch_seconds = t["loss_sum"], t["samples"], t["epoch_seconds"]
        self._step_lr = t["step_lr"]
        if len(t["metrics"]) != len(self.metrics):
            raise ValueError(f"the checkpoint has {len(t['metrics'])} metrics, this trainer {len(self.metrics)}")
        for m, s in zip(self.metrics, t["metrics"]):
            m.load_state_dict(s)
            if not self.is_main_process:  # the saved counts are all ranks'; rank 0 carries them on
                m.reset()
        if state["loader"] is not None and hasattr(self._loader, "load_state_dict"):
            self._loader.load_state_dict(state["loader"])
        per_rank = state["rng"].get("ranks")
        own = per_rank[self.rank] if per_rank and len(per_rank) == self.world_size else state["rng"]["lepton"]
        lepton.set_rng_state(tuple(own))
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.config = state.get("config") or self.config
        self.resumed = True

    def load_checkpoint(self, path):
        try:
            state = lepton.load(path, map_location="cpu")
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
