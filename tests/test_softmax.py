"""Fused softmax, log_softmax and cross-entropy kernels against torch: forward, backward, bad input."""
import numpy as np
import pytest

import lepton
from lepton import _C
import lepton.nn.functional as F

torch = pytest.importorskip("torch")

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
SHAPES = [(1, 1), (3, 1), (7, 13), (2, 3, 5), (4, 3000)]


def _inputs(shape, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype) * 3
    return lepton.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dim", [-1, 0])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_matches_torch(name, dim, shape, dtype):
    a, t = _inputs(shape, dtype)
    y, yt = getattr(F, name)(a, dim), getattr(torch.nn.functional, name)(t, dim)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), **TOL[dtype])
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y.backward(lepton.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_non_contiguous_and_infinite(name):
    x = np.random.default_rng(2).standard_normal((6, 9)).astype(np.float32)
    x[1, 3] = x[4, :5] = -np.inf
    a, t = lepton.tensor(x).transpose(0, 1), torch.tensor(x).transpose(0, 1)
    np.testing.assert_allclose(getattr(_C, name)(a, 1).numpy(), getattr(torch, name)(t, 1).numpy(), rtol=1e-5, atol=1e-6)


def test_double_backward_is_refused():
    a = lepton.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        lepton.autograd.grad(F.log_softmax(a, -1).sum(), [a], create_graph=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 1), (8, 7), (64, 1000), (3, 4, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_matches_torch(smoothing, reduction, shape, dtype):
    a, t = _inputs(shape, dtype)
    tshape = shape[:1] + shape[2:]
    target = np.random.default_rng(3).integers(0, shape[1], tshape)
    target.reshape(-1)[::3] = -1  # ignored
    kw = dict(ignore_index=-1, reduction=reduction, label_smoothing=smoothing)
    loss = F.cross_entropy(a, lepton.tensor(target), **kw)
    lt = torch.nn.functional.cross_entropy(t, torch.tensor(target), **kw)
    np.testing.assert_allclose(loss.detach().numpy(), lt.detach().numpy(), **TOL[dtype])
    g = np.random.default_rng(4).standard_normal(lt.shape).astype(dtype)
    loss.backward(lepton.tensor(g))
    lt.backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), **TOL[dtype])


def test_cross_entropy_rows_with_infinite_logits():
    x = np.array([[0.0, -np.inf, 2.0], [1.0, 1.0, -np.inf]], np.float32)
    loss = _C.cross_entropy_rows(lepton.tensor(x), lepton.tensor(np.array([2, 0])), -100, 0.0)
    lt = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor([2, 0]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), lt.numpy(), rtol=1e-6)


def test_cross_entropy_bad_input():
    x = lepton.tensor(np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="int64"):
        F.cross_entropy(x, lepton.tensor(np.zeros(4, np.int32)))
    with pytest.raises(TypeError, match="int64"):
        _C.cross_entropy_rows(x, lepton.tensor(np.zeros(4, np.int32)), -100, 0.0)
    with pytest.raises(ValueError, match="shape"):
        _C.cross_entropy_rows(x, lepton.tensor(np.zeros(3, np.int64)), -100, 0.0)
    with pytest.raises(ValueError):
        F.cross_entropy(x, lepton.tensor(np.zeros(3, np.int64)))
    with pytest.raises(IndexError, match="target 3 is out of bounds for 3 classes"):
        F.cross_entropy(x, lepton.tensor(np.array([0, 1, 3, 2])))
    with pytest.raises(IndexError, match="target -2"):
        _C.cross_entropy_rows(x, lepton.tensor(np.array([0, 1, -2, 2])), -100, 0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        _C.cross_entropy_rows(x, lepton.tensor(np.zeros(4, np.int64)), -100, 1.5)
