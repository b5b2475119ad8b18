"""lepton.train.metrics: hand-computed values, a loop-based reference on random data, streaming
against whole-array figures, and bad inputs."""

import json

import numpy as np
import pytest

import lepton
from lepton.train import metrics as M

# 3 classes; true rows, predicted columns: [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
TARGET = [0, 0, 1, 1, 2, 2, 2]
PRED = [0, 1, 1, 1, 2, 0, 2]


def one_hot_scores(pred, classes):
    s = np.full((len(pred), classes), -1.0, dtype=np.float32)
    s[np.arange(len(pred)), pred] = 1.0
    return s


def test_hand_computed_confusion_and_averages():
    cm = M.confusion_matrix(PRED, TARGET)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    assert cm.dtype == np.int64
    p, r, f1 = M.precision_recall_f1(PRED, TARGET, average=None)
    np.testing.assert_allclose(p, [1 / 2, 2 / 3, 1.0])
    np.testing.assert_allclose(r, [1 / 2, 1.0, 2 / 3])
    np.testing.assert_allclose(f1, [0.5, 0.8, 0.8])
    assert M.precision(PRED, TARGET) == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert M.recall(PRED, TARGET) == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert M.f1_score(PRED, TARGET) == pytest.approx(0.7)
    for fn in (M.precision, M.recall, M.f1_score):  # single-label micro averages are the accuracy
        assert fn(PRED, TARGET, average="micro") == pytest.approx(5 / 7)
    assert M.precision(PRED, TARGET, average="weighted") == pytest.approx((2 * 0.5 + 2 * 2 / 3 + 3 * 1) / 7)
    assert M.recall(PRED, TARGET, average="weighted") == pytest.approx(5 / 7)
    assert M.f1_score(PRED, TARGET, average="weighted") == pytest.approx((2 * 0.5 + 2 * 0.8 + 3 * 0.8) / 7)
    assert M.accuracy(PRED, TARGET) == pytest.approx(5 / 7)
    # scores (argmax) and lepton tensors give the same figures as labels
    scores = lepton.from_numpy(one_hot_scores(PRED, 3))
    assert M.accuracy(scores, lepton.tensor(TARGET)) == pytest.approx(5 / 7)
    np.testing.assert_array_equal(M.confusion_matrix(scores, lepton.tensor(TARGET)), cm)


def test_hand_computed_top_k():
    scores = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.8, 0.1, 0.1]])
    target = np.array([2, 0, 1, 0, 0])
    # ranks (classes scoring strictly higher): 1, 1, 1, 2, 0; ties count in the sample's favour
    assert M.top_k_accuracy(scores, target, 1) == pytest.approx(1 / 5)
    assert M.top_k_accuracy(scores, target, 2) == pytest.approx(4 / 5)
    assert M.top_k_accuracy(scores, target, 3) == pytest.approx(1.0)
    assert M.top_k_accuracy(scores, target, 1) == pytest.approx(M.accuracy(scores, target))


def test_absent_and_empty_classes():
    # class 3 neither occurs nor is predicted: macro averages ignore it, per-class figures are 0
    assert M.f1_score(PRED, TARGET, num_classes=4) == pytest.approx(0.7)
    p, r, f1 = M.precision_recall_f1(PRED, TARGET, average=None, num_classes=4)
    assert p[3] == r[3] == f1[3] == 0.0
    # a class predicted but never true: precision 0 (zero tp), recall 0 (no support), still in macro
    p, r, _ = M.precision_recall_f1([1, 1], [0, 0], average=None)
    np.testing.assert_array_equal(p, [0.0, 0.0])
    np.testing.assert_array_equal(r, [0.0, 0.0])
    assert M.accuracy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)) == 0.0


