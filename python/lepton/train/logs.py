"""Loggers for Trainer.fit: one CSV row or one JSON line per epoch (and per N steps for JSONL).

When a run is resumed, each logger first rewrites its file to match the checkpoint it resumed
from (CSV: the restored history; JSONL: the records up to the restored step), so a run killed
between a log write and a checkpoint neither loses nor repeats a record.
"""

import csv
import json
import os

from lepton.train.callbacks import Callback

__all__ = ["CSVLogger", "JSONLLogger"]


def _open_for_write(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "w", newline="")


class CSVLogger(Callback):
    """A header and one row per epoch: epoch (from 1), then the epoch's figures."""

    main_process_only = True

    def __init__(self, path, separator=","):
        self.path, self.separator = os.fspath(path), separator
        self._file = self._writer = None

    def on_train_begin(self, logs=None):
        self._file = _open_for_write(self.path)
        self._writer = None
        history = self.trainer.history if self.trainer.resumed else {}
        rows = len(next(iter(history.values()), []))
        for i in range(rows):
            self._write(i, {k: v[i] for k, v in history.items() if i < len(v)})

    def _write(self, epoch, logs):
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, ["epoch", *logs], delimiter=self.separator,
                                          extrasaction="ignore", restval="")
            self._writer.writeheader()
        self._writer.writerow({"epoch": epoch + 1, **logs})
        self._file.flush()

    def on_epoch_end(self, epoch, logs):
        self._write(epoch, logs)

    def on_train_end(self, logs=None):
        if self._file:
            self._file.close()
            self._file = None


class JSONLLogger(Callback):
    """One JSON object per line: {"event": "epoch", "epoch", "step", figures...} at each epoch end
    and, with every_n_steps, {"event": "step", "step", "epoch", "loss", "lr"} every that many
    optimizer steps (epoch counts from 1)."""

    main_process_only = True

    def __init__(self, path, every_n_steps=None):
        if every_n_steps is not None and (not isinstance(every_n_steps, int) or every_n_steps < 1):
            raise ValueError(f"JSONLLogger: every_n_steps must be a positive int or None, got {every_n_steps!r}")
        self.path, self.every_n_steps = os.fspath(path), every_n_steps
        self._file = None

    def on_train_begin(self, logs=None):
        kept = []
        if self.trainer.resumed and os.path.exists(self.path):
            with open(self.path) as f:
                records = [json.loads(line) for line in f if line.strip()]
            reached = {"epoch": self.trainer.epoch, "step": self.trainer.step}
            kept = [r for r in records if r[r["event"]] <= reached[r["event"]]]
        self._file = _open_for_write(self.path)
        for record in kept:
            self._emit(record)

    def _emit(self, record):
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def on_train_batch_end(self, step, logs):
        if self.every_n_steps and step % self.every_n_steps == 0:
            self._emit({"event": "step", "step": step, "epoch": self.trainer.epoch + 1, "loss": logs["loss"],
                        "lr": self.trainer.lr})

    def on_epoch_end(self, epoch, logs):
        self._emit({"event": "epoch", "epoch": epoch + 1, "step": self.trainer.step, **logs})

    def on_train_end(self, logs=None):
        if self._file:
            self._file.close()
            self._file = None
