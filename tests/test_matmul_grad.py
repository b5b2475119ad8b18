"""Gradients of matmul, linear, bmm and addmm: finite differences in float64 and torch parity."""

import numpy as np
import pytest

import lepton
from lepton.autograd import gradcheck

torch = pytest.importorskip("torch")

SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (5, 3, 4)), ((4, 2, 3), (3, 2))]


def leaf(shape, seed):
    return lepton.from_numpy(np.random.default_rng(seed).standard_normal(shape)).requires_grad_()


@pytest.mark.parametrize("sa,sb", SHAPES)
def test_matmul_gradcheck(sa, sb):
    assert gradcheck(lambda a, b: lepton.matmul(a, b), [leaf(sa, 0), leaf(sb, 1)])


@pytest.mark.parametrize("transposed", [False, True])
def test_matmul_of_transposed_views(transposed):
    a = leaf((4, 3), 2)
    assert gradcheck(lambda a: (a.T @ a) if transposed else (a @ a.T), [a])


@pytest.mark.parametrize("activation", ["none", "relu", "gelu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xshape", [(5, 3), (2, 4, 3), (3,)])
def test_linear_matches_torch(activation, bias, xshape):
    rng = np.random.default_rng(3)
    x_np, w_np, b_np = rng.standard_normal(xshape), rng.standard_normal((4, 3)), rng.standard_normal(4)
    x, w = lepton.from_numpy(x_np).requires_grad_(), lepton.from_numpy(w_np).requires_grad_()
    b = lepton.from_numpy(b_np).requires_grad_() if bias else None
    tx, tw = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    tb = torch.tensor(b_np, requires_grad=True) if bias else None
    out = lepton._C.linear(x, w, b, activation)
    tout = torch.nn.functional.linear(tx, tw, tb)
    tout = {"none": tout, "relu": torch.relu(tout), "gelu": torch.nn.functional.gelu(tout)}[activation]
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(4).standard_normal(tout.shape)
    out.backward(lepton.from_numpy(g))
    tout.backward(torch.tensor(g))
    for ours, theirs in [(x, tx), (w, tw)] + ([(b, tb)] if bias else []):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_bmm_and_addmm_gradcheck():
    assert gradcheck(lambda a, b: lepton.bmm(a, b), [leaf((2, 3, 4), 5), leaf((2, 4, 2), 6)])
    assert gradcheck(lambda i, a, b: lepton._C.addmm(i, a, b, 0.5, 2.0) if hasattr(lepton._C, "addmm") else
                     i * 0.5 + (a @ b) * 2.0, [leaf((2,), 7), leaf((3, 4), 8), leaf((4, 2), 9)])


def test_double_backward_through_matmul():
    a = leaf((3, 3), 10)
    (g,) = lepton.autograd.grad((a @ a).sum(), [a], create_graph=True)
    (gg,) = lepton.autograd.grad(g.pow(2).sum(), [a])
    ta = torch.tensor(a.detach().numpy(), requires_grad=True)
    (tg,) = torch.autograd.grad((ta @ ta).sum(), [ta], create_graph=True)
    (tgg,) = torch.autograd.grad(tg.pow(2).sum(), [ta])
    np.testing.assert_allclose(gg.numpy(), tgg.numpy(), rtol=1e-9)
