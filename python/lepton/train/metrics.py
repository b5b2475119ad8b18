"""Classification metrics: plain functions over whole arrays, and streaming classes that take one
batch at a time (update) and give the figure for everything seen (compute).

Inputs are lepton tensors or NumPy arrays. `output` is either scores (logits or probabilities,
one more dimension than `target`, classes last: [N, C] or [B, T, C]) or predicted labels (the
same shape as `target`); `target` holds integer class labels. Leading dimensions are flattened,
so a language model's [B, T, V] logits and [B, T] targets work as they are.

Conventions (those of scikit-learn): confusion matrices have true classes as rows and predicted
classes as columns; a precision or recall with a zero denominator is 0; macro averages run over
the classes that occur in the targets or the predictions; for single-label data micro precision
= micro recall = micro F1 = accuracy.
"""

import numpy as np

from lepton._C import Tensor

__all__ = ["accuracy", "top_k_accuracy", "confusion_matrix", "precision_recall_f1", "precision", "recall",
           "f1_score", "scores_from_confusion", "Metric", "Accuracy", "TopKAccuracy", "ConfusionMatrix", "Precision",
           "Recall", "F1Score", "get_metric"]

AVERAGES = ("macro", "micro", "weighted", None)


def _numpy(x):
    if isinstance(x, Tensor):
        if x.dtype.name == "bfloat16":  # outputs under autocast; NumPy has no bfloat16
            x = x.float()
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _scores_and_labels(output, target, need_scores=False):
    """(scores [N, C] or None, target labels [N]) with leading dimensions flattened."""
    output, target = _numpy(output), _numpy(target)
    if target.dtype.kind not in "iub":
        raise TypeError(f"metrics: target must hold integer class labels, got dtype {target.dtype}")
    if output.ndim == target.ndim + 1 and output.shape[:-1] == target.shape:
        return output.reshape(-1, output.shape[-1]), target.reshape(-1)
    if need_scores or output.shape != target.shape:
        want = f"{target.shape + (-1,)} (scores)" + ("" if need_scores else f" or {target.shape} (labels)")
        raise ValueError(f"metrics: output of shape {output.shape} does not match target of shape "
                         f"{target.shape}; expected {want}")
    return None, target.reshape(-1)


def _labels(output, target):
    """(predicted labels, target labels, number of score columns or None), labels flat int64."""
    scores, target = _scores_and_labels(output, target)
    pred = _numpy(output).reshape(-1) if scores is None else scores.argmax(-1)
    columns = None if scores is None else scores.shape[1]
    return pred.astype(np.int64, copy=False), target.astype(np.int64, copy=False), columns


def _check_labels(labels, num_classes, what):
    if labels.size and labels.min() < 0:
        raise ValueError(f"metrics: {what} labels must be >= 0, got {labels.min()}")
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise ValueError(f"metrics: {what} label {labels.max()} is out of range for {num_classes} classes")


def _check_average(average):
    if average not in AVERAGES:
        raise ValueError(f"metrics: average must be one of {AVERAGES}, got {average!r}")


# ---- plain functions ------------------------------------------------------------------------

def accuracy(output, target):
    """Fraction of samples whose predicted class (argmax of the scores) equals the target."""
    pred, target, _ = _labels(output, target)
    return float((pred == target).mean()) if target.size else 0.0


def top_k_accuracy(output, target, k=5):
    """Fraction of samples whose target is among the k highest scores. A target counts when fewer
    than k classes score strictly higher than it (ties go in the sample's favour)."""
    scores, target = _scores_and_labels(output, target, need_scores=True)
    return _top_k_correct(scores, target, k) / target.size if target.size else 0.0


def _top_k_correct(scores, target, k):
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k_accuracy: k must be a positive integer, got {k!r}")
    _check_labels(target, scores.shape[1], "target")
    mine = scores[np.arange(target.size), target]
    higher = (scores > mine[:, None]).sum(1)
    return int((higher < k).sum())


def confusion_matrix(output, target, num_classes=None):
    """int64 [C, C]: entry [i, j] counts samples of true class i predicted as class j. C is
    num_classes, else the number of score columns, else 1 + the largest label seen."""
    pred, target, columns = _labels(output, target)
    if num_classes is None:
        num_classes = columns or int(max(pred.max(initial=-1), target.max(initial=-1))) + 1
    _check_labels(target, num_classes, "target")
    _check_labels(pred, num_classes, "predicted")
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _ratio(num, den):
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def scores_from_confusion(cm, average="macro"):
    """(precision, recall, F1) from a confusion matrix (true rows, predicted columns): floats for
    average='macro'|'micro'|'weighted', per-class float64 arrays for average=None."""
    _check_average(average)
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    predicted, support = cm.sum(0), cm.sum(1)
    if average == "micro":
        p, r = _ratio(tp.sum(), predicted.sum()), _ratio(tp.sum(), support.sum())
        return float(p), float(r), float(_ratio(2 * p * r, p + r))
    p, r = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * p * r, p + r)
    if average is None:
        return p, r, f1
    if average == "weighted":
        weights = support
    else:  # macro: the classes that occur in the targets or the predictions
        weights = ((support + predicted) > 0).astype(np.float64)
    if weights.sum() == 0:
        return 0.0, 0.0, 0.0
    return tuple(float(np.average(v, weights=weights)) for v in (p, r, f1))


