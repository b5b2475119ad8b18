"""Autograd engine semantics against torch: accumulation, retain_graph, grad modes, autograd.grad,
double backward, in-place ops and saved-tensor versions, hooks, deep graphs, an end-to-end fit."""

import time

import numpy as np
import pytest

import lepton

torch = pytest.importorskip("torch")


def leaf(a, dtype=lepton.float64):
    return lepton.tensor(np.asarray(a, dtype=np.float64), dtype=dtype, requires_grad=True)


A = np.array([[0.5, -1.2, 2.0], [1.5, 0.3, -0.7]])


# ---- backward basics

def test_gradients_accumulate_across_backward_calls():
    x = leaf(A)
    for _ in range(2):
        (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * A)
    x.grad = None
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(A, 3.0))


# .grad must be a private, writable tensor: the incoming gradient may be shared with another leaf
# (add passes it on twice), be the caller's seed (clone passes it through) or a broadcast view
GRAD_SOURCES = {
    "add_twice": lambda x, y, s: ((x + y) * s).sum().backward(),
    "add_twice_seed": lambda x, y, s: (x + y).sum().backward(),
    "expanded": lambda x, y, s: ((x.sum() + y.sum()) * 2).backward(),
    "seed_passthrough": lambda x, y, s: lepton.autograd.backward([x.clone(), y * 1], [s, s]),
    "create_graph": lambda x, y, s: ((x + y) * s).sum().backward(create_graph=True),
}


@pytest.mark.parametrize("name", GRAD_SOURCES)
def test_grad_is_private_and_writable(name):
    x, y, s = leaf(A), leaf(A), lepton.tensor(np.full_like(A, 2.0))
    GRAD_SOURCES[name](x, y, s)
    expected = y.grad.detach().numpy().copy()
    with lepton.no_grad():
        x.grad.mul_(10)
    (x * 1).sum().backward()  # accumulates in place
    np.testing.assert_allclose(y.grad.detach().numpy(), expected)
    np.testing.assert_allclose(s.numpy(), np.full_like(A, 2.0))


def test_backward_twice_needs_retain_graph():
    x = leaf(A)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    t = torch.tensor(A, requires_grad=True)
    ((t.exp() * t).sum() * 2).backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_non_scalar_backward_needs_gradient():
    x = leaf(A)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y.backward(lepton.tensor(np.ones_like(A) * 0.5))
    np.testing.assert_allclose(x.grad.numpy(), np.ones_like(A))
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(lepton.ones(3, dtype=lepton.float64))


def test_backward_of_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        lepton.ones(3).sum().backward()


def test_requires_grad_only_for_floating_dtypes():
    for dt in [lepton.float16, lepton.bfloat16, lepton.float32, lepton.float64]:
        assert lepton.zeros(2, dtype=dt).requires_grad_().requires_grad
    for dt in [lepton.bool, lepton.uint8, lepton.int32, lepton.int64]:
        with pytest.raises(TypeError, match="floating point"):
            lepton.zeros(2, dtype=dt).requires_grad_()
        with pytest.raises(TypeError, match="floating point"):
            lepton.zeros(2, dtype=dt, requires_grad=True)
        lepton.zeros(2, dtype=dt).requires_grad_(False)


def test_leaf_and_grad_fn_propagation():
    x, c = leaf(A), lepton.tensor(A)
    assert x.is_leaf and x.requires_grad and x.grad_fn is None
    assert c.is_leaf and not c.requires_grad and c.grad_fn is None
    y = x * c
    assert not y.is_leaf and y.requires_grad and y.grad_fn is not None
    assert "mul" in y.grad_fn.name() and "grad_fn=<" in repr(y)
    z = c + 1
    assert z.is_leaf and not z.requires_grad and z.grad_fn is None and "grad_fn" not in repr(z)
    # next_functions lead back to x's accumulator
    (fn, _), (none, _) = y.grad_fn.next_functions
    assert fn.name() == "AccumulateGrad" and none is None
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    # integer outputs never require grad
    assert not x.argmax().requires_grad and not (x > 0).requires_grad
    assert not x.max(1).indices.requires_grad


def test_detach_and_detach_():
    x = leaf(A)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    d.add_(1)  # shares memory with y
    np.testing.assert_allclose(y.detach().numpy(), 2 * A + 1)
    z = x * 3
    assert hash(z.detach_()) == hash(z)
    assert not z.requires_grad and z.is_leaf and z.grad_fn is None
    (x * z).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * A)


