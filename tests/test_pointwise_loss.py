"""The fused pointwise-loss kernels (mse, l1, binary_cross_entropy, binary_cross_entropy_with_logits)
against torch at odd sizes: values, input (and target) gradients, weights and pos_weight, the paths
that fall back to composed ops, the reference kernels and bad input.

Tolerances: float32 rtol 1e-5, atol 1e-6 (reduced sums: rtol 1e-5 after summing in double);
float64 rtol 1e-10, atol 1e-12.
"""
import numpy as np
import pytest

import lepton
from lepton import _C
import lepton.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
SIZES = [(1,), (17,), (3, 5), (4097,), (2, 3, 1000)]
NAMES = ["mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]


def inputs(name, shape, dtype, seed=0):
    r = np.random.default_rng(seed)
    if name == "binary_cross_entropy":
        x = r.uniform(0.01, 0.99, shape)
    elif name == "binary_cross_entropy_with_logits":
        x = r.standard_normal(shape) * 5
    else:
        x = r.standard_normal(shape)
    y = r.uniform(0, 1, shape) if name.startswith("binary") else r.standard_normal(shape)
    return x.astype(dtype), y.astype(dtype)


def run(fn, x, y, dtype, target_grad, reduction, **kw):
    """Loss, input gradient and target gradient (or None) for one framework."""
    xt, yt = fn.tensor(x), fn.tensor(y)
    xt.requires_grad_(True)
    yt.requires_grad_(target_grad)
    loss = getattr(F if fn is lepton else TF, kw.pop("name"))(xt, yt, reduction=reduction, **kw)
    g = np.random.default_rng(9).standard_normal(tuple(loss.shape)).astype(dtype)
    loss.backward(fn.tensor(g))
    return [loss.detach().numpy(), xt.grad.numpy(), yt.grad.numpy() if target_grad else None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_fused_losses_match_torch(name, shape, reduction, dtype):
    x, y = inputs(name, shape, dtype)
    target_grad = name in ("mse_loss", "l1_loss")
    ours = run(lepton, x, y, dtype, target_grad, reduction, name=name)
    ref = run(torch, x, y, dtype, target_grad, reduction, name=name)
    for a, b in zip(ours, ref):
        if b is not None:
            np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("pos_shape", [None, (5,), (1,), (1, 5), (4, 5), (4, 1)])
@pytest.mark.parametrize("weight_shape", [None, (5,), (4, 1), (4, 5)])
def test_bce_with_logits_weights_match_torch(weight_shape, pos_shape):
    r = np.random.default_rng(1)
    x, y = inputs("binary_cross_entropy_with_logits", (4, 5), np.float64)
    w = r.uniform(0.5, 2, weight_shape) if weight_shape else None
    pw = r.uniform(0.5, 3, pos_shape) if pos_shape else None
    for reduction in ("mean", "none"):
        kw = dict(name="binary_cross_entropy_with_logits", weight=w, pos_weight=pw)
        ours = run(lepton, x, y, np.float64, False, reduction,
                   **{k: (lepton.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()})
        ref = run(torch, x, y, np.float64, False, reduction,
                  **{k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()})
        for a, b in zip(ours[:2], ref[:2]):
            np.testing.assert_allclose(a, b, **TOL[np.float64])


def test_bce_weight_broadcast_and_extremes_match_torch():
    x = np.array([[0.0, 1e-30, 0.5, 1 - 1e-7, 1.0]] * 2, np.float32)
    y = np.array([[1.0, 0.0, 0.3, 1.0, 0.0]] * 2, np.float32)
    w = np.array([[2.0], [0.5]], np.float32)
    ours = F.binary_cross_entropy(lepton.tensor(x), lepton.tensor(y), lepton.tensor(w), reduction="none")
    ref = TF.binary_cross_entropy(torch.tensor(x), torch.tensor(y), torch.tensor(w), reduction="none")
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-5)


def test_fused_and_composed_paths_agree():
    # a target that requires grad (bce), a float16 input and a broadcast target take the composed ops
    x, y = inputs("binary_cross_entropy_with_logits", (6, 7), np.float64)
    yl = lepton.tensor(y, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(lepton.tensor(x), yl)
    tloss = TF.binary_cross_entropy_with_logits(torch.tensor(x), yt)
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
    np.testing.assert_allclose(yl.grad.numpy(), yt.grad.numpy(), rtol=1e-10)
    h = F.mse_loss(lepton.tensor(x).half(), lepton.tensor(y).half())
    assert h.dtype == lepton.float16
    np.testing.assert_allclose(float(h), ((x - y) ** 2).mean(), rtol=5e-3)
    with pytest.warns(UserWarning, match="different to the input size"):
        b = F.mse_loss(lepton.tensor(x), lepton.tensor(y[0]))
    np.testing.assert_allclose(b.item(), ((x - y[0]) ** 2).mean(), rtol=1e-12)


@pytest.mark.parametrize("rows", [3, 40])  # 40 x 4099: split between threads
@pytest.mark.parametrize("name", NAMES)
def test_fast_kernels_match_reference(name, rows):
    x, y = inputs(name, (rows, 4099), np.float32)
    kw = {"pos_weight": lepton.tensor(np.linspace(0.5, 2, 4099, dtype=np.float32))} \
        if name == "binary_cross_entropy_with_logits" else {}

    def go(reduction):
        xt = lepton.tensor(x, requires_grad=True)
        loss = getattr(F, name)(xt, lepton.tensor(y), reduction=reduction, **kw)
        loss.backward(lepton.ones(loss.shape))
        return loss.detach().numpy(), xt.grad.numpy()

    for reduction in ("sum", "none"):
        fast = go(reduction)
        _C._set_norm_reference(True)
        try:
            ref = go(reduction)
        finally:
            _C._set_norm_reference(False)
        for a, b in zip(fast, ref):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name):
    x, y = inputs(name, (3, 4), np.float64, seed=4)
    xt = lepton.tensor(x, requires_grad=True)
    kw = {"pos_weight": lepton.tensor([0.5, 1.0, 2.0, 3.0], dtype=lepton.float64)} \
        if name == "binary_cross_entropy_with_logits" else {}
    for reduction in ("none", "mean"):
        assert lepton.autograd.gradcheck(lambda x: getattr(F, name)(x, lepton.tensor(y), reduction=reduction, **kw), [xt])


def test_empty_and_errors():
    e = lepton.zeros(0)
    assert np.isnan(F.mse_loss(e, e).item()) and F.mse_loss(e, e, reduction="sum").item() == 0  # as torch
    x = lepton.tensor([0.2, 1.5, 0.3])
    with pytest.raises(RuntimeError, match="between 0 and 1, got 1.5"):
        F.binary_cross_entropy(x, lepton.zeros(3))
    with pytest.raises(RuntimeError, match="between 0 and 1, got nan"):
        F.binary_cross_entropy(lepton.tensor([0.5, float("nan")]), lepton.zeros(2))
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match=r"shapes \[2\] and \[3\] cannot be broadcast"):
        F.binary_cross_entropy_with_logits(x, x, weight=lepton.ones(2))
    with pytest.raises(ValueError, match=r"weight of shape \[2, 3\] does not broadcast to the input's shape \[3\]"):
        F.binary_cross_entropy_with_logits(x, x, weight=lepton.ones(2, 3))
    with pytest.raises(ValueError, match="target size"):
        _C.pointwise_loss("mse", x, lepton.zeros(4))
    with pytest.raises(ValueError, match="unknown pointwise loss"):
        _C.pointwise_loss("huber", x, x)
    with pytest.raises(NotImplementedError, match="does not differentiate target"):
        _C.pointwise_loss("bce", x, lepton.zeros(3, requires_grad=True))
    a = lepton.tensor([0.5], requires_grad=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        lepton.autograd.grad(F.mse_loss(a, lepton.zeros(1)), [a], create_graph=True)
