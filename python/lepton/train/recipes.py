"""The recipes behind `lepton train`: a model, its data, optimizer and schedule, and what to report.

A run is described by a config: plain data (recipe name, epochs/steps, batch size, lr, seed, model
arguments, vocabulary) stored in every checkpoint, so `lepton eval` and `lepton generate` rebuild the
model and its data from the checkpoint alone, and `--resume` continues the same run.
"""

import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

import lepton
from lepton import distributed, nn, optim
from lepton.train.callbacks import LRSchedulerCallback, ModelCheckpoint
from lepton.train.logs import JSONLLogger
from lepton.train.metrics import ConfusionMatrix, scores_from_confusion
from lepton.train.parallel import data_parallel_loader
from lepton.train.trainer import CHECKPOINT_FORMAT, NonFiniteError, Trainer

__all__ = ["Recipe", "RECIPES", "make_config", "build_model", "load_data", "train", "evaluate", "load_run"]


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    task: str  # "classify" (images -> classes) or "language" (characters -> next character)
    batch_size: int
    lr: float
    epochs: int = None
    steps: int = None
    extra: dict = field(default_factory=dict)  # recipe-specific config entries


RECIPES = {r.name: r for r in [
    Recipe("mnist-mlp", "MNIST digits, the 784-128-64-10 ReLU MLP, Adam with a cosine schedule, label smoothing",
           "classify", batch_size=128, lr=2e-3, epochs=10,
           extra={"dataset": "mnist", "model": "MLP", "label_smoothing": 0.1}),
    Recipe("mnist-cnn", "MNIST digits, Keras' mnist_cnn (2 conv + 2 fc, dropout), shifts of up to 2 pixels, Adam "
           "with a cosine schedule", "classify", batch_size=64, lr=1e-3, epochs=8,
           extra={"dataset": "mnist", "model": "MnistCNN", "shift": 2}),
    Recipe("mnist-lstm", "MNIST digits read row by row (28 steps of 28 pixels), Keras' LSTM(128) + Linear, Adam "
           "with a cosine schedule, gradient clipping", "classify", batch_size=128, lr=2e-3, epochs=3,
           extra={"dataset": "mnist", "model": "MnistLSTM", "clip_grad_norm": 1.0}),
    Recipe("fashion-cnn", "Fashion-MNIST (Debian's dataset-fashion-mnist), a 4-conv BatchNorm CNN, shifts and "
           "mirroring, Adam with a cosine schedule", "classify", batch_size=64, lr=2e-3, epochs=10,
           extra={"dataset": "fashion_mnist", "model": "FashionCNN", "shift": 2, "hflip": True}),
    Recipe("shakespeare-gpt", "character-level GPT (4 layers, 4 heads, 128 embedding, block 64) on Shakespeare, "
           "AdamW with warmup and cosine decay", "language", batch_size=12, lr=1e-3, steps=5000,
           extra={"model": "CharGPT", "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64,
                  "dropout": 0.0, "steps_per_epoch": 250, "eval_batches": 50, "val_fraction": 0.1,
                  "warmup_steps": 100, "weight_decay": 0.1, "clip_grad_norm": 1.0}),
]}
DEFAULT = "mnist-mlp"
_IMAGE_STATS = {"mnist": (0.1307, 0.3081), "fashion_mnist": (0.2860, 0.3530)}  # training-set mean, std
_VAL_SIZE = 5000  # training images held out for validation (best checkpoint, early figures)