def precision_recall_f1(output, target, average="macro", num_classes=None):
    """(precision, recall, F1): floats for average='macro'|'micro'|'weighted', per-class float64
    arrays for average=None."""
    _check_average(average)
    return scores_from_confusion(confusion_matrix(output, target, num_classes), average)


def precision(output, target, average="macro", num_classes=None):
    return precision_recall_f1(output, target, average, num_classes)[0]


def recall(output, target, average="macro", num_classes=None):
    return precision_recall_f1(output, target, average, num_classes)[1]


def f1_score(output, target, average="macro", num_classes=None):
    return precision_recall_f1(output, target, average, num_classes)[2]


# ---- streaming metrics ----------------------------------------------------------------------

class Metric:
    """update(output, target) per batch, compute() for all batches since reset(). state_dict()
    holds the accumulated counts, so a resumed run continues the same figures."""

    name = "metric"

    def reset(self):
        raise NotImplementedError

    def update(self, output, target):
        raise NotImplementedError

    def compute(self):
        raise NotImplementedError

    def state_dict(self):
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in vars(self).items()
                if k in self._state_keys}

    def load_state_dict(self, state):
        for k in self._state_keys:
            v = state[k]
            setattr(self, k, np.asarray(v, dtype=np.int64) if isinstance(v, list) else v)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Accuracy(Metric):
    name = "accuracy"
    _state_keys = ("correct", "total")

    def __init__(self):
        self.reset()

    def reset(self):
        self.correct, self.total = 0, 0

    def update(self, output, target):
        pred, target, _ = _labels(output, target)
        self.correct += int((pred == target).sum())
        self.total += target.size

    def compute(self):
        return self.correct / self.total if self.total else 0.0


class TopKAccuracy(Metric):
    _state_keys = ("correct", "total")

    def __init__(self, k=5):
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"TopKAccuracy: k must be a positive integer, got {k!r}")
        self.k, self.name = k, f"top{k}_accuracy"
        self.reset()

    def reset(self):
        self.correct, self.total = 0, 0

    def update(self, output, target):
        scores, target = _scores_and_labels(output, target, need_scores=True)
        self.correct += _top_k_correct(scores, target, self.k)
        self.total += target.size

    def compute(self):
        return self.correct / self.total if self.total else 0.0


class ConfusionMatrix(Metric):
    """Accumulates the confusion matrix; with num_classes=None it takes the number of score
    columns of the first batch, or grows to fit the largest label."""

    name = "confusion_matrix"
    _state_keys = ("matrix",)

    def __init__(self, num_classes=None):
        self.num_classes = num_classes
        self.reset()

    def reset(self):
        n = self.num_classes or 0
        self.matrix = np.zeros((n, n), dtype=np.int64)

    def update(self, output, target):
        batch = confusion_matrix(output, target, self.num_classes)
        n = max(len(self.matrix), len(batch))
        if len(self.matrix) < n:
            self.matrix = np.pad(self.matrix, (0, n - len(self.matrix)))
        self.matrix[:len(batch), :len(batch)] += batch

    def compute(self):
        return self.matrix.copy()

    def load_state_dict(self, state):
        flat = np.asarray(state["matrix"], dtype=np.int64).reshape(-1)
        n = int(round(flat.size ** 0.5))
        self.matrix = flat.reshape(n, n)


class _FromConfusion(ConfusionMatrix):
    """Precision, recall or F1 derived from an accumulated confusion matrix."""

    _index = None

    def __init__(self, average="macro", num_classes=None):
        _check_average(average)
        self.average = average
        self.name = self.base_name if average == "macro" else f"{self.base_name}_{average or 'per_class'}"
        super().__init__(num_classes)

    def compute(self):
        return scores_from_confusion(self.matrix, self.average)[self._index]


class Precision(_FromConfusion):
    base_name, _index = "precision", 0


class Recall(_FromConfusion):
    base_name, _index = "recall", 1


class F1Score(_FromConfusion):
    base_name, _index = "f1", 2


_BY_NAME = {"accuracy": Accuracy, "acc": Accuracy, "precision": Precision, "recall": Recall, "f1": F1Score,
            "confusion_matrix": ConfusionMatrix}


def get_metric(spec):
    """A Metric from a Metric (returned as is) or a name: 'accuracy', 'top5_accuracy' (any k),
    'precision', 'recall', 'f1' (macro), with '_micro' or '_weighted' appended for those averages,
    'confusion_matrix'."""
    if isinstance(spec, Metric):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a metric must be a Metric or a name, got {type(spec).__name__}")
    name = spec.lower()
    if name.startswith("top") and name.endswith("_accuracy") and name[3:-9].isdigit():
        return TopKAccuracy(int(name[3:-9]))
    base, _, average = name.partition("_")
    if base in ("precision", "recall", "f1") and average in ("", "macro", "micro", "weighted"):
        return _BY_NAME[base](average or "macro")
    if name in _BY_NAME:
        return _BY_NAME[name]()
    raise ValueError(f"unknown metric '{spec}' (known: accuracy, topK_accuracy such as top5_accuracy, precision, "
                     "recall, f1 with optional _micro/_weighted, confusion_matrix)")
