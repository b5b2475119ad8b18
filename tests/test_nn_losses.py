"""lepton.nn losses (functional and module forms): values and input gradients against torch, and errors."""

import numpy as np
import pytest

import lepton
from lepton import nn
from lepton.autograd import gradcheck
from lepton.nn import functional as F
from conftest import assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional

F64 = dict(rtol=1e-9, atol=1e-11)
REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(0)


def both(a):
    """The same float64 array as a lepton tensor and a torch tensor, both requiring grad."""
    return lepton.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def plain(a):
    return lepton.tensor(a), torch.tensor(a)


def check(lepton_loss, torch_loss, inputs):
    """Forward values and the gradients of every (lepton, torch) input pair must agree."""
    out, tout = lepton_loss(), torch_loss()
    assert_close(out, tout.detach(), **F64)
    g = rng.standard_normal(tout.shape)
    (out * lepton.tensor(g)).sum().backward()
    (tout * torch.from_numpy(g)).sum().backward()
    for x, tx in inputs:
        assert_close(x.grad, tx.grad, **F64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_pointwise_losses(name, reduction):
    (x, tx), (y, ty) = both(rng.standard_normal((4, 5))), both(rng.standard_normal((4, 5)))
    check(lambda: getattr(F, name)(x, y, reduction=reduction), lambda: getattr(TF, name)(tx, ty, reduction=reduction),
          [(x, tx), (y, ty)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction):
    (p, tp) = both(rng.uniform(0.02, 0.98, (6, 3)))
    y, ty = plain(rng.uniform(0, 1, (6, 3)))
    w, tw = plain(rng.uniform(0.5, 2, (3,)))
    check(lambda: F.binary_cross_entropy(p, y, w, reduction),
          lambda: TF.binary_cross_entropy(tp, ty, tw, reduction=reduction), [(p, tp)])


def test_binary_cross_entropy_clamps_logs_like_torch():
    p, tp = plain(np.array([0.0, 1.0, 0.5]))
    y, ty = plain(np.array([1.0, 0.0, 1.0]))
    assert_close(F.binary_cross_entropy(p, y, reduction="none"), TF.binary_cross_entropy(tp, ty, reduction="none"))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_with_logits(reduction, weighted):
    x, tx = both(rng.standard_normal((5, 4)) * 4)
    y, ty = plain(rng.uniform(0, 1, (5, 4)))
    w, tw = plain(rng.uniform(0.5, 2, (4,))) if weighted else (None, None)
    pw, tpw = plain(rng.uniform(0.5, 3, (4,))) if weighted else (None, None)
    check(lambda: F.binary_cross_entropy_with_logits(x, y, w, reduction, pw),
          lambda: TF.binary_cross_entropy_with_logits(tx, ty, tw, reduction=reduction, pos_weight=tpw), [(x, tx)])


def test_bce_with_logits_is_stable_and_exact_at_zero():
    x, tx = both(np.array([-1000.0, -30.0, 0.0, 0.0, 30.0, 1000.0]))
    y, ty = plain(np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0]))
    check(lambda: F.binary_cross_entropy_with_logits(x, y, reduction="none"),
          lambda: TF.binary_cross_entropy_with_logits(tx, ty, reduction="none"), [(x, tx)])
    z = lepton.zeros(2, requires_grad=True)  # zero logits (e.g. a zero-initialised head) must still learn
    F.binary_cross_entropy_with_logits(z, lepton.tensor([1.0, 0.0]), reduction="sum").backward()
    np.testing.assert_allclose(z.grad.numpy(), [-0.5, 0.5])