def make_config(name, epochs=None, steps=None, batch_size=None, lr=None, seed=0, amp=None,
                checkpoint_activations=False):
    """The config of a run of recipe `name`, with the given settings instead of the defaults. With
    steps and no epochs a run is step-limited only; amp: None, "bfloat16" or "float16" (Trainer's);
    checkpoint_activations recomputes each transformer block in backward (GPT recipes only)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe '{name}' (known: {', '.join(RECIPES)})")
    r = RECIPES[name]
    if checkpoint_activations and r.extra.get("model") != "CharGPT":
        raise ValueError(f"activation checkpointing is for the transformer recipes; {name} has no blocks to recompute")
    config = {"recipe": name, "task": r.task, "epochs": r.epochs, "steps": r.steps, "batch_size": r.batch_size,
              "lr": r.lr, "seed": seed, "amp": amp, **r.extra}
    if checkpoint_activations:
        config["checkpoint_activations"] = True
    if steps is not None:
        config["steps"], config["epochs"] = steps, epochs
    elif epochs is not None:
        config["epochs"], config["steps"] = epochs, None
    if batch_size is not None:
        config["batch_size"] = batch_size
    if lr is not None:
        config["lr"] = lr
    return config


# ---- models -------------------------------------------------------------------------------------

def build_model(config):
    from lepton import models

    kind = config["model"]
    try:
        if kind == "CharGPT":
            return models.CharGPT(len(config["vocab"]), config["n_layer"], config["n_head"], config["n_embd"],
                                  config["block_size"], config["dropout"],
                                  checkpoint_activations=config.get("checkpoint_activations", False))
        return getattr(models, kind)()
    except AttributeError as e:  # a layer missing from lepton.nn in this build
        raise RuntimeError(f"recipe {config['recipe']} needs a layer this build of lepton lacks ({e})") from None


def lm_loss(logits, target):
    """Cross-entropy of [B, T, V] logits against [B, T] next-character ids."""
    return nn.functional.cross_entropy(logits.reshape([-1, logits.shape[-1]]), target.reshape([-1]))


def loss_fn(config):
    if config["task"] == "language":
        return lm_loss
    return nn.CrossEntropyLoss(label_smoothing=config.get("label_smoothing", 0.0))


# ---- data ---------------------------------------------------------------------------------------

@dataclass
class Data:
    train: object  # DataLoader
    val: object
    test: object  # test images for classification; the validation windows again for language models
    classes: list = None


class RandomWindowSampler:
    """`num_samples` window starts drawn uniformly (with replacement) from `n`, a fresh draw each
    epoch that depends on (seed, epoch) only: nanoGPT's random batches, resumable by epoch."""

    def __init__(self, n, num_samples, seed=0):
        self.n, self.num_samples, self.seed, self.epoch = n, num_samples, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).integers(0, self.n, self.num_samples).tolist())


def load_data(config, need_train=True):
    from lepton.data import DataLoader, Subset, TensorDataset, random_split
    from lepton import datasets

    seed, batch = config["seed"], config["batch_size"]
    if config["task"] == "language":
        chars = datasets.CharDataset(datasets.shakespeare(), config["block_size"], vocab=config.get("vocab"))
        config["vocab"] = "".join(chars.vocab)
        train, val = chars.split(config["val_fraction"])
        picks = np.random.default_rng([seed, 1]).integers(0, len(val), config["eval_batches"] * batch)
        val_loader = DataLoader(Subset(val, picks), batch_size=batch, prefetch=0)
        sampler = RandomWindowSampler(len(train), config["steps_per_epoch"] * batch, seed)
        train_loader = DataLoader(train, batch_size=batch, sampler=sampler) if need_train else None
        return Data(train_loader, val_loader, val_loader)
    load = getattr(datasets, config["dataset"])
    mean, std = _IMAGE_STATS[config["dataset"]]
    test = load(train=False)
    x, y = test.tensors()
    test_loader = DataLoader(TensorDataset((x - mean) / std, y), batch_size=1000, prefetch=0)
    if not need_train:
        return Data(None, None, test_loader, test.classes)
    x, y = load(train=True).tensors()
    full = TensorDataset((x - mean) / std, y)
    train, val = random_split(full, [len(full) - _VAL_SIZE, _VAL_SIZE], seed=seed)
    return Data(DataLoader(train, batch_size=batch, shuffle=True, seed=seed, transform=_augmentation(config)),
                DataLoader(val, batch_size=1000, prefetch=0), test_loader, test.classes)


def _augmentation(config):
    """Random shifts (padding with the normalised background) and left-right mirroring, or None."""
    from lepton.data import transforms as T

    mean, std = _IMAGE_STATS[config["dataset"]]
    steps = ([T.RandomCrop(28, padding=config["shift"], fill=-mean / std)] if config.get("shift") else []) + \
        ([T.RandomHorizontalFlip()] if config.get("hflip") else [])
    return T.Compose(steps) if steps else None


# ---- training -----------------------------------------------------------------------------------