# ---- grad modes

@pytest.mark.parametrize("kind", ["no_grad", "set_false"])
def test_grad_mode_context_managers_nest(kind):
    x = leaf(A)
    off = lepton.no_grad() if kind == "no_grad" else lepton.set_grad_enabled(False)
    with off:
        assert not lepton.is_grad_enabled()
        assert not (x * 2).requires_grad
        with lepton.enable_grad():
            assert lepton.is_grad_enabled() and (x * 2).requires_grad
            with lepton.set_grad_enabled(False):
                assert not (x * 2).requires_grad
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert lepton.is_grad_enabled() and (x * 2).requires_grad


def test_grad_mode_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with lepton.no_grad():
            1 / 0
    assert lepton.is_grad_enabled()


def test_grad_mode_decorators():
    x = leaf(A)

    @lepton.no_grad()
    def off():
        return x * 2, enabled()

    @lepton.enable_grad()
    def enabled():
        return (x * 2).requires_grad

    @lepton.set_grad_enabled(False)
    def off2():
        return (x * 2).requires_grad

    y, inner = off()
    assert not y.requires_grad and inner
    assert lepton.is_grad_enabled()  # set_grad_enabled as a decorator doesn't switch modes now
    assert not off2() and lepton.is_grad_enabled()
    assert off.__name__ == "off"


def test_set_grad_enabled_as_a_call():
    try:
        lepton.set_grad_enabled(False)
        assert not lepton.is_grad_enabled()
    finally:
        lepton.set_grad_enabled(True)
    assert lepton.is_grad_enabled()


# ---- autograd.grad

def test_grad_multiple_inputs_and_outputs():
    x, y = leaf(A), leaf(A[::-1].copy())
    x.grad = lepton.zeros(2, 3, dtype=lepton.float64)
    u, v = x * y, (x.sin() + y).sum(0)
    gu, gv = lepton.tensor(np.full((2, 3), 0.5)), lepton.tensor(np.array([1.0, -1.0, 2.0]))
    gx, gy = lepton.autograd.grad([u, v], [x, y], [gu, gv])
    tx, ty = torch.tensor(A, requires_grad=True), torch.tensor(A[::-1].copy(), requires_grad=True)
    tgx, tgy = torch.autograd.grad([tx * ty, (tx.sin() + ty).sum(0)], [tx, ty],
                                   [torch.tensor(gu.numpy()), torch.tensor(gv.numpy())])
    np.testing.assert_allclose(gx.numpy(), tgx.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gy.numpy(), tgy.numpy(), rtol=1e-12)
    assert np.all(x.grad.numpy() == 0) and y.grad is None  # .grad untouched
    assert not gx.requires_grad


def test_grad_of_intermediate():
    x = leaf(A)
    h = x.exp()
    (gh,) = lepton.autograd.grad((h * h).sum(), h)
    np.testing.assert_allclose(gh.numpy(), 2 * np.exp(A))
    assert x.grad is None


def test_grad_allow_unused():
    x, unused = leaf(A), leaf(A)
    with pytest.raises(RuntimeError, match="allow_unused"):
        lepton.autograd.grad((x * 2).sum(), [x, unused])
    gx, gu = lepton.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.numpy(), np.full_like(A, 2.0))


def test_grad_input_not_requiring_grad_raises():
    x = leaf(A)
    with pytest.raises(RuntimeError, match="does not require grad"):
        lepton.autograd.grad((x * 2).sum(), [lepton.tensor(A)])


# ---- double backward

