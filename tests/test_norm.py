"""layer_norm and batch_norm (functional and nn layers) against torch: forward, gradients of input,
weight and bias, running statistics, train/eval, state_dict, gradcheck, the reference kernels and
bad input.

Tolerances: float32 rtol 1e-4, atol 1e-5 (the weight and bias gradients are sums over up to
thousands of rows, and the two libraries sum in different orders); float64 rtol 1e-10, atol 1e-11.
"""
import numpy as np
import pytest

import lepton
from lepton import _C, nn
from lepton.autograd import gradcheck
import lepton.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}
DTYPES = [np.float32, np.float64]


def pair(a, grad=True):
    """The same array as a lepton and a torch tensor (requiring grad when asked)."""
    return lepton.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad)


def data(shape, dtype, seed=0, scale=2.0, shift=0.5):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)


def close(a, t, dtype):
    np.testing.assert_allclose(a.detach().numpy(), t.detach().numpy(), **TOL[dtype])


@pytest.fixture
def reference_kernels():
    _C._set_norm_reference(True)
    yield
    _C._set_norm_reference(False)


# ---- layer_norm ------------------------------------------------------------------------------

LN_CASES = [((1, 1), (1,)), ((1, 3), (3,)), ((5, 17), (17,)), ((2, 3, 1000), (1000,)), ((3, 4097), (4097,)),
            ((7,), (7,)), ((2, 3, 4, 5), (4, 5)), ((2, 3, 4, 5), (3, 4, 5)), ((0, 8), (8,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape,normalized", LN_CASES)
def test_layer_norm_matches_torch(shape, normalized, affine, dtype):
    (x, tx) = pair(data(shape, dtype))
    (w, tw) = pair(data(normalized, dtype, seed=1)) if affine != "none" else (None, None)
    (b, tb) = pair(data(normalized, dtype, seed=2)) if affine == "both" else (None, None)
    y = F.layer_norm(x, normalized, w, b, eps=1e-5)
    ty = TF.layer_norm(tx, normalized, tw, tb, eps=1e-5)
    close(y, ty, dtype)
    g = data(shape, dtype, seed=3)
    y.backward(lepton.tensor(g))
    ty.backward(torch.tensor(g))
    pairs = [(x, tx)] + [(p, tp) for p, tp in ((w, tw), (b, tb)) if p is not None]
    if np.prod(normalized) == 1:
        # each row normalises to exactly 0: x and weight get no gradient, up to rounding noise
        # amplified by 1/√eps (torch's own noise is as large), so compare with the exact values
        noise = 1e-5 * np.abs(g).max() * 2 / np.sqrt(1e-5)
        for p, tp in pairs[:2]:
            np.testing.assert_allclose(p.grad.numpy(), 0, atol=noise)
        pairs = pairs[2:]
    for p, tp in pairs:
        close(p.grad, tp.grad, dtype)


def test_layer_norm_only_weight_grads_and_non_contiguous_input():
    xa = data((6, 10), np.float32)
    x, tx = lepton.tensor(xa).transpose(0, 1), torch.tensor(xa).transpose(0, 1)  # [10, 6], strided
    (w, tw), (b, tb) = pair(data((6,), np.float32, 1)), pair(data((6,), np.float32, 2))
    F.layer_norm(x, (6,), w, b).sum().backward()
    TF.layer_norm(tx, (6,), tw, tb).sum().backward()
    close(w.grad, tw.grad, np.float32)
    close(b.grad, tb.grad, np.float32)


def test_norms_are_stable_for_a_large_mean():
    # float32 values 1e3 ± 0.1: a one-pass E[x²] - E[x]² would lose every digit and a plain float
    # sum for the mean a good part of them; what remains (~5e-4) is float32's rounding of x - mean.
    # (torch 2.13 here: 7e-4 for layer_norm, 6e-3 for batch_norm of [N, C].)
    rng = np.random.default_rng(0)
    xa = (1e3 + rng.standard_normal((4, 768)) * 0.1).astype(np.float32)
    x64 = xa.astype(np.float64)
    ref = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(F.layer_norm(lepton.tensor(xa), (768,)).numpy(), ref, atol=1e-3)
    for shape in ((8, 3, 40, 40), (4000, 3)):  # channel path, row path
        xb = (1e3 + rng.standard_normal(shape) * 0.1).astype(np.float32)
        x64 = xb.astype(np.float64)
        dims = (0, 2, 3) if len(shape) == 4 else (0,)
        ref = (x64 - x64.mean(dims, keepdims=True)) / np.sqrt(x64.var(dims, keepdims=True) + 1e-5)
        np.testing.assert_allclose(F.batch_norm(lepton.tensor(xb), None, None, training=True).numpy(), ref, atol=1e-3)


@pytest.mark.parametrize("dtype", [lepton.float16, lepton.bfloat16])
def test_layer_norm_16bit_computes_in_float32(dtype):
    xa = data((4, 33), np.float32)
    x = lepton.tensor(xa).to(dtype)
    y = F.layer_norm(x, (33,))
    assert y.dtype == dtype
    ref = TF.layer_norm(torch.tensor(x.float().numpy()), (33,)).numpy()
    np.testing.assert_allclose(y.float().numpy(), ref, rtol=2e-2, atol=2e-2)


def test_layer_norm_gradcheck():
    x = lepton.tensor(data((3, 5), np.float64), requires_grad=True)
    w = lepton.tensor(data((5,), np.float64, 1), requires_grad=True)
    b = lepton.tensor(data((5,), np.float64, 2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (5,), w, b), [x, w, b])


# the last shapes are large enough for the fast kernels to split the work between threads
@pytest.mark.parametrize("shape,normalized", [((9, 17), (17,)), ((2, 3, 4, 5), (4, 5)), ((300, 64), (64,)),
                                              ((513, 129), (129,))])
def test_layer_norm_fast_kernel_matches_reference(shape, normalized):
    def run():
        x = lepton.tensor(data(shape, np.float32), requires_grad=True)
        w = lepton.tensor(data(normalized, np.float32, 1), requires_grad=True)
        b = lepton.tensor(data(normalized, np.float32, 2), requires_grad=True)
        y = F.layer_norm(x, normalized, w, b)
        y.backward(lepton.tensor(data(shape, np.float32, 3)))
        return [t.detach().numpy() for t in (y, x.grad, w.grad, b.grad)]

    fast = run()
    _C._set_norm_reference(True)
    try:
        ref = run()
    finally:
        _C._set_norm_reference(False)
    for f, r in zip(fast, ref):
        np.testing.assert_allclose(f, r, rtol=1e-4, atol=1e-5)


def test_layer_norm_module():
    m = nn.LayerNorm(8)
    assert m.normalized_shape == (8,) and m.eps == 1e-5 and m.elementwise_affine
    np.testing.assert_array_equal(m.weight.numpy(), np.ones(8, np.float32))
    np.testing.assert_array_equal(m.bias.numpy(), np.zeros(8, np.float32))
    assert list(m.state_dict()) == ["weight", "bias"]
    assert repr(m) == "LayerNorm((8,), eps=1e-05, elementwise_affine=True)"
    assert nn.LayerNorm(8, bias=False).bias is None
    bare = nn.LayerNorm((2, 4), elementwise_affine=False)
    assert bare.weight is None and list(bare.parameters()) == []
    x = data((3, 2, 4), np.float32)
    close(bare(lepton.tensor(x)), torch.nn.LayerNorm((2, 4), elementwise_affine=False)(torch.tensor(x)), np.float32)
    # state_dict round trip from torch's layer (values copied through numpy)
    tm = torch.nn.LayerNorm(8)
    with torch.no_grad():
        tm.weight.uniform_(0.5, 1.5)
        tm.bias.uniform_(-1, 1)
    m.load_state_dict({k: lepton.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = data((5, 8), np.float32)
    close(m(lepton.tensor(x)), tm(torch.tensor(x)), np.float32)
    assert m.to(lepton.float64)(lepton.tensor(x.astype(np.float64))).dtype == lepton.float64


def test_layer_norm_errors():
    x = lepton.randn(4, 6)
    with pytest.raises(ValueError, match=r"normalized_shape=\[5\], expected input with shape \[\*, 5\], but got input of size \[4, 6\]"):
        F.layer_norm(x, (5,))
    with pytest.raises(ValueError, match=r"normalized_shape=\[3, 4, 6\]"):
        F.layer_norm(x, (3, 4, 6))
    with pytest.raises(ValueError, match=r"expected weight of shape \[6\] for input of shape \[4, 6\], got \[5\]"):
        F.layer_norm(x, (6,), lepton.ones(5))
    with pytest.raises(TypeError, match="bias is float64 but the input is float32"):
        F.layer_norm(x, (6,), None, lepton.zeros(6, dtype=lepton.float64))
    with pytest.raises(TypeError, match="floating-point"):
        F.layer_norm(lepton.ones(2, 3, dtype=lepton.int64), (3,))
    with pytest.raises(ValueError, match="at least one dimension"):
        F.layer_norm(x, ())
    a = lepton.randn(2, 3, requires_grad=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        lepton.autograd.grad(F.layer_norm(a, (3,)).pow(2).sum(), [a], create_graph=True)


# ---- batch_norm ------------------------------------------------------------------------------

# (shape): [N, C] and [N, C, L] with short runs take the row path, longer runs the channel path
BN_SHAPES = [(2, 1), (8, 5), (1, 3, 2), (4, 3, 7), (4, 3, 17), (2, 64, 9, 9), (3, 2, 1, 1), (5, 4, 3, 31)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_training_matches_torch(shape, affine, dtype):
    C = shape[1]
    (x, tx) = pair(data(shape, dtype))
    (w, tw) = pair(data((C,), dtype, 1)) if affine else (None, None)
    (b, tb) = pair(data((C,), dtype, 2)) if affine else (None, None)
    rm, rv = lepton.tensor(data((C,), dtype, 4)), lepton.tensor(np.abs(data((C,), dtype, 5)) + 0.5)
    trm, trv = torch.tensor(rm.numpy()), torch.tensor(rv.numpy())
    y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3, eps=1e-4)
    ty = TF.batch_norm(tx, trm, trv, tw, tb, training=True, momentum=0.3, eps=1e-4)
    close(y, ty, dtype)
    close(rm, trm, dtype)
    close(rv, trv, dtype)
    g = data(shape, dtype, seed=3)
    y.backward(lepton.tensor(g))
    ty.backward(torch.tensor(g))
    close(x.grad, tx.grad, dtype)
    if affine:
        close(w.grad, tw.grad, dtype)
        close(b.grad, tb.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 7), (2, 6, 5, 5)])
def test_batch_norm_eval_matches_torch(shape, dtype):
    C = shape[1]
    (x, tx), (w, tw), (b, tb) = pair(data(shape, dtype)), pair(data((C,), dtype, 1)), pair(data((C,), dtype, 2))
    rm, rv = data((C,), dtype, 4), np.abs(data((C,), dtype, 5)) + 0.5
    y = F.batch_norm(x, lepton.tensor(rm), lepton.tensor(rv), w, b, training=False)
    ty = TF.batch_norm(tx, torch.tensor(rm), torch.tensor(rv), tw, tb, training=False)
    close(y, ty, dtype)
    g = data(shape, dtype, seed=3)
    y.backward(lepton.tensor(g))
    ty.backward(torch.tensor(g))
    for p, tp in ((x, tx), (w, tw), (b, tb)):
        close(p.grad, tp.grad, dtype)


def test_batch_norm_gradcheck():
    for shape, training in (((4, 3), True), ((3, 2, 5), True), ((2, 2, 17), True), ((3, 2, 4), False)):
        x = lepton.tensor(data(shape, np.float64), requires_grad=True)
        w = lepton.tensor(data((shape[1],), np.float64, 1), requires_grad=True)
        b = lepton.tensor(data((shape[1],), np.float64, 2), requires_grad=True)
        rm, rv = lepton.zeros(shape[1], dtype=lepton.float64), lepton.ones(shape[1], dtype=lepton.float64)
        assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.0), [x, w, b])


@pytest.mark.parametrize("shape", [(64, 7), (6, 5, 3), (4, 6, 20), (3, 8, 6, 6), (5000, 7), (33, 8, 130)])
def test_batch_norm_fast_kernel_matches_reference(shape):
    def run(training):
        x = lepton.tensor(data(shape, np.float32), requires_grad=True)
        w = lepton.tensor(data((shape[1],), np.float32, 1), requires_grad=True)
        b = lepton.tensor(data((shape[1],), np.float32, 2), requires_grad=True)
        rm, rv = lepton.zeros(shape[1]), lepton.ones(shape[1])
        y = F.batch_norm(x, rm, rv, w, b, training=training)
        y.backward(lepton.tensor(data(shape, np.float32, 3)))
        return [t.detach().numpy() for t in (y, x.grad, w.grad, b.grad, rm, rv)]

    for training in (True, False):
        fast = run(training)
        _C._set_norm_reference(True)
        try:
            ref = run(training)
        finally:
            _C._set_norm_reference(False)
        for f, r in zip(fast, ref):
            np.testing.assert_allclose(f, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("cls", ["BatchNorm1d", "BatchNorm2d"])
def test_batch_norm_module_running_stats_and_modes(cls, momentum):
    shape = (6, 4, 5, 5) if cls == "BatchNorm2d" else (6, 4)
    m, tm = getattr(nn, cls)(4, momentum=momentum), getattr(torch.nn, cls)(4, momentum=momentum)
    with torch.no_grad():
        tm.weight.uniform_(0.5, 1.5)
        tm.bias.uniform_(-1, 1)
    m.load_state_dict({k: lepton.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    for step in range(4):
        xa = data(shape, np.float32, seed=10 + step, shift=step)
        close(m(lepton.tensor(xa)), tm(torch.tensor(xa)), np.float32)
    assert int(m.num_batches_tracked.item()) == 4
    for key, value in tm.state_dict().items():
        np.testing.assert_allclose(m.state_dict()[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-6)
    m.eval(), tm.eval()
    xa = data(shape, np.float32, seed=20)
    close(m(lepton.tensor(xa)), tm(torch.tensor(xa)), np.float32)
    before = m.running_mean.numpy().copy()
    m(lepton.tensor(xa))
    np.testing.assert_array_equal(m.running_mean.numpy(), before)  # eval leaves them alone
    assert int(m.num_batches_tracked.item()) == 4
    m.train()
    m(lepton.tensor(xa))
    assert int(m.num_batches_tracked.item()) == 5


@pytest.mark.parametrize("dtype", [lepton.float16, lepton.bfloat16])
def test_batch_norm_16bit(dtype):
    xa = data((8, 3, 4, 4), np.float32)
    ref = torch.nn.BatchNorm2d(3)
    expected = ref(torch.tensor(xa)).detach().numpy()
    for m in (nn.BatchNorm2d(3), nn.BatchNorm2d(3).to(dtype)):  # float32 or 16-bit parameters and statistics
        y = m(lepton.tensor(xa).to(dtype))
        assert y.dtype == dtype
        np.testing.assert_allclose(y.float().numpy(), expected, rtol=3e-2, atol=3e-2)
        np.testing.assert_allclose(m.running_mean.float().numpy(), ref.running_mean.numpy(), rtol=2e-2, atol=2e-2)


def test_batch_norm_module_state_dict_and_options():
    m = nn.BatchNorm2d(3)
    assert list(m.state_dict()) == list(torch.nn.BatchNorm2d(3).state_dict())
    assert m.num_batches_tracked.dtype == lepton.int64
    assert repr(m) == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    copy = nn.BatchNorm2d(3)
    m.running_mean.fill_(2.0)
    copy.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(copy.running_mean.numpy(), [2.0, 2.0, 2.0])
    bare = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert list(bare.state_dict()) == [] and bare.running_mean is None
    xa = data((5, 3), np.float32)
    ref = torch.nn.BatchNorm1d(3, affine=False, track_running_stats=False).eval()(torch.tensor(xa))
    close(bare.eval()(lepton.tensor(xa)), ref, np.float32)  # no running stats: batch stats even in eval
    m.reset_running_stats()
    np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(3, np.float32))


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        nn.BatchNorm2d(3)(lepton.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(lepton.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected input with 3 channels in dim 1, got shape \(2, 4, 5, 5\)"):
        nn.BatchNorm2d(3)(lepton.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"expected running_mean of shape \[4\] for input of shape \[2, 4\], got \[3\]"):
        F.batch_norm(lepton.randn(2, 4), lepton.zeros(3), lepton.ones(3), training=True)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        F.batch_norm(lepton.randn(1, 4), None, None, training=True)
    with pytest.raises(ValueError, match="required when training=False"):
        F.batch_norm(lepton.randn(3, 4), None, None, training=False)
    with pytest.raises(ValueError, match=r"expected input of shape \[N, C, ...\], got \[4\]"):
        F.batch_norm(lepton.randn(4), None, None, training=True)
    with pytest.raises(TypeError, match="weight is float64 but the input is float32"):
        F.batch_norm(lepton.randn(3, 2), None, None, lepton.ones(2, dtype=lepton.float64), training=True)


@pytest.mark.parametrize("threads", [1, 3])
def test_results_do_not_depend_on_the_thread_count(threads):
    # the weight/bias gradients and batch statistics are summed in fixed parts, whichever thread
    # runs them: bit-for-bit equal results with any thread count
    def run():
        x = lepton.tensor(data((700, 96), np.float32), requires_grad=True)
        w = lepton.tensor(data((96,), np.float32, 1), requires_grad=True)
        F.layer_norm(x, (96,), w, w * 0.5).backward(lepton.tensor(data((700, 96), np.float32, 3)))
        xb = lepton.tensor(data((6000, 9), np.float32), requires_grad=True)
        F.batch_norm(xb, None, None, w[:9], None, training=True).backward(lepton.tensor(data((6000, 9), np.float32, 4)))
        return [t.numpy() for t in (x.grad, w.grad, xb.grad)]

    before = lepton.get_num_threads()
    base = run()
    lepton.set_num_threads(threads)
    try:
        other = run()
    finally:
        lepton.set_num_threads(before)
    for a, b in zip(base, other):
        np.testing.assert_array_equal(a, b)
