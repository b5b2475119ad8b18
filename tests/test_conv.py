"""conv2d and nn.Conv2d against torch: forward and the gradients of input, weight and bias, for both
kernel sets (fast im2col+GEMM and the direct-loop reference), float64 gradcheck, bad input.

Tolerance: float32 results must satisfy |lepton - torch| <= 1e-4 * (|torch| + max|torch|), i.e. 1e-4
relative to the largest magnitude of the tensor compared (sums of up to a few thousand products);
float64 within 1e-10 of the same scale.
"""
import math

import numpy as np
import pytest

import lepton
from conftest import run_python
from lepton import _C, nn
import lepton.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RTOL = {np.float32: 1e-4, np.float64: 1e-10}


@pytest.fixture(params=["fast", "reference"])
def kernels(request):
    before = _C.conv_reference()
    _C.set_conv_reference(request.param == "reference")
    yield request.param
    _C.set_conv_reference(before)


def close(actual, expected, dtype=np.float32):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    actual = actual.detach().numpy() if isinstance(actual, lepton.Tensor) else actual
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def run_both(x_shape, w_shape, bias=True, dtype=np.float32, seed=0, **kw):
    """conv2d forward and backward in lepton and torch on the same data; compares everything."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    lx, lw = lepton.tensor(x, requires_grad=True), lepton.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    lb = lepton.tensor(b, requires_grad=True) if bias else None
    tb = torch.tensor(b, requires_grad=True) if bias else None
    y, yt = F.conv2d(lx, lw, lb, **kw), TF.conv2d(tx, tw, tb, **kw)
    close(y, yt, dtype)
    g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    y.backward(lepton.tensor(g))
    yt.backward(torch.tensor(g))
    close(lx.grad, tx.grad, dtype)
    close(lw.grad, tw.grad, dtype)
    if bias:
        close(lb.grad, tb.grad, dtype)
    return y


# (input shape, weight shape, conv2d keyword arguments)
CASES = [
    ((2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),
    ((1, 1, 28, 28), (8, 1, 3, 3), dict(padding=1)),                       # batch 1, one input channel
    ((3, 5, 13, 11), (7, 5, 3, 5), dict()),                                # primes, no padding
    ((2, 4, 17, 19), (6, 4, 2, 3), dict(stride=(2, 3), padding=(1, 2))),   # odd kernel shape, mixed strides
    ((2, 3, 16, 16), (5, 3, 3, 3), dict(stride=4)),                        # stride > kernel
    ((2, 3, 15, 15), (4, 3, 3, 3), dict(dilation=2, padding=2)),
    ((1, 2, 12, 10), (3, 2, 3, 2), dict(dilation=(3, 2), stride=(1, 2))),
    ((2, 6, 10, 10), (9, 2, 3, 3), dict(groups=3, padding=1)),
    ((2, 8, 9, 9), (8, 1, 3, 3), dict(groups=8, padding=1)),               # depthwise
    ((2, 4, 9, 9), (8, 1, 5, 5), dict(groups=4, padding=2, stride=2)),     # depthwise, multiplier 2
    ((3, 8, 7, 7), (5, 8, 1, 1), dict()),                                  # 1x1: no im2col
    ((2, 8, 7, 9), (5, 8, 1, 1), dict(stride=2)),                          # strided 1x1 uses im2col
    ((2, 4, 6, 6), (6, 2, 1, 1), dict(groups=2)),                          # grouped 1x1
    ((2, 3, 8, 7), (4, 3, 4, 2), dict(padding="same")),                    # even kernel: extra pad after
    ((1, 3, 9, 8), (4, 3, 3, 4), dict(padding="same", dilation=(2, 3))),
    ((2, 3, 8, 7), (4, 3, 3, 3), dict(padding="valid")),
    ((2, 3, 5, 5), (4, 3, 5, 5), dict()),                                  # kernel = input: 1x1 output
    ((1, 2, 3, 3), (3, 2, 3, 3), dict(padding=4)),                         # padding wider than the kernel
    ((4, 16, 30, 30), (24, 16, 3, 3), dict(padding=1)),                    # several tiles per image
    ((2, 5, 12, 12), (28, 5, 3, 3), dict(padding=1)),                      # 14-row register blocking
    ((2, 14, 9, 9), (9, 14, 3, 3), dict(padding=1)),
    ((1, 8, 13, 12), (16, 8, 3, 2), dict(dilation=(2, 3), padding=(2, 1))),
    ((2, 8, 8, 7), (8, 8, 4, 2), dict(padding="same")),
    ((1, 8, 3, 3), (8, 8, 3, 3), dict(padding=4)),                         # grad_x crops grad_y
    ((2, 16, 6, 6), (16, 8, 3, 3), dict(groups=2, padding=1)),
    ((2, 3, 7, 14), (32, 3, 3, 3), dict(padding=1)),                       # channels in vector lanes
    ((1, 32, 6, 28), (8, 32, 3, 3), dict(padding=1)),                      # ... for grad_x
    ((2, 4, 11, 10), (16, 4, 3, 3), dict(stride=(2, 1), padding=1)),
    ((2, 8, 9, 7), (16, 8, 1, 1), dict(stride=2)),
    ((1, 3, 13, 12), (16, 3, 3, 3), dict(stride=2, dilation=(1, 2), padding=(1, 0))),
    ((2, 64, 20, 20), (32, 64, 3, 3), dict(padding=1, stride=2)),
]


@pytest.mark.parametrize("x_shape,w_shape,kw", CASES)
def test_matches_torch(kernels, x_shape, w_shape, kw):
    run_both(x_shape, w_shape, **kw)


@pytest.mark.parametrize("x_shape,w_shape,kw", CASES[::3])
def test_matches_torch_float64(kernels, x_shape, w_shape, kw):
    run_both(x_shape, w_shape, dtype=np.float64, **kw)


def test_no_bias_and_unbatched(kernels):
    run_both((3, 3, 9, 9), (4, 3, 3, 3), bias=False, padding=1)
    y = run_both((3, 9, 8), (4, 3, 3, 3), padding=1)  # [C, H, W] in, [C_out, H, W] out
    assert tuple(y.shape) == (4, 9, 8)


def test_empty_batch(kernels):
    x = lepton.zeros((0, 3, 8, 8), requires_grad=True)
    w = lepton.tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    b = lepton.tensor(np.ones(4, np.float32), requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    assert tuple(y.shape) == (0, 4, 8, 8)
    y.sum().backward()
    assert tuple(x.grad.shape) == (0, 3, 8, 8)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros((4, 3, 3, 3), np.float32))
    np.testing.assert_array_equal(b.grad.numpy(), np.zeros(4, np.float32))


def test_non_contiguous_inputs(kernels):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 10, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    lx = lepton.tensor(x).transpose(2, 3)      # [2, 3, 8, 10], strided
    lw = lepton.tensor(w).transpose(2, 3)      # [5, 3, 3, 3], strided
    close(F.conv2d(lx, lw, padding=1), TF.conv2d(torch.tensor(x).transpose(2, 3), torch.tensor(w).transpose(2, 3),
                                                padding=1))


def test_fast_matches_reference():
    rng = np.random.default_rng(4)
    x = lepton.tensor(rng.standard_normal((3, 6, 23, 17)).astype(np.float32), requires_grad=True)
    w = lepton.tensor(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), requires_grad=True)
    g = lepton.tensor(rng.standard_normal((3, 8, 12, 9)).astype(np.float32))
    before = _C.conv_reference()
    results = []
    try:
        for ref in (False, True):
            _C.set_conv_reference(ref)
            y = F.conv2d(x, w, None, 2, 1, 1, 2)
            results.append([y.detach().numpy()] + [t.numpy() for t in lepton.autograd.grad(y, [x, w], g)])
    finally:
        _C.set_conv_reference(before)
    for fast, ref in zip(*results):
        close(fast, ref)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=(0, 1)), dict(dilation=2, padding="same"),
                                dict(groups=2, padding=1), dict(stride=(1, 2), dilation=(2, 1))])
def test_gradcheck(kernels, kw):
    rng = np.random.default_rng(5)
    x = lepton.tensor(rng.standard_normal((1, 4, 5, 6)), requires_grad=True)
    w = lepton.tensor(rng.standard_normal((4, 4 // kw.get("groups", 1), 3, 2)), requires_grad=True)
    b = lepton.tensor(rng.standard_normal(4), requires_grad=True)
    assert lepton.autograd.gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), (x, w, b))


ISA_SCRIPT = """
import numpy as np, lepton
from lepton import _C
import lepton.nn.functional as F
rng = np.random.default_rng(0)
selected = _C.conv_reference()
for dt in (np.float32, np.float64):
    for xs, ws, kw in [((2, 8, 11, 9), (16, 8, 3, 3), dict(padding=1)),
                       ((1, 14, 7, 8), (14, 14, 3, 2), dict(dilation=2)),
                       ((2, 4, 9, 9), (6, 4, 3, 3), dict(stride=2)), ((2, 6, 5, 5), (3, 6, 1, 1), {}),
                       ((2, 6, 7, 7), (6, 1, 3, 3), dict(groups=6, padding=1)), ((1, 3, 6, 30), (40, 3, 3, 3), {}),
                       ((1, 4, 5, 12), (32, 4, 3, 3), dict(padding=1)), ((2, 3, 9, 11), (16, 3, 3, 3), dict(stride=2))]:
        x = lepton.tensor(rng.standard_normal(xs).astype(dt), requires_grad=True)
        w = lepton.tensor(rng.standard_normal(ws).astype(dt), requires_grad=True)
        out = []
        for ref in (False, True):
            _C.set_conv_reference(ref)
            y = F.conv2d(x, w, None, **kw)
            out.append([y.detach().numpy()] + [t.numpy() for t in lepton.autograd.grad(y, [x, w], y.detach())])
        for a, b in zip(*out):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