POINTS = np.array([-1.3, -0.2, 0.4, 1.7])
SECOND_ORDER = {
    "cube": (lambda x: x ** 3, lambda x: x ** 3),
    "tanh": (lambda x: x.tanh(), lambda x: x.tanh()),
    "sigmoid_mul": (lambda x: x.sigmoid() * x, lambda x: x.sigmoid() * x),
    "exp_div": (lambda x: x.exp() / (x * x + 1), lambda x: x.exp() / (x * x + 1)),
    "gelu": (lambda x: x.gelu(), torch.nn.functional.gelu),
    "logsumexp": (lambda x: x.reshape(2, 2).logsumexp(1) * x[:2], lambda x: x.reshape(2, 2).logsumexp(1) * x[:2]),
    "prod": (lambda x: x.prod(), lambda x: x.prod()),
    "softmaxish": (lambda x: x.exp() / x.exp().sum(), lambda x: x.exp() / x.exp().sum()),
}


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_double_backward(name):
    fn, tfn = SECOND_ORDER[name]
    x, t = leaf(POINTS), torch.tensor(POINTS, requires_grad=True)
    (g,) = lepton.autograd.grad(fn(x).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad(tfn(t).sum(), t, create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-10)
    w = np.array([0.3, -1.0, 2.0, 0.5])
    (g * lepton.tensor(w)).sum().backward()
    (tg * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_double_backward_through_backward_and_third_order():
    x = leaf([0.7, -1.1])
    y = (x ** 3).sum()
    y.backward(create_graph=True)  # x.grad = 3x² stays differentiable
    assert x.grad.requires_grad
    (g2,) = lepton.autograd.grad(x.grad.sum(), x, create_graph=True)
    np.testing.assert_allclose(g2.detach().numpy(), 6 * np.array([0.7, -1.1]))
    (g3,) = lepton.autograd.grad(g2.sum(), x)
    np.testing.assert_allclose(g3.numpy(), [6.0, 6.0])


def test_gradcheck_reports_mismatch():
    with pytest.raises(AssertionError, match="mismatch"):
        lepton.autograd.gradcheck(lambda x: x.detach() * x, [leaf(A)])
    assert not lepton.autograd.gradcheck(lambda x: x.detach() * x, [leaf(A)], raise_exception=False)
    with pytest.raises(TypeError, match="float64"):
        lepton.autograd.gradcheck(lambda x: x * 2, [leaf(A, lepton.float32)])


# ---- in-place ops

def test_inplace_on_leaf_requiring_grad():
    x = leaf(A)
    with pytest.raises(RuntimeError, match="leaf"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="leaf"):
        x += 1
    with lepton.no_grad():
        x.mul_(2)
        x -= 1
    np.testing.assert_allclose(x.detach().numpy(), 2 * A - 1)
    assert x.is_leaf and x.requires_grad


INPLACE = {
    "exp_": (lambda x: x.exp_(), lambda x: x.exp_()),
    "mul_tensor": (lambda x: x.mul_(x.detach() + 1), lambda x: x.mul_(x.detach() + 1)),
    "iadd": (lambda x: x.__iadd__(3.0), lambda x: x.__iadd__(3.0)),
    "pow_": (lambda x: x.pow_(2), lambda x: x.pow_(2)),
    "clamp_": (lambda x: x.clamp_(-1.0, 1.5), lambda x: x.clamp_(-1.0, 1.5)),
    "sigmoid_": (lambda x: x.sigmoid_(), lambda x: x.sigmoid_()),
}


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_on_non_leaf_matches_torch(name):
    fn, tfn = INPLACE[name]
    a, t = leaf(A), torch.tensor(A, requires_grad=True)
    x, tx = a * 2, t * 2
    assert hash(fn(x)) == hash(x)  # the same tensor comes back
    tfn(tx)
    (x * 1.5).sum().backward()
    (tx * 1.5).sum().backward()
    np.testing.assert_allclose(x.detach().numpy(), tx.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_inplace_with_other_operand_requiring_grad():
    a, b = leaf(A), leaf(A[::-1].copy())
    ta, tb = torch.tensor(A, requires_grad=True), torch.tensor(A[::-1].copy(), requires_grad=True)
    for x, y in [(a, b), (ta, tb)]:
        h = x.sin()
        h.mul_(y)
        h.add_(y.sin())
        (h * h).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12)


def test_inplace_on_untracked_tensor_then_used():
    x = leaf(A)
    c = lepton.tensor(A)
    c.mul_(x)  # c starts without history and takes x's
    assert c.requires_grad and not c.is_leaf
    c.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), A)


@pytest.mark.parametrize("op", ["exp", "sigmoid", "mul", "pow", "div"])
def test_modifying_saved_tensor_raises(op):
    x = leaf(A)
    h = x * 1
    y = {"exp": lambda: h.exp(), "sigmoid": lambda: h.sigmoid(), "mul": lambda: h * h,
         "pow": lambda: h ** 3, "div": lambda: 1.0 / h}[op]()
    (y if op in ("exp", "sigmoid") else h).add_(1)  # exp/sigmoid save their output, the others their input
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