def reference_prf(pred, target, classes):
    """Per-class precision/recall/F1 by counting, sample by sample."""
    out = []
    for c in range(classes):
        tp = sum(1 for p, t in zip(pred, target) if p == c and t == c)
        fp = sum(1 for p, t in zip(pred, target) if p == c and t != c)
        fn = sum(1 for p, t in zip(pred, target) if p != c and t == c)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        out.append((p, r, 2 * p * r / (p + r) if p + r else 0.0, tp + fn, tp + fp))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_against_counting_reference(seed):
    rng = np.random.default_rng(seed)
    classes, n = int(rng.integers(2, 8)), int(rng.integers(1, 80))
    scores = rng.standard_normal((n, classes)).astype(np.float32)
    target = rng.integers(0, classes, n)
    pred = scores.argmax(1).tolist()
    ref = reference_prf(pred, target.tolist(), classes)
    p, r, f1 = M.precision_recall_f1(scores, target, average=None)
    np.testing.assert_allclose(np.stack([p, r, f1], 1), [x[:3] for x in ref], rtol=1e-12)
    present = [x for x in ref if x[3] + x[4] > 0]
    macro = M.precision_recall_f1(scores, target, average="macro")
    np.testing.assert_allclose(macro, np.mean([x[:3] for x in present], 0), rtol=1e-12)
    support = np.array([x[3] for x in ref])
    weighted = M.precision_recall_f1(scores, target, average="weighted")
    np.testing.assert_allclose(weighted, (np.array([x[:3] for x in ref]) * support[:, None]).sum(0) / n, rtol=1e-12)
    for k in range(1, classes + 1):
        hits = sum(1 for s, t in zip(scores, target) if t in np.argsort(-s, kind="stable")[:k])
        assert M.top_k_accuracy(scores, target, k) == pytest.approx(hits / n)


def test_streaming_matches_whole_array_and_state_round_trip():
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((103, 5)).astype(np.float32)
    target = rng.integers(0, 5, 103)
    streaming = [M.Accuracy(), M.TopKAccuracy(2), M.Precision(), M.Recall("micro"), M.F1Score("weighted"),
                 M.ConfusionMatrix()]
    for lo in range(0, 103, 17):
        for m in streaming:
            m.update(lepton.from_numpy(scores[lo:lo + 17]), lepton.from_numpy(target[lo:lo + 17]))
    assert streaming[0].compute() == pytest.approx(M.accuracy(scores, target))
    assert streaming[1].compute() == pytest.approx(M.top_k_accuracy(scores, target, 2))
    assert streaming[2].compute() == pytest.approx(M.precision(scores, target))
    assert streaming[3].compute() == pytest.approx(M.recall(scores, target, "micro"))
    assert streaming[4].compute() == pytest.approx(M.f1_score(scores, target, "weighted"))
    np.testing.assert_array_equal(streaming[5].compute(), M.confusion_matrix(scores, target))
    assert [m.name for m in streaming] == ["accuracy", "top2_accuracy", "precision", "recall_micro", "f1_weighted",
                                           "confusion_matrix"]
    for m in streaming:  # a fresh metric loaded from the state continues the same figures
        fresh = M.get_metric(m.name)
        fresh.load_state_dict(json.loads(json.dumps(m.state_dict())))  # as a checkpoint stores it
        np.testing.assert_array_equal(fresh.compute(), m.compute())
        m.reset()
    assert streaming[0].compute() == 0.0 and streaming[5].compute().shape == (0, 0)


def test_sequence_shapes_and_growing_confusion_matrix():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 5, 7)).astype(np.float32)  # [B, T, V] as a language model
    target = rng.integers(0, 7, (2, 5))
    assert M.accuracy(logits, target) == pytest.approx((logits.argmax(-1) == target).mean())
    cm = M.ConfusionMatrix()  # labels only: grows to the largest label seen
    cm.update([0, 1], [1, 1])
    cm.update([3], [0])
    np.testing.assert_array_equal(cm.compute(), [[0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_get_metric_names():
    assert isinstance(M.get_metric("acc"), M.Accuracy)
    assert M.get_metric("top3_accuracy").k == 3
    assert M.get_metric("f1_micro").average == "micro"
    assert M.get_metric("precision").average == "macro"
    m = M.Accuracy()
    assert M.get_metric(m) is m


@pytest.mark.parametrize("call, match", [
    (lambda: M.accuracy(np.zeros((4, 3)), np.zeros(5, dtype=np.int64)), r"\(4, 3\).*\(5,\)"),
    (lambda: M.confusion_matrix([0, 3], [0, 1], num_classes=3), "label 3 is out of range for 3 classes"),
    (lambda: M.confusion_matrix([0, -1], [0, 1]), ">= 0"),
    (lambda: M.top_k_accuracy([0, 1], [0, 1], 1), "scores"),
    (lambda: M.top_k_accuracy(np.zeros((2, 3)), [0, 1], 0), "positive integer"),
    (lambda: M.precision([0], [0], average="binary"), "average must be one of"),
    (lambda: M.get_metric("auc"), "unknown metric 'auc'"),
    (lambda: M.TopKAccuracy(0), "positive integer"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="integer class labels, got dtype float64"):
        M.accuracy([0, 1], [0.0, 1.0])
    with pytest.raises(TypeError, match="Metric or a name"):
        M.get_metric(3)