def test_logsigmoid_gradcheck():
    assert gradcheck(F.logsigmoid, [lepton.tensor([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=lepton.float64,
                                                  requires_grad=True)])


def class_inputs(shape, n_classes, ignore=None, seed=1):
    """Logits of `shape` (class dim 1, or 0 when 1-D) and int64 class targets, some set to `ignore`."""
    r = np.random.default_rng(seed)
    logits = r.standard_normal(shape) * 3
    class_dim = 0 if len(shape) == 1 else 1
    target = r.integers(0, n_classes, size=shape[:class_dim] + shape[class_dim + 1:])
    if ignore is not None:
        target.flat[::3] = ignore
    return logits, target.astype(np.int64)


CLASS_CASES = {
    "2d": dict(shape=(6, 4)),
    "2d_weight": dict(shape=(6, 4), weight=True),
    "2d_ignore": dict(shape=(6, 4), ignore=-100),
    "2d_ignore_class_1_weight": dict(shape=(6, 4), ignore=1, weight=True),
    "4d": dict(shape=(2, 3, 4, 5)),
    "4d_weight_ignore": dict(shape=(2, 3, 4, 5), ignore=-100, weight=True),
    "unbatched": dict(shape=(5,)),
}


def class_case(name):
    case = CLASS_CASES[name]
    shape = case["shape"]
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    logits, target = class_inputs(shape, n_classes, case.get("ignore"))
    if case.get("ignore") is not None and case["ignore"] != -100:
        target[target == -100] = case["ignore"]
    weight = np.linspace(0.5, 2.0, n_classes) if case.get("weight") else None
    kwargs = dict(ignore_index=case.get("ignore", -100))
    return logits, target, weight, kwargs


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CLASS_CASES))
def test_cross_entropy(case, reduction):
    logits, target, weight, kwargs = class_case(case)
    x, tx = both(logits)
    w, tw = plain(weight) if weight is not None else (None, None)
    check(lambda: F.cross_entropy(x, lepton.tensor(target), w, reduction=reduction, **kwargs),
          lambda: TF.cross_entropy(tx, torch.from_numpy(target), tw, reduction=reduction, **kwargs), [(x, tx)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["2d", "2d_weight", "2d_ignore_class_1_weight", "4d_weight_ignore"])
def test_cross_entropy_label_smoothing(case, reduction):
    logits, target, weight, kwargs = class_case(case)
    x, tx = both(logits)
    w, tw = plain(weight) if weight is not None else (None, None)
    check(lambda: F.cross_entropy(x, lepton.tensor(target), w, reduction=reduction, label_smoothing=0.2, **kwargs),
          lambda: TF.cross_entropy(tx, torch.from_numpy(target), tw, reduction=reduction, label_smoothing=0.2,
                                   **kwargs), [(x, tx)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_probability_targets(reduction, smoothing):
    x, tx = both(rng.standard_normal((5, 4)))
    probs = rng.dirichlet(np.ones(4), size=5)
    p, tp = plain(probs)
    w, tw = plain(np.array([1.0, 2.0, 0.5, 1.5]))
    check(lambda: F.cross_entropy(x, p, w, reduction=reduction, label_smoothing=smoothing),
          lambda: TF.cross_entropy(tx, tp, tw, reduction=reduction, label_smoothing=smoothing), [(x, tx)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["2d", "2d_weight", "2d_ignore_class_1_weight", "4d_weight_ignore", "unbatched"])
def test_nll_loss(case, reduction):
    logits, target, weight, kwargs = class_case(case)
    logp = logits - np.log(np.exp(logits).sum(axis=0 if logits.ndim == 1 else 1, keepdims=True))
    x, tx = both(logp)
    w, tw = plain(weight) if weight is not None else (None, None)
    check(lambda: F.nll_loss(x, lepton.tensor(target), w, reduction=reduction, **kwargs),
          lambda: TF.nll_loss(tx, torch.from_numpy(target), tw, reduction=reduction, **kwargs), [(x, tx)])


def test_cross_entropy_handles_extreme_and_masked_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [0.0, -np.inf, 5.0]])
    target = np.array([1, 2])
    x, tx = both(logits)
    check(lambda: F.cross_entropy(x, lepton.tensor(target)), lambda: TF.cross_entropy(tx, torch.from_numpy(target)),
          [(x, tx)])
    assert np.isfinite(x.grad.numpy()).all()


def test_cross_entropy_gradcheck():
    logits, target, weight, kwargs = class_case("2d_ignore_class_1_weight")
    x = lepton.tensor(logits, requires_grad=True)
    assert gradcheck(lambda x: F.cross_entropy(x, lepton.tensor(target), lepton.tensor(weight), label_smoothing=0.1,
                                               **kwargs), [x])


def test_loss_modules_match_functional():
    x, tx = both(rng.standard_normal((6, 4)))
    target = np.array([0, 3, 1, 2, 2, 1])
    w = np.array([1.0, 0.5, 2.0, 1.0])
    module = nn.CrossEntropyLoss(weight=lepton.tensor(w), ignore_index=3, reduction="sum", label_smoothing=0.05)
    assert [n for n, _ in module.named_buffers()] == ["weight"]
    check(lambda: module(x, lepton.tensor(target)),
          lambda: torch.nn.CrossEntropyLoss(torch.tensor(w), ignore_index=3, reduction="sum", label_smoothing=0.05)(
              tx, torch.from_numpy(target)), [(x, tx)])
    logp = F.log_softmax(lepton.tensor(rng.standard_normal((6, 4))), dim=1)
    assert_close(nn.NLLLoss()(logp, lepton.tensor(target)), F.nll_loss(logp, lepton.tensor(target)), **F64)
    a, b = lepton.tensor(rng.uniform(0.1, 0.9, (3, 2))), lepton.tensor(rng.uniform(0, 1, (3, 2)))
    assert_close(nn.MSELoss(reduction="sum")(a, b), F.mse_loss(a, b, reduction="sum"), **F64)
    assert_close(nn.L1Loss()(a, b), F.l1_loss(a, b), **F64)
    assert_close(nn.BCELoss()(a, b), F.binary_cross_entropy(a, b), **F64)
    pw = lepton.tensor([2.0, 0.5], dtype=lepton.float64)
    assert_close(nn.BCEWithLogitsLoss(pos_weight=pw)(a, b), F.binary_cross_entropy_with_logits(a, b, pos_weight=pw),
                 **F64)
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        nn.MSELoss(reduction="avg")


def test_loss_errors():
    x = lepton.randn(3, 4)
    with pytest.raises(TypeError, match="int64 tensor of class indices, got lepton.int32"):
        F.cross_entropy(x, lepton.tensor([0, 1, 2], dtype=lepton.int32))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(2\)"):
        F.cross_entropy(x, lepton.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"expected target of shape \(2, 5\)"):
        F.cross_entropy(lepton.randn(2, 4, 5), lepton.zeros(2, 4, dtype=lepton.int64))
    with pytest.raises(IndexError, match="target 4 is out of bounds for 4 classes"):
        F.cross_entropy(x, lepton.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match="target -1 is out of bounds"):
        F.nll_loss(x, lepton.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="weight must be a 1-D tensor of 4 class weights"):
        F.cross_entropy(x, lepton.tensor([0, 1, 2]), weight=lepton.ones(3))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, lepton.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="0-d"):
        F.cross_entropy(lepton.tensor(1.0), lepton.tensor(0))
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        F.cross_entropy(x, lepton.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        F.mse_loss(lepton.tensor([1, 2]), lepton.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"target size \(3,\) must be the same as input size \(3, 4\)"):
        F.binary_cross_entropy_with_logits(x, lepton.zeros(3))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(x, lepton.zeros(3, 4))
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(x, lepton.zeros(4))