# ops that don't save the tensor modified afterwards (as in torch): no error, torch's gradients
UNSAVED = {
    "add": lambda h, c: h + c,
    "sub": lambda h, c: c - h,
    "mul_const": lambda h, c: h * c,
    "exp": lambda h, c: h.exp(),
    "tanh": lambda h, c: h.tanh(),
    "relu": lambda h, c: h.relu(),
    "sum": lambda h, c: h.sum(0),
    "view": lambda h, c: h.reshape(-1),
}


@pytest.mark.parametrize("name", UNSAVED)
def test_inplace_on_tensor_not_saved_is_fine(name):
    grads = []
    for mod in (lepton, torch):
        x = mod.tensor(A, requires_grad=True)
        h = x * 2
        y = UNSAVED[name](h, mod.tensor(A[::-1].copy()))
        if name != "view":
            h.add_(1)
        (y * y.detach()).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(*grads, rtol=1e-12)


@pytest.mark.parametrize("make_view", [lambda h: h[0], lambda h: h.view(-1), lambda h: h.T, lambda h: h.detach()[0]])
def test_inplace_on_view_of_tensor_requiring_grad(make_view):
    x = leaf(A)
    h = x * 2
    v = make_view(h)
    if v.requires_grad:
        with pytest.raises(NotImplementedError):
            v.mul_(2)
    else:  # a view of detached data tracks nothing
        v.mul_(2)
    with pytest.raises((NotImplementedError, RuntimeError)):
        x[0].add_(1)


@pytest.mark.parametrize("make_view", [lambda h: h.view(-1), lambda h: h[1:], lambda h: h.T[0]])
def test_view_of_base_modified_in_place_is_refused_not_wrong(make_view):
    x = leaf(A)
    h = x * 2
    v = make_view(h)
    early = v * 3  # used before the change: fine, as in torch
    h.mul_(3)
    with pytest.raises(NotImplementedError, match="in-place"):
        v.sum().backward()  # torch rebuilds v's history (x.grad = 6); a stale one would give 2
    early.sum().backward()
    assert x.grad is not None


def test_view_of_leaf_survives_optimizer_step():
    grads = []
    for mod in (lepton, torch):
        w = mod.tensor(A, requires_grad=True)
        v = w[0]
        with mod.no_grad():
            w.mul_(0.5)
        (v * v).sum().backward()
        grads.append(w.grad.numpy())
    np.testing.assert_allclose(*grads, rtol=1e-12)


def test_documented_not_implemented_limits():
    x = leaf(A)
    with pytest.raises(NotImplementedError):
        x.as_strided((2,), (1,))
    h = lepton.zeros(2, 3, dtype=lepton.float64)
    with pytest.raises(NotImplementedError):
        h[0] = x[1]
    with lepton.no_grad():  # fine without grads
        h[0] = x[1]
        assert x[lepton.tensor([1, 0])].shape == (2, 3)


@pytest.mark.parametrize("index", [lambda x, m: x[m.tensor([1, 0, 1])], lambda x, m: x[x > 0],
                                   lambda x, m: x[:, m.tensor([2, 2])],
                                   lambda x, m: x[m.tensor([0, 1]), m.tensor([2, 0])],
                                   lambda x, m: x[m.tensor([[1], [0]]), 1:]])
def test_advanced_indexing_gradient_accumulates_into_the_sources(index):
    torch = pytest.importorskip("torch")
    x = leaf(A)
    t = torch.tensor(A, requires_grad=True)
    out, ref = index(x, lepton), index(t, torch)
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    w = np.arange(out.numel(), dtype=np.float64).reshape(tuple(out.shape))
    (out * lepton.tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_fill_and_zero_cut_the_graph():
    x = leaf(A)
    z = x * 1
    z.fill_(0)
    w = x * 1
    w.zero_()
    (z + w + x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3)))


def test_copy_into_takes_the_sources_history():
    x = leaf(A)
    h = lepton.zeros(2, 3, dtype=lepton.float32)
    h.copy_(x * 3)  # broadcast-free, cast float64 -> float32: the gradient comes back cast
    assert h.grad_fn is not None
    (h * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 6.0))
    y = leaf(A)
    z = y * 2
    z.copy_(lepton.ones(2, 3, dtype=lepton.float64))  # overwritten by a constant: no path back to y
    assert z.grad_fn is None and not z.requires_grad


