"""What the server runs: a model with its input contract, pre- and postprocessing.

The checkpoint interface is servable_from_checkpoint(state, version): it takes the dict that
lepton.load returns and gives a Servable. It understands checkpoints written by `lepton train`
(format 'lepton-trainer-1', classification recipes); other formats raise ValueError.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np

import lepton

__all__ = ["Servable", "servable_from_checkpoint", "load_servable", "file_version"]


def _identity(x):
    return x


def _as_list(row):
    return np.asarray(row).tolist()


@dataclass
class Servable:
    """model maps a float32 batch [B, *input_shape] (after preprocess) to outputs [B, ...];
    postprocess turns one output row into JSON-able data."""

    model: object
    input_shape: tuple
    name: str = "model"
    version: str = "0"
    preprocess: object = _identity  # float32 [B, *input_shape] -> float32 array for the model
    postprocess: object = _as_list
    info: dict = field(default_factory=dict)

    def predict(self, x):
        """float32 [B, *input_shape] -> numpy outputs [B, ...], with no graph recorded."""
        with lepton.inference_mode():
            y = self.model(lepton.from_numpy(np.ascontiguousarray(self.preprocess(x), dtype=np.float32)))
        return y.numpy()


def _classifier_post(classes):
    def post(logits):
        z = np.asarray(logits, np.float64)
        with np.errstate(invalid="ignore"):  # an infinite logit gives NaN, which the server refuses to send
            p = np.exp(z - z.max())
            p /= p.sum()
        k = int(p.argmax())
        return {"class": k, "label": str(classes[k]) if classes else str(k), "probabilities": p.round(6).tolist()}

    return post


def servable_from_checkpoint(state, version="0", quantize=False):
    """A Servable from a `lepton train` checkpoint dict (lepton.load's result). Image classifiers
    take pixel values in [0, 1] of shape [28, 28] (or anything with 784 values) per sample, and are
    normalised as in training; each output is {class, label, probabilities}. quantize=True serves
    the int8 dynamically quantised model (lepton.quant)."""
    from lepton.train.recipes import _IMAGE_STATS, build_model  # the recipes' own model and statistics
    from lepton.train.trainer import CHECKPOINT_FORMAT

    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "config" not in state:
        raise ValueError("not a checkpoint written by `lepton train` (format 'lepton-trainer-1')")
    config = state["config"]
    if config.get("task") != "classify":
        raise ValueError(f"serving supports the image-classification recipes; this checkpoint is "
                         f"{config.get('recipe')!r} ({config.get('task')})")
    model = build_model(config)
    model.load_state_dict(state["model"])
    model.eval()
    if quantize:
        from lepton import quant

        model = quant.quantize_dynamic(model)
    mean, std = _IMAGE_STATS[config["dataset"]]
    classes = config.get("classes") or [str(i) for i in range(10)]

    def preprocess(x):
        return ((x - np.float32(mean)) / np.float32(std)).reshape(len(x), 1, 28, 28)

    return Servable(model, (28, 28), name=config["recipe"] + ("-int8" if quantize else ""), version=version,
                    preprocess=preprocess, postprocess=_classifier_post(classes), info={"config": config})


def file_version(path):
    """The first 12 hex digits of the file's SHA-256: the model version reported by the server."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def load_servable(path, quantize=False):
    return servable_from_checkpoint(lepton.load(path, map_location="cpu"), file_version(path), quantize=quantize)
