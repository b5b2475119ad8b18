"""max_pool2d, avg_pool2d, adaptive_avg_pool2d and their modules against torch: values, indices and
input gradients (float32 within 1e-5 relative, float64 within 1e-12; max pooling exactly), float64
gradcheck, bad input."""
import numpy as np
import pytest

import lepton
from conftest import run_python
from lepton import nn
import lepton.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def both(shape, dtype=np.float32, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return lepton.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


def check(fn, tfn, shape, dtype=np.float32, exact=False):
    """fn(x) against tfn(tx), forward and the input gradient for a random output gradient."""
    x, tx = both(shape, dtype)
    y, yt = fn(x), tfn(tx)
    tol = dict(rtol=0, atol=0) if exact else TOL[dtype]
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), **tol)
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(dtype)
    y.backward(lepton.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **TOL[dtype])
    return y


# (input shape, kernel_size, keyword arguments shared by both pools)
WINDOWS = [
    ((2, 3, 8, 8), 2, {}),
    ((1, 1, 7, 9), 3, {}),
    ((2, 3, 13, 11), (3, 2), dict(stride=(2, 1))),
    ((2, 2, 9, 9), 3, dict(stride=2, padding=1)),
    ((2, 2, 10, 7), 3, dict(stride=2, padding=1, ceil_mode=True)),
    ((1, 3, 11, 11), 2, dict(stride=3, ceil_mode=True)),       # stride > kernel
    ((3, 2, 5, 6), 4, dict(stride=1, padding=2)),
    ((2, 5, 3, 3), 3, {}),                                        # window = input
    ((4, 7, 9), 2, {}),                                          # unbatched [C, H, W]
    ((64, 32, 28, 28), 2, {}),                                   # the CNN's layer
]


@pytest.mark.parametrize("shape,k,kw", WINDOWS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_matches_torch(shape, k, kw, dtype):
    check(lambda x: F.max_pool2d(x, k, **kw), lambda x: TF.max_pool2d(x, k, **kw), shape, dtype, exact=True)


@pytest.mark.parametrize("shape,k,kw", WINDOWS[:6] + [((2, 3, 15, 13), 3, dict(dilation=2, padding=1)),
                                                       ((1, 2, 16, 16), (2, 3), dict(dilation=(3, 2),
                                                                                     ceil_mode=True))])
def test_max_pool_indices_match_torch(shape, k, kw):
    x, tx = both(shape)
    y, i = F.max_pool2d(x, k, return_indices=True, **kw)
    yt, it = TF.max_pool2d(tx, k, return_indices=True, **kw)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    assert i.dtype == lepton.int64
    np.testing.assert_array_equal(i.numpy(), it.numpy())
    yi, ii = F.max_pool2d_with_indices(x, k, **kw)
    np.testing.assert_array_equal(ii.numpy(), it.numpy())


ISA_SCRIPT = """
import numpy as np, torch, lepton
import lepton.nn.functional as F
for dt in (np.float32, np.float64):
    x = np.random.default_rng(0).standard_normal((2, 3, 29, 37)).astype(dt)
    for k, kw in [(2, {}), (3, dict(stride=2, padding=1)), (3, dict(stride=1, dilation=2, ceil_mode=True))]:
        y, i = F.max_pool2d(lepton.tensor(x), k, return_indices=True, **kw)
        yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), k, return_indices=True, **kw)
        assert (y.numpy() == yt.numpy()).all() and (i.numpy() == it.numpy()).all()
        kw.pop("dilation", None)
        a, at = F.avg_pool2d(lepton.tensor(x), k, **kw), torch.nn.functional.avg_pool2d(torch.tensor(x), k, **kw)
        np.testing.assert_allclose(a.numpy(), at.numpy(), rtol=1e-5, atol=1e-6)
print("ok", lepton.info()["cpu_isa"])
"""


@pytest.mark.parametrize("isa", ["avx2", "scalar"])
def test_other_isa_builds_in_subprocess(isa):
    """The vector-lane paths of the narrower ISA builds (8 and 4 float lanes)."""
    r = run_python(ISA_SCRIPT, env={"LEPTON_CPU_ISA": isa}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok", isa]


def test_max_pool_ties_and_nan_follow_torch():
    x = np.ones((1, 1, 4, 6), np.float32)
    x[0, 0, 0, 3] = np.nan
    x[0, 0, 3, 4] = -np.inf
    y, i = F.max_pool2d(lepton.tensor(x), 2, return_indices=True)
    yt, it = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), yt.numpy())  # NaN propagates, ties take the first
    np.testing.assert_array_equal(i.numpy(), it.numpy())