# ---- hooks and .grad

def test_post_accumulate_grad_hook():
    x = leaf(A)
    seen = []
    handle = x.register_post_accumulate_grad_hook(lambda t: seen.append((hash(t) == hash(x), t.grad.numpy().copy())))
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    assert [s[0] for s in seen] == [True, True]
    np.testing.assert_allclose(seen[0][1], np.full_like(A, 2.0))
    np.testing.assert_allclose(seen[1][1], np.full_like(A, 5.0))
    handle.remove()
    (x * 2).sum().backward()
    assert len(seen) == 2
    handle.remove()  # twice is harmless
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)


def test_hook_may_reset_grad():
    x = leaf(A)
    x.register_post_accumulate_grad_hook(lambda t: setattr(t, "grad", None))
    (x * 2).sum().backward()
    assert x.grad is None


def test_grad_setter_validation():
    x = leaf(A)
    x.grad = lepton.ones(2, 3, dtype=lepton.float64)
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(A, 3.0))
    with pytest.raises(ValueError, match="shape"):
        x.grad = lepton.ones(3, 2, dtype=lepton.float64)
    with pytest.raises(TypeError, match="dtype"):
        x.grad = lepton.ones(2, 3, dtype=lepton.float32)
    x.grad = None
    assert x.grad is None


# ---- graph shapes and lifetime

def test_diamond_graph():
    x, t = leaf(A), torch.tensor(A, requires_grad=True)
    for v in (x, t):
        a, b = v.sin(), v * v
        c = a * b + a.exp() - b
        (c * v).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_long_chain():
    x = leaf([1.0, 2.0])
    y = x
    for _ in range(2000):
        y = y * 1.0005 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0005 ** 2000] * 2, rtol=1e-10)


@pytest.mark.parametrize("step", [lambda y: y + 1.0, lambda y: y.sin()])  # sin saves its input
def test_deep_graph_is_freed_without_recursion(step):
    x = leaf([1.0])
    y = x
    for _ in range(1_000_000 if step(x).grad_fn.name() == "add_backward" else 300_000):
        y = step(y)
    del y  # dropping a deep graph used to recurse once per node and overflow the stack


def test_graph_freed_after_backward():
    x = leaf(A)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    assert y.grad_fn is not None  # the node stays, its saved tensors are gone


def test_repeated_small_graphs_are_fast():
    x = leaf(np.linspace(-1, 1, 16).reshape(4, 4))
    start = time.perf_counter()
    for _ in range(200):
        ((x.tanh() * x).sum(1).exp().mean()).backward()
        x.grad = None
    assert time.perf_counter() - start < 5.0


# ---- end to end

def logistic_data(n=256, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    w_true = rng.normal(size=(d,)).astype(np.float32)
    y = (X @ w_true + 0.1 * rng.normal(size=n) > 0).astype(np.float32)
    return X, y


def logistic_fit(mod, X, y, steps, lr=0.5):
    X, y = mod.tensor(X), mod.tensor(y)
    w = mod.zeros(X.shape[1], requires_grad=True)
    b = mod.zeros(1, requires_grad=True)
    losses = []
    for _ in range(steps):
        z = (X * w).sum(1) + b  # no matmul: that lives elsewhere
        p = z.sigmoid().clamp(1e-6, 1 - 1e-6)
        loss = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
        loss.backward()
        with mod.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad = None
        b.grad = None
        losses.append(loss.item())
    return w, b, losses


def test_logistic_regression_trains():
    X, y = logistic_data()
    w, b, losses = logistic_fit(lepton, X, y, steps=100)
    assert losses[-1] < losses[0] / 2
    pred = ((lepton.tensor(X) * w).sum(1) + b).detach().numpy() > 0
    assert (pred == (y > 0.5)).mean() > 0.95
    assert w.is_leaf and w.requires_grad


def test_logistic_regression_matches_torch_trajectory():
    X, y = logistic_data(n=64)
    w, b, losses = logistic_fit(lepton, X, y, steps=10)
    tw, tb, tlosses = logistic_fit(torch, X, y, steps=10)
    np.testing.assert_allclose(losses, tlosses, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.detach().numpy(), tb.detach().numpy(), rtol=1e-5, atol=1e-5)
