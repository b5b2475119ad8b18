"""CUDA GEMM (SIMT float32/float64, tensor-core float16/bfloat16) against a float64 reference.

The reference multiplies the inputs as the GPU sees them (already rounded to the dtype) in
float64. Tolerances: float64 1e-12 relative; float32 (fp32 FMA accumulation over K) 1e-5
relative plus 1e-5·sqrt(K) absolute; float16/bfloat16 (float32 accumulation, one rounding of
the output) one output ulp relative (2^-10 / 2^-7) plus the same absolute slack.
"""

import math

import numpy as np
import pytest

import lepton
from conftest import lt, to_np

pytestmark = pytest.mark.cuda

DTYPES = [lepton.float32, lepton.float64, lepton.float16, lepton.bfloat16]
REL = {lepton.float32: 1e-5, lepton.float64: 1e-12, lepton.float16: 2.0**-10, lepton.bfloat16: 2.0**-7}

# (M, K, N): ones, primes, tile multiples and their neighbours, K not a multiple of 8, K = 0,
# and the MNIST MLP's training shapes.
SHAPES = [(1, 1, 1), (1, 7, 1), (3, 5, 7), (17, 31, 13), (128, 32, 128), (129, 33, 127),
          (64, 784, 128), (257, 1000, 65), (5, 0, 3), (1, 4096, 1), (300, 8, 2)]


def gpu_and_ref(shape, dtype, seed):
    """A CUDA tensor of random values and the float64 NumPy array of what it holds."""
    x = lt(np.random.default_rng(seed).standard_normal(shape), dtype)
    return x.to("cuda"), to_np(x).astype(np.float64)


def check(out, ref, dtype, k):
    assert out.device.type == "cuda" and out.dtype == dtype and tuple(out.shape) == ref.shape
    slack = REL[dtype] * math.sqrt(max(k, 1))
    np.testing.assert_allclose(to_np(out.cpu()).astype(np.float64), ref, rtol=REL[dtype], atol=slack)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
def test_matmul_shapes_and_transposes(dtype, m, k, n, layout):
    a, ar = gpu_and_ref((k, m) if layout[0] == "t" else (m, k), dtype, 1)
    b, br = gpu_and_ref((n, k) if layout[1] == "t" else (k, n), dtype, 2)
    if layout[0] == "t":
        a, ar = a.T, ar.T
    if layout[1] == "t":
        b, br = b.T, br.T
    check(a @ b, ar @ br, dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_and_broadcast(dtype):
    a, ar = gpu_and_ref((4, 33, 65), dtype, 3)
    b, br = gpu_and_ref((4, 65, 17), dtype, 4)
    check(a @ b, ar @ br, dtype, 65)
    w, wr = gpu_and_ref((65, 17), dtype, 5)  # batch stride 0 on B
    check(a @ w, ar @ wr, dtype, 65)
    check(lepton.bmm(a, b), ar @ br, dtype, 65)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_bias_and_activation(dtype):
    x, xr = gpu_and_ref((67, 96), dtype, 6)
    w, wr = gpu_and_ref((40, 96), dtype, 7)
    bias, biasr = gpu_and_ref((40,), dtype, 8)
    ref = xr @ wr.T + biasr
    check(lepton.nn.functional.linear(x, w, bias), ref, dtype, 96)
    with lepton.no_grad():
        check(lepton.nn.functional.linear(x, w, bias).relu(), np.maximum(ref, 0), dtype, 96)


def test_addmm_alpha_beta():
    c, cr = gpu_and_ref((31, 29), lepton.float32, 9)
    a, ar = gpu_and_ref((31, 45), lepton.float32, 10)
    b, br = gpu_and_ref((45, 29), lepton.float32, 11)
    check(lepton.addmm(c, a, b, beta=0.5, alpha=2.0), 0.5 * cr + 2.0 * (ar @ br), lepton.float32, 45)


def test_matmul_backward_on_gpu():
    a, ar = gpu_and_ref((23, 37), lepton.float32, 12)
    b, br = gpu_and_ref((37, 19), lepton.float32, 13)
    a.requires_grad_(True)
    b.requires_grad_(True)
    (a @ b).sum().backward()
    ones = np.ones((23, 19))
    check(a.grad, ones @ br.T, lepton.float32, 19)
    check(b.grad, ar.T @ ones, lepton.float32, 23)


def test_large_square_bf16():
    a, ar = gpu_and_ref((1024, 1024), lepton.bfloat16, 14)
    b, br = gpu_and_ref((1024, 1024), lepton.bfloat16, 15)
    check(a @ b, ar @ br, lepton.bfloat16, 1024)
