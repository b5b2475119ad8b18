"""conv2d and pooling on CUDA against the same ops on the CPU and torch on the GPU, forward and backward.

conv2d runs through both CUDA kernel sets: "fast" (direct kernels for depthwise, implicit GEMM on the
tensor cores for float16/bfloat16, im2col + GEMM for float32/float64) and "reference" (im2col + GEMM
for every dtype). The CPU computes 16-bit convolutions in float32 and rounds once, as the GPU does.

Tolerances: float32 1e-4 relative/absolute (GEMM and gather sums in other orders), float64 1e-10;
16-bit conv2d: |gpu - expected| <= tol * (|expected| + max|expected|) with tol 1e-2 for bfloat16 and
3e-3 for float16 (one rounding of the output, 2^-9 and 2^-12 relative, plus float32 sums in
another order), twice that against torch (cuDNN may round inside); 16-bit pooling 1e-2 (both round once).
"""

import numpy as np
import pytest

import lepton
import lepton.nn.functional as F
from lepton import _C

pytestmark = pytest.mark.cuda

TOL = {lepton.float32: 1e-4, lepton.float64: 1e-10, lepton.bfloat16: 1e-2, lepton.float16: 1e-2}
CONV_TOL = {lepton.float32: 1e-4, lepton.float64: 1e-10, lepton.bfloat16: 1e-2, lepton.float16: 3e-3}
DTYPES = [lepton.float32, lepton.float64]
HALF_DTYPES = [lepton.bfloat16, lepton.float16]
POOL_DTYPES = DTYPES + HALF_DTYPES


def pair(shape, dtype, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    return (lepton.tensor(x, dtype=dtype).requires_grad_(True),
            lepton.tensor(x, dtype=dtype, device="cuda").requires_grad_(True))


def close(gpu, cpu, dtype):
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.detach().cpu().float().numpy(), cpu.detach().float().numpy(), rtol=TOL[dtype],
                               atol=TOL[dtype])


