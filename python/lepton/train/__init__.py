"""lepton.train: the Keras-style training loop (Trainer.fit / evaluate / predict), metrics,
callbacks (checkpoints, early stopping, lr schedules, CSV/JSONL logs) and the recipes behind
`lepton train`."""

from lepton.train import metrics
from lepton.train.callbacks import Callback, EarlyStopping, LRSchedulerCallback, ModelCheckpoint
from lepton.train.logs import CSVLogger, JSONLLogger
from lepton.train.parallel import data_parallel_loader
from lepton.train.trainer import NonFiniteError, Trainer

__all__ = ["Trainer", "NonFiniteError", "Callback", "ModelCheckpoint", "EarlyStopping", "LRSchedulerCallback",
           "CSVLogger", "JSONLLogger", "data_parallel_loader", "metrics"]