def test_overlapping_windows_accumulate_gradient():
    x = np.zeros((1, 1, 3, 3), np.float32)
    x[0, 0, 1, 1] = 5  # the maximum of all four 2x2 windows of stride 1
    lx = lepton.tensor(x, requires_grad=True)
    F.max_pool2d(lx, 2, stride=1).sum().backward()
    assert lx.grad.numpy()[0, 0, 1, 1] == 4 and lx.grad.numpy().sum() == 4


AVG = [
    ((2, 3, 8, 8), 2, {}),
    ((2, 3, 13, 11), (3, 2), dict(stride=(2, 1))),
    ((2, 2, 9, 9), 3, dict(stride=2, padding=1)),
    ((2, 2, 9, 9), 3, dict(stride=2, padding=1, count_include_pad=False)),
    ((2, 2, 10, 7), 3, dict(stride=2, padding=1, ceil_mode=True)),
    ((2, 2, 10, 7), 3, dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ((1, 3, 11, 11), 2, dict(stride=3, ceil_mode=True)),
    ((3, 2, 5, 6), 4, dict(stride=1, padding=2, divisor_override=3)),
    ((4, 7, 9), 2, {}),
]


@pytest.mark.parametrize("shape,k,kw", AVG)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_matches_torch(shape, k, kw, dtype):
    check(lambda x: F.avg_pool2d(x, k, **kw), lambda x: TF.avg_pool2d(x, k, **kw), shape, dtype)


@pytest.mark.parametrize("shape,size", [
    ((2, 3, 8, 8), 1), ((2, 3, 13, 11), (5, 3)), ((1, 2, 7, 7), 7), ((2, 2, 5, 4), (8, 9)),  # larger than input
    ((2, 3, 10, 9), (None, 4)), ((3, 10, 9), (4, None)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_avg_pool_matches_torch(shape, size, dtype):
    check(lambda x: F.adaptive_avg_pool2d(x, size), lambda x: TF.adaptive_avg_pool2d(x, size), shape, dtype)


def test_adaptive_empty_output():
    x = lepton.ones((2, 3, 6, 6), requires_grad=True)
    y = F.adaptive_avg_pool2d(x, (0, 2))
    assert tuple(y.shape) == (2, 3, 0, 2) == tuple(TF.adaptive_avg_pool2d(torch.ones(2, 3, 6, 6), (0, 2)).shape)
    y.sum().backward()  # torch's backward refuses this; the gradient is simply zero
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3, 6, 6), np.float32))


def test_empty_batch():
    x = lepton.zeros((0, 3, 8, 8), requires_grad=True)
    for y in (F.max_pool2d(x, 2), F.avg_pool2d(x, 2), F.adaptive_avg_pool2d(x, 3)):
        assert y.shape[0] == 0 and y.shape[1] == 3
        y.sum().backward()
        assert tuple(x.grad.shape) == (0, 3, 8, 8)


@pytest.mark.parametrize("fn", [
    lambda x: F.max_pool2d(x, 3, stride=2, padding=1, dilation=(1, 2)),
    lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    lambda x: F.adaptive_avg_pool2d(x, (3, 4)),
])
def test_gradcheck(fn):
    x = lepton.tensor(np.random.default_rng(2).standard_normal((2, 2, 7, 9)), requires_grad=True)
    assert lepton.autograd.gradcheck(fn, (x,))


def test_double_backward_is_refused():
    x = lepton.tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    for fn in (lambda x: F.max_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2), lambda x: F.adaptive_avg_pool2d(x, 1)):
        with pytest.raises(NotImplementedError, match="double backward"):
            lepton.autograd.grad(fn(x).sum(), [x], create_graph=True)