print("ok", lepton.info()["cpu_isa"], selected)
"""


@pytest.mark.parametrize("env", [{"LEPTON_CPU_ISA": "avx2"}, {"LEPTON_CPU_ISA": "scalar"},
                                 {"LEPTON_CONV": "reference"}])
def test_other_kernel_sets_in_subprocess(env):
    """The fast kernels of the other ISA builds against the reference; LEPTON_CONV=reference selects it."""
    r = run_python(ISA_SCRIPT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    ok, isa, reference = r.stdout.split()
    assert ok == "ok" and isa == env.get("LEPTON_CPU_ISA", isa) and reference == str("LEPTON_CONV" in env)


def test_double_backward_is_refused():
    x = lepton.tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    w = lepton.tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        lepton.autograd.grad(F.conv2d(x, w).sum(), [x], create_graph=True)


def _raises(exc, match, x_shape, w_shape, b_shape=None, x_dtype=np.float32, w_dtype=np.float32, **kw):
    x = lepton.tensor(np.zeros(x_shape, x_dtype))
    w = lepton.tensor(np.zeros(w_shape, w_dtype))
    b = lepton.tensor(np.zeros(b_shape, np.float32)) if b_shape else None
    with pytest.raises(exc, match=match):
        F.conv2d(x, w, b, **kw)


@pytest.mark.parametrize("args", [
    (ValueError, r"input of shape \[3, 8\]", (3, 8), (4, 3, 3, 3)),
    (ValueError, r"input of shape \[1, 1, 3, 8, 8\]", (1, 1, 3, 8, 8), (4, 3, 3, 3)),
    (ValueError, r"weight of shape \[4, 3, 3\]", (1, 3, 8, 8), (4, 3, 3)),
    (ValueError, r"weight of shape \[4, 3, 3, 3\] expects input with 3 channels, but input of shape "
                 r"\[1, 2, 8, 8\] has 2", (1, 2, 8, 8), (4, 3, 3, 3)),
    (ValueError, r"\[5, 2, 3, 3\] must be divisible by groups=2", (1, 4, 8, 8), (5, 2, 3, 3), None, np.float32,
     np.float32, dict(groups=2)),
    (ValueError, r"groups must be a positive integer", (1, 4, 8, 8), (4, 4, 3, 3), None, np.float32, np.float32,
     dict(groups=0)),
    (ValueError, r"larger than the padded input \(4x4\) of input \[1, 3, 4, 4\]", (1, 3, 4, 4), (2, 3, 5, 5)),
    (ValueError, r"dilated size 5x5\) is larger than the padded input \(4x6\)", (1, 3, 4, 6), (2, 3, 3, 3), None,
     np.float32, np.float32, dict(dilation=2)),
    (ValueError, r"expected bias of shape \[4\] for weight of shape \[4, 3, 3, 3\], got \[3\]", (1, 3, 8, 8),
     (4, 3, 3, 3), (3,)),
    (TypeError, r"weight to have the input's dtype float32, got float64", (1, 3, 8, 8), (4, 3, 3, 3), None,
     np.float32, np.float64),
    (TypeError, r"floating-point", (1, 3, 8, 8), (4, 3, 3, 3), None, np.int64, np.int64),
    (ValueError, r"padding='same' is not supported for strided convolutions", (1, 3, 8, 8), (4, 3, 3, 3), None,
     np.float32, np.float32, dict(padding="same", stride=2)),
    (ValueError, r"invalid padding string 'full'", (1, 3, 8, 8), (4, 3, 3, 3), None, np.float32, np.float32,
     dict(padding="full")),
    (ValueError, r"padding must be non-negative", (1, 3, 8, 8), (4, 3, 3, 3), None, np.float32, np.float32,
     dict(padding=-1)),
    (ValueError, r"stride must be positive", (1, 3, 8, 8), (4, 3, 3, 3), None, np.float32, np.float32,
     dict(stride=0)),
    (ValueError, r"stride must be an int or a pair of ints", (1, 3, 8, 8), (4, 3, 3, 3), None, np.float32,
     np.float32, dict(stride=(1, 2, 3))),
])
def test_bad_input(args):
    exc, match, x_shape, w_shape, *rest = args
    b_shape, x_dtype, w_dtype, kw = (rest + [None, np.float32, np.float32, {}][len(rest):])
    _raises(exc, match, x_shape, w_shape, b_shape, x_dtype, w_dtype, **kw)


# ---- nn.Conv2d -------------------------------------------------------------------------------

@pytest.mark.parametrize("args,kw", [
    ((1, 32, 3), dict(padding=1)),
    ((3, 8, (3, 5)), dict(stride=2)),
    ((4, 8, 3), dict(groups=2, bias=False, dilation=2)),
    ((4, 4, 2), dict(padding="same")),
    ((4, 6, 1), dict(padding="valid", stride=(1, 2))),
    ((3, 5, 3), dict(padding=1, padding_mode="reflect")),
    ((3, 5, (3, 5)), dict(padding=(2, 1), stride=2, padding_mode="replicate")),
    ((2, 4, 4), dict(padding="same", padding_mode="circular")),  # even kernel: the odd pad goes after
    ((4, 4, 3), dict(padding="same", dilation=2, groups=2, padding_mode="reflect")),
])
def test_module_matches_torch(args, kw):
    m, t = nn.Conv2d(*args, **kw), torch.nn.Conv2d(*args, **kw)
    assert repr(m) == repr(t)
    with torch.no_grad():
        t.weight.copy_(torch.tensor(m.weight.detach().numpy()))
        if t.bias is not None:
            t.bias.copy_(torch.tensor(m.bias.detach().numpy()))
    x = np.random.default_rng(6).standard_normal((2, args[0], 9, 11)).astype(np.float32)
    lx, tx = lepton.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = m(lx), t(tx)
    close(y, yt)
    y.sum().backward()
    yt.sum().backward()
    close(m.weight.grad, t.weight.grad)
    close(lx.grad, tx.grad)
    assert sorted(m.state_dict()) == sorted(t.state_dict())


def test_module_init_follows_torch():
    lepton.manual_seed(0)
    m = nn.Conv2d(16, 64, 3, groups=2)
    fan_in = 8 * 9
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=√5) and the bias both give U(-1/√fan_in, 1/√fan_in)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert w.shape == (64, 8, 3, 3) and b.shape == (64,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound  # the std of U(-a, a) is a/√3
    assert np.abs(w).max() > 0.95 * bound


def test_module_bad_arguments():
    with pytest.raises(ValueError, match=r"reflect padding of \(3, 3\) does not fit dimension 3 of size 3"):
        nn.Conv2d(3, 4, 3, padding=3, padding_mode="reflect")(lepton.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        nn.Conv2d(4, 4, 3, padding="same", stride=2)
    with pytest.raises(ValueError, match="Invalid padding string"):
        nn.Conv2d(4, 4, 3, padding="full")
    with pytest.raises(ValueError, match=r"expects input with 4 channels, but input of shape \[2, 3, 8, 8\]"):
        nn.Conv2d(4, 4, 3)(lepton.zeros((2, 3, 8, 8)))


def test_small_cnn_step_matches_torch():
    """conv -> relu -> maxpool -> conv -> relu -> avgpool -> linear: loss and every gradient."""
    lepton.manual_seed(1)
    lm = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                       nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                             torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                             torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        for (name, p), (_, q) in zip(lm.named_parameters(), tm.named_parameters()):
            q.copy_(torch.tensor(p.detach().numpy()))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 1, 14, 14)).astype(np.float32)
    labels = rng.integers(0, 10, 5)
    loss = F.cross_entropy(lm(lepton.tensor(x)), lepton.tensor(labels))
    tloss = TF.cross_entropy(tm(torch.tensor(x)), torch.tensor(labels))
    close(loss, tloss)
    loss.backward()
    tloss.backward()
    for (name, p), (_, q) in zip(lm.named_parameters(), tm.named_parameters()):
        close(p.grad, q.grad)
