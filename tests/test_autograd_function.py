"""lepton.autograd.Function (torch.autograd.Function): Python forward/backward as one graph node,
checked against torch's own Function on the same programs."""

import numpy as np
import pytest
import torch

import lepton
from lepton.autograd import Function, once_differentiable


def scaled_square(F, engine):
    class ScaledSquare(F):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x * x * k

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * k_of(ctx) * x * g, None

    def k_of(ctx):
        return ctx.k

    return ScaledSquare


def two_outputs(F):
    class SinCos(F):
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_backward(x, y)
            return (x * y).sin(), (x + y).cos()

        @staticmethod
        def backward(ctx, ga, gb):
            x, y = ctx.saved_tensors
            da, db = (x * y).cos() * ga, -(x + y).sin() * gb
            return da * y + db, da * x + db

    return SinCos


@pytest.mark.parametrize("make", ["scaled_square", "two_outputs"])
def test_gradients_match_torch_function(make):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2)]
    results = []
    for engine, F in ((lepton, Function), (torch, torch.autograd.Function)):
        a, b = (engine.tensor(v, requires_grad=True) for v in xs)
        if make == "scaled_square":
            out = scaled_square(F, engine).apply(a, 1.5) + b
        else:
            u, v = two_outputs(F).apply(a, b)
            out = u * 2 + v * v
        out.sum().backward()
        results.append([out.detach().numpy(), a.grad.numpy(), b.grad.numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_needs_input_grad_and_non_tensor_arguments():
    seen = {}

    class Mul(Function):
        @staticmethod
        def forward(ctx, x, y, note):
            seen["needs"], seen["note"] = ctx.needs_input_grad, note
            ctx.save_for_backward(x, y)
            return x * y

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved_tensors
            return (g * y if ctx.needs_input_grad[0] else None), (g * x if ctx.needs_input_grad[1] else None), None

    x, y = lepton.ones(2, requires_grad=True), lepton.full((2,), 3.0)
    Mul.apply(x, y, "hi").sum().backward()
    assert seen == {"needs": (True, False, False), "note": "hi"}
    assert x.grad.tolist() == [3.0, 3.0] and y.grad is None


def test_without_grad_no_node_is_recorded():
    cls = scaled_square(Function, lepton)
    assert cls.apply(lepton.ones(2), 2.0).grad_fn is None
    with lepton.no_grad():
        assert cls.apply(lepton.ones(2, requires_grad=True), 2.0).grad_fn is None


def test_setup_context_style_and_once_differentiable():
    class Cube(Function):
        @staticmethod
        def forward(x):
            return x ** 3

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            assert not lepton.is_grad_enabled()
            return 3 * x * x * g

    x = lepton.tensor([1.0, -2.0], requires_grad=True)
    y = Cube.apply(x)
    assert y.grad_fn.name() == "CubeBackward"
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 12.0]


def test_a_returned_input_keeps_its_own_leaf_status():
    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = lepton.ones(3, requires_grad=True)
    y = Identity.apply(x)
    assert x.is_leaf and x.grad_fn is None and y.grad_fn is not None
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_non_differentiable_outputs_get_no_history():
    class ArgmaxAndMax(Function):
        @staticmethod
        def forward(ctx, x):
            i = x.argmax()
            m = x.max()
            ctx.mark_non_differentiable(i)
            ctx.save_for_backward(x, i)
            return m, i

        @staticmethod
        def backward(ctx, gm, gi):
            x, i = ctx.saved_tensors
            g = lepton.zeros_like(x)
            g[i] = gm
            return g

    x = lepton.tensor([1.0, 5.0, 2.0], requires_grad=True)
    m, i = ArgmaxAndMax.apply(x)
    assert i.grad_fn is None and not i.requires_grad and m.grad_fn is not None
    m.backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_bad_backwards_are_named():
    class TooFew(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, g):
            return (g,)

    class WrongShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g.reshape(1)

    class GradForNonTensor(Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g, g

    x = lepton.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"TooFewBackward returned an incorrect number of gradients \(expected 2, got 1\)"):
        TooFew.apply(x, x).sum().backward()
    with pytest.raises(RuntimeError, match=r"WrongShapeBackward returned an invalid gradient at index 0"):
        WrongShape.apply(x).backward()
    with pytest.raises(RuntimeError, match="different than None at position 2"):
        GradForNonTensor.apply(x, 2.0).sum().backward()
    with pytest.raises(RuntimeError, match=r"call TooFew.apply"):
        TooFew()
    with pytest.raises(TypeError, match="positional arguments only"):
        TooFew.apply(x, y=x)


def test_a_python_exception_in_backward_reaches_the_caller_and_the_graph_stays_usable():
    class Fails(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            raise ZeroDivisionError("from backward")

    x = lepton.ones(2, requires_grad=True)
    with pytest.raises(ZeroDivisionError, match="from backward"):
        Fails.apply(x).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_double_backward_through_a_differentiable_backward():
    cls = scaled_square(Function, lepton)
    x = lepton.tensor([1.0, 2.0], requires_grad=True)
    (g,) = lepton.autograd.grad(cls.apply(x, 1.0).sum(), [x], create_graph=True)
    (gg,) = lepton.autograd.grad(g.sum(), [x])
    assert g.tolist() == [2.0, 4.0] and gg.tolist() == [2.0, 2.0]
