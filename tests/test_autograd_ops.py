"""Gradients of every differentiable op: finite differences in float64 (lepton.autograd.gradcheck)
and the same inputs through torch.autograd."""

import numpy as np
import pytest

import lepton
from lepton.autograd import gradcheck

torch = pytest.importorskip("torch")


def rand(shape, low=-2.0, high=2.0, seed=0, away=0.0):
    """Float64 test data; `away` keeps every value at least that far from 0 (kinks, poles)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(low, high, shape)
    if away:
        a = np.where(np.abs(a) < away, np.copysign(away, a) + a, a)
    return a


def outputs(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def grads_of(mod, fn, arrays, seeds, dtypes):
    """Gradients of sum(seed_i * out_i) w.r.t. each array, computed by `mod` (lepton or torch)."""
    if mod is torch:
        xs = [torch.tensor(a, dtype=getattr(torch, dt.name), requires_grad=True) for a, dt in zip(arrays, dtypes)]
        outs = outputs(fn(*xs))
        torch.autograd.backward(outs, [torch.tensor(s, dtype=o.dtype) for s, o in zip(seeds, outs)])
    else:
        xs = [lepton.tensor(a, dtype=dt, requires_grad=True) for a, dt in zip(arrays, dtypes)]
        outs = outputs(fn(*xs))
        lepton.autograd.backward(outs, [lepton.tensor(s, dtype=o.dtype) for s, o in zip(seeds, outs)])
    return [x.grad for x in xs], outs


def check(fn, *arrays, torch_fn=None, dtypes=None, fd=True, rtol=1e-7, atol=1e-9):
    """gradcheck of fn in float64 (when `fd`), then every input's gradient against torch's."""
    dtypes = dtypes or [lepton.float64] * len(arrays)
    if fd:
        assert gradcheck(fn, [lepton.tensor(a, dtype=dt, requires_grad=True) for a, dt in zip(arrays, dtypes)])
    with torch.no_grad():
        ref_outs = outputs((torch_fn or fn)(*[torch.tensor(a) for a in arrays]))
    rng = np.random.default_rng(1)
    seeds = [rng.uniform(-1, 1, tuple(o.shape)) for o in ref_outs]
    got, outs = grads_of(lepton, fn, arrays, seeds, dtypes)
    want, ref = grads_of(torch, torch_fn or fn, arrays, seeds, dtypes)
    for o, r in zip(outs, ref):
        assert o.dtype.name == str(r.dtype).removeprefix("torch.")
        np.testing.assert_allclose(o.detach().numpy(), r.detach().numpy(), rtol=rtol, atol=atol)
    for g, w, dt in zip(got, want, dtypes):
        assert g is not None and w is not None
        assert g.dtype == dt, f"gradient came back as {g.dtype}, input was {dt}"
        assert tuple(g.shape) == tuple(w.shape)
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=rtol, atol=atol)


F = torch.nn.functional

# name -> (lepton fn, torch fn or None when the same code works, input range (low, high, away))
UNARY = {
    "exp": (lambda x: x.exp(), None, (-2, 2, 0)),
    "log": (lambda x: x.log(), None, (0.3, 3, 0)),
    "sqrt": (lambda x: x.sqrt(), None, (0.3, 3, 0)),
    "rsqrt": (lambda x: x.rsqrt(), None, (0.3, 3, 0)),
    "tanh": (lambda x: x.tanh(), None, (-2, 2, 0)),
    "sigmoid": (lambda x: x.sigmoid(), None, (-3, 3, 0)),
    "relu": (lambda x: x.relu(), None, (-2, 2, 0.1)),
    "gelu": (lambda x: x.gelu(), F.gelu, (-3, 3, 0)),
    "gelu_tanh": (lambda x: x.gelu_tanh(), lambda x: F.gelu(x, approximate="tanh"), (-3, 3, 0)),
    "silu": (lambda x: x.silu(), F.silu, (-3, 3, 0)),
    "sin": (lambda x: x.sin(), None, (-3, 3, 0)),
    "cos": (lambda x: x.cos(), None, (-3, 3, 0)),
    "reciprocal": (lambda x: x.reciprocal(), None, (-2, 2, 0.3)),
    "erf": (lambda x: x.erf(), None, (-2, 2, 0)),
    "log1p": (lambda x: x.log1p(), None, (-0.7, 2, 0)),
    "expm1": (lambda x: x.expm1(), None, (-2, 2, 0)),
    "log2": (lambda x: x.log2(), None, (0.3, 3, 0)),
    "abs": (lambda x: x.abs(), None, (-2, 2, 0.1)),
    "neg": (lambda x: -x, None, (-2, 2, 0)),
    "square": (lambda x: x.square(), None, (-2, 2, 0)),
    "clamp": (lambda x: x.clamp(-0.55, 0.75), None, (-2, 2, 0)),
    "clamp_min": (lambda x: x.clamp(min=0.35), None, (-2, 2, 0)),
    "clamp_max": (lambda x: lepton.clamp(x, max=-0.25), lambda x: torch.clamp(x, max=-0.25), (-2, 2, 0)),
    "pow_scalar": (lambda x: x ** 3, None, (-2, 2, 0)),
    "pow_frac": (lambda x: x ** 2.5, None, (0.3, 2, 0)),
    "rpow": (lambda x: 2.0 ** x, None, (-2, 2, 0)),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary(name):
    fn, tfn, (low, high, away) = UNARY[name]
    a = rand((3, 4), low, high, away=away)
    if name.startswith("clamp"):  # keep values off the bounds
        a = np.where(np.min(np.abs(a[..., None] - np.array([-0.55, 0.75, 0.35, -0.25])), -1) < 0.05, 0.1, a)
    check(fn, a, torch_fn=tfn)


# (lepton/torch fn, shape of a, shape of b): broadcasting on either side and Python scalars on either side
BINARY_SHAPES = [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((4,), (2, 3, 4)), ((), (2, 3)), ((2, 3), ())]
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "maximum": lambda a, b: a.maximum(b),
    "minimum": lambda a, b: a.minimum(b),
    "remainder": lambda a, b: a % b,
    "add_alpha": lambda a, b: a.add(b, alpha=-1.5),
    "sub_alpha": lambda a, b: a.sub(b, alpha=2.0),
}


def binary_inputs(name, sa, sb):
    if name == "remainder":  # a/b well inside (k, k+1): the floor does not jump within a finite step
        b = rand(sb, 1.0, 2.0, seed=2)
        shape = np.broadcast_shapes(sa, sb)
        k = np.random.default_rng(3).integers(-3, 3, shape) + np.random.default_rng(4).uniform(0.2, 0.8, shape)
        a = (k * np.broadcast_to(b, shape))
        return (a if a.shape == sa else rand(sa, 5.0, 6.0)), b
    if name == "pow":
        return rand(sa, 0.5, 2.0), rand(sb, -2.0, 2.0, seed=2)
    if name == "div":
        return rand(sa), rand(sb, seed=2, away=0.4)
    return rand(sa), rand(sb, seed=2)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("sa,sb", BINARY_SHAPES)
def test_binary(name, sa, sb):
    a, b = binary_inputs(name, sa, sb)
    if name == "remainder" and a.shape != np.broadcast_shapes(sa, sb):
        b = rand(sb, 0.35, 0.45, seed=2)  # a in [5, 6) over b in [0.35, 0.45]: check by torch only
        check(BINARY[name], a, b, fd=False)
        return
    check(BINARY[name], a, b)


SCALAR_OPS = {
    "add": (lambda x: x + 2.5, lambda x: 2.5 + x),
    "sub": (lambda x: x - 2.5, lambda x: 2.5 - x),
    "mul": (lambda x: x * -1.5, lambda x: -1.5 * x),
    "div": (lambda x: x / 1.5, lambda x: 1.5 / x),
    "pow": (lambda x: x ** 2, lambda x: 1.7 ** x),
    "remainder": (lambda x: x % 0.7, lambda x: 5.3 % x),
}


@pytest.mark.parametrize("name", SCALAR_OPS)
@pytest.mark.parametrize("side", [0, 1])
def test_binary_python_scalar(name, side):
    a = rand((2, 3), 0.55, 0.65) if name == "remainder" and side else rand((2, 3), -2, 2, away=0.3)
    if name == "remainder" and not side:
        a = np.array([[0.2, 0.9, 1.6], [-0.2, -0.9, 2.5]])
    if name == "remainder" and side:  # torch has no derivative of remainder(scalar, x); d/dx = -floor(5.3/x)
        assert gradcheck(SCALAR_OPS[name][side], [lepton.tensor(a, requires_grad=True)])
        return
    check(SCALAR_OPS[name][side], a)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_evenly(name):
    a = np.array([[1.0, 2.0, -1.0], [0.5, 0.5, 3.0]])
    b = np.array([[1.0, 0.0, -1.0], [0.5, 1.5, 2.0]])
    check(BINARY[name], a, b, fd=False)


@pytest.mark.parametrize("sc,sa,sb", [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (3, 4)), ((2, 3), (3,), ())])
def test_where(sc, sa, sb):
    cond = rand(sc, seed=5) > 0
    fn = lambda a, b: (lepton if isinstance(a, lepton.Tensor) else torch).where(  # noqa: E731
        lepton.tensor(cond) if isinstance(a, lepton.Tensor) else torch.tensor(cond), a, b)
    check(fn, rand(sa), rand(sb, seed=2))


def test_tensor_where_with_scalar_other():
    cond = rand((3, 4), seed=5) > 0
    fn = lambda x: x.where(lepton.tensor(cond) if isinstance(x, lepton.Tensor) else torch.tensor(cond), 2.0)  # noqa: E731
    check(fn, rand((3, 4)))


DIMS = [None, 0, -1, (0, 2), (2, 0, 1)]
REDUCTIONS = {
    "sum": lambda x, d, k: x.sum() if d is None else x.sum(d, keepdim=k),
    "mean": lambda x, d, k: x.mean() if d is None else x.mean(d, keepdim=k),
    "var": lambda x, d, k: x.var() if d is None else x.var(d, keepdim=k),
    "var_c0": lambda x, d, k: x.var(correction=0) if d is None else x.var(d, correction=0, keepdim=k),
    "std": lambda x, d, k: x.std() if d is None else x.std(d, keepdim=k),
    "prod": lambda x, d, k: x.prod() if d is None else x.prod(d, keepdim=k) if isinstance(d, int) else None,
    "amax": lambda x, d, k: x.amax() if d is None else x.amax(d, keepdim=k),
    "amin": lambda x, d, k: x.amin() if d is None else x.amin(d, keepdim=k),
    "max_dim": lambda x, d, k: x.max() if d is None else x.max(d, keepdim=k).values if isinstance(d, int) else None,
    "min_dim": lambda x, d, k: x.min() if d is None else x.min(d, keepdim=k).values if isinstance(d, int) else None,
    "logsumexp": lambda x, d, k: x.logsumexp((0, 1, 2) if d is None else d, keepdim=k),
}


# prod and max/min with indices take one dim in torch; keepdim needs a dim
REDUCTION_CASES = [(n, d, k) for n in REDUCTIONS for d in DIMS for k in (False, True)
                   if not (k and d is None and n != "logsumexp") and not (isinstance(d, tuple) and n in ("prod", "max_dim", "min_dim"))]


@pytest.mark.parametrize("name,dim,keepdim", REDUCTION_CASES)
def test_reduction(name, dim, keepdim):
    fn = REDUCTIONS[name]
    # distinct values (no ties at the extremes), away from 0 for prod
    a = np.random.default_rng(0).permutation(24).reshape(2, 3, 4) / 7.0 - 1.7
    if name == "prod":
        a = rand((2, 3, 4), 0.5, 1.5)
    check(lambda x: fn(x, dim, keepdim), a)


@pytest.mark.parametrize("name,dim", [("amax", None), ("amax", 1), ("amin", 0), ("max_dim", None), ("min_dim", None)])
def test_extreme_ties_split_evenly(name, dim):
    a = np.array([[1.0, 3.0, 3.0], [2.0, -1.0, -1.0]])
    check(lambda x: REDUCTIONS[name](x, dim, False), a, fd=False)


@pytest.mark.parametrize("zeros", [[(0, 1)], [(0, 1), (1, 2)], [(0, 0), (0, 2)]])
@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_with_zeros(zeros, dim):
    a = rand((2, 3), 0.5, 1.5)
    for i in zeros:
        a[i] = 0.0
    check(lambda x: x.prod() if dim is None else x.prod(dim), a)


VIEWS = {
    "view": lambda x: x.view(4, 6),
    "view_infer": lambda x: x.view(-1, 2),
    "reshape": lambda x: x.reshape(6, 4),
    "reshape_copy": lambda x: x.transpose(0, 2).reshape(-1),
    "permute": lambda x: x.permute(2, 0, 1),
    "transpose": lambda x: x.transpose(0, 2),
    "T": lambda x: x[0].T,
    "mT": lambda x: x.mT,
    "t": lambda x: x[0].t(),
    "expand": lambda x: x[:, :1].expand(3, 2, 5, 4),
    "expand_as": lambda x: x[:1, :, 2:3].expand_as(x),
    "squeeze": lambda x: x[:, :1, :].squeeze(),
    "squeeze_dim": lambda x: x[:, :1, :].squeeze(1),
    "unsqueeze": lambda x: x.unsqueeze(1).unsqueeze(-1),
    "flatten": lambda x: x.flatten(),
    "flatten_range": lambda x: x.flatten(1, 2),
    "slice_steps": lambda x: x[::2, 1:, ::3],
    "slice_neg": lambda x: x[:, -2:, 1:-1:2],
    "select": lambda x: x.select(1, -1),
    "int_index": lambda x: x[1, 2],
    "none_ellipsis": lambda x: x[None, ..., 1:3, None],
    "ellipsis_int": lambda x: x[..., 0],
    "narrow": lambda x: x.narrow(2, 1, 2),
    "split": lambda x: x.split(2, 2),
    "split_sizes": lambda x: x.split([1, 2], 1),
    "chunk": lambda x: x.chunk(2, -1),
    "unbind": lambda x: x.unbind(1),
    "contiguous": lambda x: x.transpose(0, 1).contiguous(),
    "clone": lambda x: x.clone() * 2,
    "view_of_view": lambda x: x.permute(1, 0, 2)[1:].reshape(4, 4),
}


@pytest.mark.parametrize("name", VIEWS)
def test_view(name):
    check(VIEWS[name], rand((2, 3, 4)))


def test_split_and_unbind_pieces_share_one_backward_node():
    """One node for all pieces (an RNN unbinds T steps: a node per piece would each build a
    gradient as large as the whole input); pieces left unused get zero gradients."""
    x = lepton.randn(6, 4, requires_grad=True)
    pieces = x.split([1, 2, 3])
    assert pieces[0].grad_fn is pieces[2].grad_fn and pieces[0].grad_fn.name() == "split_backward"
    steps = x.unbind(0)
    nodes = [s.grad_fn.next_functions[0][0] for s in steps]
    assert all(n is nodes[0] for n in nodes) and nodes[0].name() == "split_backward"
    (steps[1] * 3).sum().backward()
    want = np.zeros((6, 4), np.float32)
    want[1] = 3
    np.testing.assert_array_equal(x.grad.numpy(), want)


@pytest.mark.parametrize("call", [lambda t: t.size(0), lambda t: t.stride(-1), lambda t: t.unbind(0)])
def test_zero_dim_tensor_has_no_dimension_to_read(call):
    with pytest.raises(IndexError, match="no dimension"):
        call(lepton.tensor(1.0))


def test_view_outputs_used_twice():
    check(lambda x: x[0] * x[1] + x[:, 1:].sum(), rand((2, 3)))


def stack_or_cat(mod_name, dim):
    def fn(*xs):
        mod = lepton if isinstance(xs[0], lepton.Tensor) else torch
        return getattr(mod, mod_name)(list(xs), dim)
    return fn


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    shapes = [tuple(s if i != dim % 3 else s + k for i, s in enumerate(sh)) for k, sh in enumerate(shapes)]
    check(stack_or_cat("cat", dim), *[rand(s, seed=k) for k, s in enumerate(shapes)])


@pytest.mark.parametrize("dim", [0, 2, -1])
def test_stack(dim):
    check(stack_or_cat("stack", dim), *[rand((2, 3), seed=k) for k in range(3)])


def test_cat_mixed_dtypes():
    check(stack_or_cat("cat", 0), rand((2, 3)), rand((1, 3), seed=1),
          dtypes=[lepton.float32, lepton.float64], fd=False, rtol=1e-6, atol=1e-6)


def test_to_dtype_round_trip():
    def fn(x):
        f32 = lepton.float32 if isinstance(x, lepton.Tensor) else torch.float32
        f64 = lepton.float64 if isinstance(x, lepton.Tensor) else torch.float64
        y = (x * 3).to(f64).sin()
        return (y * y.to(f32)).to(f32)
    check(fn, rand((3, 4)), dtypes=[lepton.float32], fd=False, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["add", "mul", "div", "pow", "maximum"])
def test_mixed_dtype_promotion(name):
    a, b = binary_inputs(name, (2, 3), (3,))
    check(BINARY[name], a, b, dtypes=[lepton.float32, lepton.float64], fd=False, rtol=1e-6, atol=1e-6)


def second_order(mod, fn, arrays, w):
    """d/dxs of w · d(sum fn(xs))/dxs, built with create_graph; zeros where the first derivative is constant."""
    xs = [mod.tensor(a, requires_grad=True) for a in arrays]
    gs = mod.autograd.grad(fn(*xs).sum(), xs, create_graph=True)
    total = sum((g * mod.tensor(wi)).sum() for g, wi in zip(gs, w) if g.requires_grad)
    if not isinstance(total, int):
        total.backward()
    return [np.zeros(np.shape(a)) if x.grad is None else x.grad.detach().clone().numpy() for x, a in zip(xs, arrays)]


def check_second_order(fn, *arrays, torch_fn=None):
    w = [np.random.default_rng(7).uniform(-1, 1, np.shape(a)) for a in arrays]
    for g, t in zip(second_order(lepton, fn, arrays, w), second_order(torch, torch_fn or fn, arrays, w)):
        np.testing.assert_allclose(g, t, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", UNARY)
def test_unary_double_backward(name):
    fn, tfn, (low, high, away) = UNARY[name]
    check_second_order(fn, rand((3, 4), low, high, away=away), torch_fn=tfn)


@pytest.mark.parametrize("name", [n for n in BINARY if n != "remainder"])
def test_binary_double_backward(name):
    check_second_order(BINARY[name], *binary_inputs(name, (2, 3), (3,)))


@pytest.mark.parametrize("name", ["mean", "var", "std", "prod", "amax", "logsumexp", "max_dim"])
def test_reduction_double_backward(name):
    a = np.random.default_rng(0).permutation(24).reshape(2, 3, 4) / 7.0 + 0.3
    check_second_order(lambda x: REDUCTIONS[name](x, 1, False) ** 2, a)


@pytest.mark.parametrize("name", ["slice_steps", "select", "split", "expand", "none_ellipsis", "unbind"])
def test_view_double_backward(name):
    fn = VIEWS[name]
    check_second_order(lambda x: sum(o.square().sum() for o in outputs(fn(x))), rand((2, 3, 4)))


def test_cat_double_backward():
    check_second_order(lambda a, b: stack_or_cat("cat", 1)(a * a, b).exp(), rand((2, 3)), rand((2, 2), seed=1))