@pytest.mark.parametrize("call,exc,match", [
    (lambda x: F.max_pool2d(x[0, 0], 2), ValueError, r"got input of shape \[8, 8\]"),
    (lambda x: F.avg_pool2d(x[None], 2), ValueError, r"got input of shape \[1, 2, 3, 8, 8\]"),
    (lambda x: F.adaptive_avg_pool2d(x[:, :0], 2), ValueError,
     r"non-zero C, H and W, got input of shape \[2, 0, 8, 8\]"),
    (lambda x: F.max_pool2d(x, 2, padding=2), ValueError, r"at most half of kernel size, got padding \(2, 2\)"),
    (lambda x: F.max_pool2d(x, 0), ValueError, r"kernel_size must be positive"),
    (lambda x: F.avg_pool2d(x, 2, stride=0), ValueError, r"stride must be positive"),
    (lambda x: F.max_pool2d(x, 9), ValueError, r"input of shape \[2, 3, 8, 8\] is too small for kernel_size \(9, 9\)"),
    (lambda x: F.max_pool2d(x, 5, dilation=2), ValueError, r"too small"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, r"divisor_override must be non-zero"),
    (lambda x: F.adaptive_avg_pool2d(x, -1), ValueError, r"output_size must be non-negative"),
    (lambda x: F.max_pool2d(x.to(lepton.int32), 2), TypeError, r"floating-point"),
    (lambda x: F.max_pool2d(x, (2, 2, 2)), ValueError, r"kernel_size must be an int or a pair of ints"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call(lepton.zeros((2, 3, 8, 8)))


@pytest.mark.parametrize("name,args,kw", [
    ("MaxPool2d", (2,), {}),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, dilation=1, ceil_mode=True)),
    ("MaxPool2d", ((2, 3),), dict(stride=(1, 2))),
    ("AvgPool2d", (2,), {}),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    ("AdaptiveAvgPool2d", ((3, 5),), {}),
    ("AdaptiveAvgPool2d", (1,), {}),
    ("AdaptiveAvgPool2d", ((None, 2),), {}),
])
def test_modules_match_torch(name, args, kw):
    m, t = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
    assert repr(m) == repr(t)
    check(m, t, (2, 3, 11, 10))


def test_max_pool_module_returns_indices():
    x, tx = both((2, 3, 8, 8))
    y, i = nn.MaxPool2d(2, return_indices=True)(x)
    yt, it = torch.nn.MaxPool2d(2, return_indices=True)(tx)
    np.testing.assert_array_equal(i.numpy(), it.numpy())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name,args", [("max_pool2d", (3, 2, 1)), ("avg_pool2d", (3, 2, 1)),
                                       ("adaptive_avg_pool2d", ((4, 3),))])
def test_16bit_input_pools_in_its_dtype(dtype, name, args):
    """16-bit inputs (what conv layers give under autocast) pool on the CPU through float32 and
    come back in their own dtype, as torch's do; max pooling is exact, averages within a 16-bit ulp."""
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 8)).astype(np.float32)
    lx = lepton.tensor(x).to(getattr(lepton, dtype)).requires_grad_(True)
    tx = torch.tensor(x).to(getattr(torch, dtype)).requires_grad_(True)
    y, yt = getattr(F, name)(lx, *args), getattr(TF, name)(tx, *args)
    assert y.dtype == getattr(lepton, dtype)
    tol = dict(rtol=0, atol=0) if name == "max_pool2d" else dict(rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(y.detach().float().numpy(), yt.detach().float().numpy(), **tol)
    g = np.random.default_rng(4).standard_normal(tuple(yt.shape)).astype(np.float32)
    y.backward(lepton.tensor(g).to(y.dtype))
    yt.backward(torch.tensor(g).to(yt.dtype))
    assert lx.grad.dtype == lx.dtype
    np.testing.assert_allclose(lx.grad.float().numpy(), tx.grad.float().numpy(), rtol=1e-2, atol=1e-2)
