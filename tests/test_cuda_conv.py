"""conv2d and pooling on CUDA against the same ops on the CPU, forward and backward.

Tolerances: float32 1e-4 relative/absolute (GEMM and gather sums in other orders), float64 1e-10,
16-bit pooling 1e-2 (the GPU pools 16-bit natively, the CPU through float32; both round once).
"""

import numpy as np
import pytest

import lepton
import lepton.nn.functional as F

pytestmark = pytest.mark.cuda

TOL = {lepton.float32: 1e-4, lepton.float64: 1e-10, lepton.bfloat16: 1e-2, lepton.float16: 1e-2}
DTYPES = [lepton.float32, lepton.float64]
POOL_DTYPES = DTYPES + [lepton.bfloat16, lepton.float16]


def pair(shape, dtype, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    return (lepton.tensor(x, dtype=dtype).requires_grad_(True),
            lepton.tensor(x, dtype=dtype, device="cuda").requires_grad_(True))


def close(gpu, cpu, dtype):
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.detach().cpu().float().numpy(), cpu.detach().float().numpy(), rtol=TOL[dtype],
                               atol=TOL[dtype])


def backward_both(yc, yg):
    w = np.random.default_rng(99).standard_normal(tuple(yc.shape))
    (yc * lepton.tensor(w, dtype=yc.dtype)).sum().backward()
    (yg * lepton.tensor(w, dtype=yg.dtype, device="cuda")).sum().backward()


CONVS = [  # (n, c_in, h, w, c_out, k, stride, padding, dilation, groups)
    (2, 1, 28, 28, 8, 3, 1, 1, 1, 1),
    (3, 4, 9, 7, 6, 3, 2, 0, 1, 2),
    (1, 6, 11, 13, 6, 3, 1, 2, 2, 6),  # depthwise, dilated
    (2, 5, 8, 8, 7, 1, 1, 0, 1, 1),    # 1x1
    (1, 3, 5, 5, 2, 5, 3, 2, 1, 1),
    (0, 3, 5, 5, 2, 3, 1, 1, 1, 1),    # empty batch
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c_in,h,w,c_out,k,stride,padding,dilation,groups", CONVS)
def test_conv2d(dtype, n, c_in, h, w, c_out, k, stride, padding, dilation, groups):
    xc, xg = pair((n, c_in, h, w), dtype, 1)
    wc, wg = pair((c_out, c_in // groups, k, k), dtype, 2)
    bc, bg = pair((c_out,), dtype, 3)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    yc, yg = F.conv2d(xc, wc, bc, **kw), F.conv2d(xg, wg, bg, **kw)
    close(yg, yc, dtype)
    backward_both(yc, yg)
    for g, c in ((xg, xc), (wg, wc), (bg, bc)):
        close(g.grad, c.grad, dtype)


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