def close_scaled(actual, expected, tol):
    """|actual - expected| <= tol * (|expected| + max|expected|), both numpy arrays."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def host(t):
    return t.detach().cpu().float().numpy()


def backward_both(yc, yg):
    w = np.random.default_rng(99).standard_normal(tuple(yc.shape))
    (yc * lepton.tensor(w, dtype=yc.dtype)).sum().backward()
    (yg * lepton.tensor(w, dtype=yg.dtype, device="cuda")).sum().backward()


@pytest.fixture(params=["fast", "reference"])
def kernels(request):
    before = _C.conv_reference()
    _C.set_conv_reference(request.param == "reference")
    yield request.param
    _C.set_conv_reference(before)


CONVS = [  # (n, c_in, h, w, c_out, (kh, kw), stride, padding, dilation, groups)
    (2, 1, 28, 28, 8, (3, 3), 1, 1, 1, 1),
    (3, 4, 9, 7, 6, (3, 3), 2, 0, 1, 2),
    (1, 6, 11, 13, 6, (3, 3), 1, 2, 2, 6),       # depthwise, dilated
    (2, 4, 10, 9, 8, (3, 2), 2, 1, 1, 4),        # depthwise with 2 output channels per input channel
    (2, 5, 8, 8, 7, (1, 1), 1, 0, 1, 1),         # 1x1
    (1, 3, 5, 5, 2, (5, 5), 3, 2, 1, 1),
    (0, 3, 5, 5, 2, (3, 3), 1, 1, 1, 1),         # empty batch
    (5, 64, 15, 17, 136, (3, 3), 1, 1, 1, 1),    # several M and N tiles, channels a multiple of 8
    (3, 16, 14, 13, 32, (3, 3), 2, 1, 1, 1),     # stride 2 (strided backward-data)
    (2, 32, 9, 9, 16, (3, 3), 1, 1, 1, 4),       # 4 groups of 8 channels
    (3, 10, 12, 11, 9, (2, 3), (3, 1), (1, 0), (2, 1), 1),  # odd channels, mixed strides and dilations
    (4, 24, 6, 6, 40, (1, 1), 2, 0, 1, 1),       # strided 1x1 (ResNet shortcut)
    (1, 72, 5, 5, 80, (3, 3), 1, 1, 1, 1),       # few pixels, many channels: 64x256 block tiles
    (2, 72, 9, 9, 96, (3, 3), 1, 1, 1, 1),       # 128x128 block tiles in all three GEMMs
]
IDS = [f"n{c[0]}-{c[1]}to{c[4]}-{c[2]}x{c[3]}-k{c[5][0]}x{c[5][1]}-s{c[6]}-p{c[7]}-d{c[8]}-g{c[9]}" for c in CONVS]


def conv_pair(dtype, n, c_in, h, w, c_out, k, stride, padding, dilation, groups):
    """Forward + backward of the same conv2d on the CPU and the GPU: the CPU and GPU tensors."""
    xc, xg = pair((n, c_in, h, w), dtype, 1)
    wc, wg = pair((c_out, c_in // groups) + k, dtype, 2)
    bc, bg = pair((c_out,), dtype, 3)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    yc, yg = F.conv2d(xc, wc, bc, **kw), F.conv2d(xg, wg, bg, **kw)
    backward_both(yc, yg)
    return (yc, xc.grad, wc.grad, bc.grad), (yg, xg.grad, wg.grad, bg.grad)


@pytest.mark.parametrize("dtype", DTYPES + HALF_DTYPES)
@pytest.mark.parametrize("geometry", CONVS, ids=IDS)
def test_conv2d(kernels, dtype, geometry):
    cpu, gpu = conv_pair(dtype, *geometry)
    for g, c in zip(gpu, cpu):
        assert g.device.type == "cuda" and g.dtype == dtype
        if dtype in HALF_DTYPES:
            close_scaled(host(g), host(c), CONV_TOL[dtype])
        else:
            close(g, c, dtype)


@pytest.mark.parametrize("dtype", DTYPES + HALF_DTYPES)
@pytest.mark.parametrize("geometry", CONVS, ids=IDS)
def test_conv2d_fast_matches_reference(dtype, geometry):
    """The fast CUDA kernels (implicit GEMM, depthwise) against the im2col reference on the GPU."""
    before = _C.conv_reference()
    try:
        results = []
        for ref in (False, True):
            _C.set_conv_reference(ref)
            results.append(conv_pair(dtype, *geometry)[1])
    finally:
        _C.set_conv_reference(before)
    for fast, ref in zip(*results):
        close_scaled(host(fast), host(ref), CONV_TOL[dtype])


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("geometry", CONVS, ids=IDS)
def test_conv2d_against_torch(dtype, geometry):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups = geometry
    _, gpu = conv_pair(dtype, *geometry)
    tdtype = getattr(torch, dtype.name)
    t = [torch.tensor(np.random.default_rng(s).standard_normal(shape), device="cuda").to(tdtype).requires_grad_(True)
         for s, shape in ((1, (n, c_in, h, w)), (2, (c_out, c_in // groups) + k), (3, (c_out,)))]
    y = torch.nn.functional.conv2d(*t, stride=stride, padding=padding, dilation=dilation, groups=groups)
    gy = np.random.default_rng(99).standard_normal(tuple(y.shape))
    y.backward(torch.tensor(gy, device="cuda").to(tdtype))
    for ours, theirs in zip(gpu, [y] + [v.grad for v in t]):
        close_scaled(host(ours), theirs.detach().float().cpu().numpy(), 2 * CONV_TOL[dtype])


def test_conv2d_autocast_bfloat16():
    """Under autocast a float32 conv2d runs in bfloat16 on the GPU (the implicit GEMM) and matches float32."""
    x = lepton.randn(4, 32, 12, 12, device="cuda")
    w = lepton.randn(48, 32, 3, 3, device="cuda")
    with lepton.autocast(device_type="cuda", dtype=lepton.bfloat16):
        y = F.conv2d(x, w, padding=1)
    assert y.dtype == lepton.bfloat16
    close_scaled(host(y), host(F.conv2d(x, w, padding=1)), 2e-2)


POOLS = [  # (kernel, stride, padding, dilation, ceil_mode)
    (2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 2, False), (3, 2, 1, 1, True), (2, 1, 0, 1, False)]


@pytest.mark.parametrize("dtype", POOL_DTYPES)
@pytest.mark.parametrize("k,stride,padding,dilation,ceil_mode", POOLS)
def test_max_pool2d(dtype, k, stride, padding, dilation, ceil_mode):
    xc, xg = pair((2, 3, 11, 10), dtype, 4)
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode, return_indices=True)
    (yc, ic), (yg, ig) = F.max_pool2d(xc, k, **kw), F.max_pool2d(xg, k, **kw)
    close(yg, yc, dtype)
    np.testing.assert_array_equal(ig.cpu().numpy(), ic.numpy())
    backward_both(yc, yg)
    close(xg.grad, xc.grad, dtype)


@pytest.mark.parametrize("dtype", POOL_DTYPES)
@pytest.mark.parametrize("k,stride,padding,_,ceil_mode", POOLS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d(dtype, k, stride, padding, _, ceil_mode, count_include_pad):
    xc, xg = pair((2, 3, 11, 10), dtype, 5)
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    yc, yg = F.avg_pool2d(xc, k, **kw), F.avg_pool2d(xg, k, **kw)
    close(yg, yc, dtype)
    backward_both(yc, yg)
    close(xg.grad, xc.grad, dtype)


@pytest.mark.parametrize("dtype", POOL_DTYPES)
@pytest.mark.parametrize("out", [1, (3, 4), (5, 7), (11, 10)])
def test_adaptive_avg_pool2d(dtype, out):
    xc, xg = pair((2, 3, 11, 10), dtype, 6)
    yc, yg = F.adaptive_avg_pool2d(xc, out), F.adaptive_avg_pool2d(xg, out)
    close(yg, yc, dtype)
    backward_both(yc, yg)
    close(xg.grad, xc.grad, dtype)
