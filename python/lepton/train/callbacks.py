"""Callbacks for Trainer.fit: checkpoints, early stopping, learning-rate schedules.

A callback overrides any of the hooks below. Those that carry state across epochs return it
from state_dict(), which the trainer stores in its checkpoints, so a resumed run makes the same
decisions as an uninterrupted one.

In data-parallel training every rank runs the callbacks with the same figures, so they decide
alike; only rank 0 writes files and prints. A callback with main_process_only = True (the
loggers) runs on rank 0 alone, so it must not take part in collectives.
"""

import math
import os
import sys

from lepton.optim.lr_scheduler import ReduceLROnPlateau

__all__ = ["Callback", "ModelCheckpoint", "EarlyStopping", "LRSchedulerCallback"]


class Callback:
    trainer = None
    main_process_only = False  # True: the trainer calls it on rank 0 only (e.g. it writes a file)

    def set_trainer(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs):
        """epoch counts from 0; logs has the epoch's figures (loss, metrics, val_*, lr, time)."""

    def on_train_batch_end(self, step, logs):
        """After each optimizer step; step counts optimizer steps from 1, logs has the batch's loss."""

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _resolve_mode(mode, monitor):
    """'min' or 'max'; 'auto' picks 'max' for accuracy-like figures, 'min' otherwise (as Keras)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    return "max" if any(k in name for k in ("acc", "f1", "precision", "recall")) else "min"


class _Monitor:
    """Tracks the best value of one figure in the logs."""

    def __init__(self, monitor, mode, min_delta=0.0):
        self.monitor, self.mode = monitor, _resolve_mode(mode, monitor)
        self.min_delta = abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def current(self, logs):
        if self.monitor not in logs:
            raise ValueError(f"{type(self).__name__}: monitored figure '{self.monitor}' is not in the logs "
                             f"(available: {', '.join(sorted(logs))}); pass validation data for val_* figures")
        return float(logs[self.monitor])

    def improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class ModelCheckpoint(Callback, _Monitor):
    """Writes a full, resumable trainer checkpoint (model, optimizer, callbacks, loader and RNG
    state, history) to `path` at the end of each epoch, or every `save_freq` optimizer steps when
    save_freq is an int. With save_best_only, only at epoch ends where `monitor` improved.

    `path` may hold format fields: {epoch} (from 1), {step} and any figure of the logs, e.g.
    "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors". A checkpoint is never written from weights
    that are not finite (the trainer raises instead), so the last one written stays good.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto", save_freq="epoch",
                 verbose=0):
        _Monitor.__init__(self, monitor, mode)
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int, got {save_freq!r}")
        if save_best_only and save_freq != "epoch":
            raise ValueError("ModelCheckpoint: save_best_only compares epoch figures; it needs save_freq='epoch'")
        self.path, self.save_best_only, self.save_freq = os.fspath(path), save_best_only, save_freq
        self.verbose = verbose
        self.last_saved = None  # {"path", "epoch", "step"} of the latest write

    def _save(self, epoch, logs):
        path = self.path.format(epoch=epoch, step=self.trainer.step, **logs)
        main = self.trainer.is_main_process
        if main:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.last_saved = {"path": path, "epoch": epoch, "step": self.trainer.step}
        self.trainer.save_checkpoint(path)  # on every rank: it is collective; rank 0 writes
        if self.verbose and main:
            print(f"saved {path}", file=sys.stderr)

    def on_epoch_end(self, epoch, logs):
        if self.save_freq != "epoch":
            return
        if self.save_best_only:
            value = self.current(logs)
            if not self.improved(value):
                return
            self.best = value
        self._save(epoch + 1, logs)

    def on_train_batch_end(self, step, logs):
        if self.save_freq != "epoch" and step % self.save_freq == 0:
            self._save(self.trainer.epoch + 1, logs)

    def state_dict(self):
        return {"best": self.best, "last_saved": self.last_saved}

    def load_state_dict(self, state):
        self.best, self.last_saved = state["best"], state["last_saved"]


class EarlyStopping(Callback, _Monitor):
    """Stops training after `patience` epochs in a row in which `monitor` did not improve by more
    than min_delta (patience=0: at the first such epoch). restore_best_weights puts back the
    weights of the best epoch when training ends (normally or by this stop), as Keras does."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=False,
                 verbose=0):
        _Monitor.__init__(self, monitor, mode, min_delta)
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.patience, self.restore_best_weights, self.verbose = patience, restore_best_weights, verbose
        self.wait, self.best_epoch, self.stopped_epoch, self.best_weights = 0, None, None, None

    def on_epoch_end(self, epoch, logs):
        value = self.current(logs)
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.clone() for k, v in self.trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            if self.verbose and self.trainer.is_main_process:
                print(f"early stopping after epoch {epoch + 1}: {self.monitor} has not improved for "
                      f"{self.wait} epochs (best {self.best:.4g} at epoch {self.best_epoch + 1})", file=sys.stderr)

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None and \
                self.trainer.stop_reason in ("completed", "early_stopping"):
            self.trainer.model.load_state_dict(self.best_weights)

    def state_dict(self):
        return {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state):
        for k in ("best", "wait", "best_epoch", "stopped_epoch", "best_weights"):
            setattr(self, k, state[k])


class LRSchedulerCallback(Callback):
    """Steps a lepton.optim.lr_scheduler scheduler after every optimizer step (interval='step')
    or every epoch (interval='epoch'). ReduceLROnPlateau is stepped each epoch with the
    monitored figure."""

    def __init__(self, scheduler, interval="epoch", monitor="val_loss"):
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRSchedulerCallback: interval must be 'epoch' or 'step', got {interval!r}")
        self.plateau = isinstance(scheduler, ReduceLROnPlateau)
        if self.plateau and interval != "epoch":
            raise ValueError("LRSchedulerCallback: ReduceLROnPlateau is stepped once per epoch")
        self.scheduler, self.interval, self.monitor = scheduler, interval, monitor

    def on_train_batch_end(self, step, logs):
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, epoch, logs):
        if self.plateau:
            if self.monitor not in logs:
                raise ValueError(f"LRSchedulerCallback: monitored figure '{self.monitor}' is not in the logs "
                                 f"(available: {', '.join(sorted(logs))})")
            self.scheduler.step(logs[self.monitor])
        elif self.interval == "epoch":
            self.scheduler.step()

    def state_dict(self):
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state["scheduler"])