def _optimizer(config, model, total_steps):
    if config["task"] == "language":  # no weight decay on biases and LayerNorm gains (as nanoGPT)
        params = list(model.parameters())
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config["weight_decay"]},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        opt = optim.AdamW(groups, lr=config["lr"], betas=(0.9, 0.99))
        warmup = min(config["warmup_steps"], total_steps // 10)  # short runs (tests, smoke checks) warm up less
        schedule = optim.lr_scheduler.warmup_cosine(opt, warmup, total_steps, min_factor=0.1)
    else:
        opt = optim.Adam(model.parameters(), lr=config["lr"])
        schedule = optim.lr_scheduler.warmup_cosine(opt, 0, total_steps)
    return opt, LRSchedulerCallback(schedule, interval="step")


def _total_steps(config, steps_per_epoch):
    totals = [t for t in (config["steps"], config["epochs"] and config["epochs"] * steps_per_epoch) if t]
    return min(totals)


def train(config, out, resume=None, verbose=1, device="cpu"):
    """Runs the recipe: trains (or resumes), evaluates on the test data, writes out/checkpoint.safetensors
    (the last epoch), out/best.safetensors, out/log.jsonl, out/metrics.json and out/curves.png.
    Returns the metrics dict."""
    start = time.perf_counter()
    lepton.manual_seed(config["seed"])
    data = load_data(config)
    data.train = data_parallel_loader(data.train)  # this rank's share when data-parallel (for the schedule's length)
    model = build_model(config)
    # the same initial weights everywhere, then a generator per rank: ranks must not draw the
    # same dropout masks and augmentations
    rank = distributed.get_rank() if distributed.is_initialized() else 0
    if rank:
        lepton.manual_seed(config["seed"] + rank)
    opt, schedule = _optimizer(config, model, _total_steps(config, len(data.train)))
    language = config["task"] == "language"
    checkpoint = ModelCheckpoint(os.path.join(out, "checkpoint.safetensors"))
    best = ModelCheckpoint(os.path.join(out, "best.safetensors"), monitor="val_loss" if language else "val_accuracy",
                           save_best_only=True)
    trainer = Trainer(model, opt, loss_fn(config), metrics=[] if language else ["accuracy"], device=device,
                      callbacks=[schedule, JSONLLogger(os.path.join(out, "log.jsonl"), every_n_steps=50), checkpoint,
                                 best],
                      clip_grad_norm=config.get("clip_grad_norm"), config=config, amp=config.get("amp"))
    try:
        history = trainer.fit(data.train, epochs=config["epochs"], steps=config["steps"], validation_data=data.val,
                              verbose=verbose, resume=resume)
    except NonFiniteError as e:
        last = checkpoint.last_saved
        kept = (f"the last good checkpoint is {last['path']} (epoch {last['epoch']}, step {last['step']})" if last
                else "no checkpoint had been written yet")
        raise NonFiniteError(f"{e}; {kept}") from None
    report = evaluate(model, data, config, device)
    from lepton.train.plots import plot_history

    main = trainer.is_main_process  # every rank of a data-parallel run gets the figures; rank 0 writes the files
    curves = main and plot_history(history, os.path.join(out, "curves.png"), title=config["recipe"])
    results = {"recipe": config["recipe"], "config": config, "test": report, "history": history,
               "epochs": trainer.epoch, "steps": trainer.step, "world_size": trainer.world_size,
               "global_batch_size": config["batch_size"] * trainer.world_size,
               # the median epoch's training throughput; fit's time (training and validation); all of it
               "train_samples_per_s": statistics.median(history["samples_per_s"]) if history else None,
               "train_seconds": sum(history.get("time", [])), "wall_seconds": time.perf_counter() - start,
               "curves": "curves.png" if curves else None}
    if main:
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump(results, f, indent=1)
    return results


def evaluate(model, data, config, device="cpu"):
    """The test report: cross-entropy (without label smoothing), accuracy, macro precision/recall/F1,
    per-class figures and the confusion matrix; for a language model the validation loss and perplexity."""
    trainer = Trainer(model, None, lm_loss if config["task"] == "language" else nn.CrossEntropyLoss(), device=device)
    if config["task"] == "language":
        loss = trainer.evaluate(data.test)["loss"]
        return {"loss": loss, "perplexity": math.exp(loss), "bits_per_char": loss / math.log(2)}
    figures = trainer.evaluate(data.test, metrics=["accuracy", ConfusionMatrix(len(data.classes))])
    cm = figures["confusion_matrix"]
    p, r, f1 = scores_from_confusion(cm, "macro")
    per = scores_from_confusion(cm, None)
    return {"loss": figures["loss"], "accuracy": figures["accuracy"], "precision_macro": p, "recall_macro": r,
            "f1_macro": f1, "classes": data.classes,
            "per_class": {name: {"precision": float(per[0][i]), "recall": float(per[1][i]), "f1": float(per[2][i]),
                                 "support": int(cm[i].sum())} for i, name in enumerate(data.classes)},
            "confusion_matrix": cm.tolist()}


def load_run(path, task=None):
    """(config, model with the checkpoint's weights) from a checkpoint written by `lepton train`.
    ValueError for files that are not such a checkpoint or hold another task's model."""
    state = lepton.load(path, map_location="cpu")
    config = state.get("config") if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT else None
    if not config or config.get("recipe") not in RECIPES:
        raise ValueError(f"'{path}' is not a checkpoint written by `lepton train`")
    if task is not None and config["task"] != task:
        raise ValueError(f"'{path}' holds a {config['recipe']} model; this command needs a "
                         f"{'character-level language' if task == 'language' else 'classification'} model")
    model = build_model(config)
    model.load_state_dict(state["model"])
    model.eval()
    return config, model
