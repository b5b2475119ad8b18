"""matmul / linear / bmm / addmm vs numpy (float64 products) and torch: shapes around the kernel's
tiles and cache blocks, transposed views, broadcast batches, 1-D operands, the fused epilogues,
every ISA build and the reference kernel, and bad input.

Tolerances: float32 sums of K products carry about K·eps rounding, so atol grows with K
(2e-6·K for operands in [-1, 1]) on top of rtol 1e-4; float64 uses 1e-12 in the same way."""

import numpy as np
import pytest

import lepton
from conftest import run_python

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(dtype)


def check(actual, expected, k):
    expected = np.asarray(expected, dtype=np.float64)
    assert tuple(actual.shape) == expected.shape, (actual.shape, expected.shape)
    f64 = actual.dtype == lepton.float64
    np.testing.assert_allclose(actual.numpy().astype(np.float64), expected, rtol=1e-12 if f64 else 1e-4,
                               atol=(1e-12 if f64 else 2e-6) * max(k, 1))


# (M, N, K): ones, primes, tile edges (MR 14/6/4, NR 32/16), and past the K (256) and M (256) blocks
SHAPES = [(1, 1, 1), (1, 7, 1), (2, 3, 4), (13, 17, 19), (14, 32, 256), (15, 33, 257), (31, 37, 41),
          (64, 128, 784), (100, 1, 50), (1, 100, 50), (97, 211, 300), (300, 301, 600), (5, 4200, 9)]


@pytest.mark.parametrize("m,n,k", SHAPES)
def test_2d_against_numpy(m, n, k):
    a, b = rand(m, k), rand(k, n, seed=1)
    check(lepton.tensor(a) @ lepton.tensor(b), a.astype(np.float64) @ b, k)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("m,n,k", [(13, 17, 19), (130, 70, 530)])
def test_transposed_views(m, n, k, ta, tb):
    a = rand(k, m).T if ta else rand(m, k)
    b = rand(n, k, seed=1).T if tb else rand(k, n, seed=1)
    la = lepton.tensor(np.ascontiguousarray(a.T)).T if ta else lepton.tensor(a)
    lb = lepton.tensor(np.ascontiguousarray(b.T)).T if tb else lepton.tensor(b)
    assert la.is_contiguous() != ta and lb.is_contiguous() != tb
    check(la @ lb, a.astype(np.float64) @ b, k)


@pytest.mark.parametrize("n,k", [(1, 1), (300, 530), (1000, 64)])
@pytest.mark.parametrize("tb", [False, True])
def test_single_row_in_place_path(n, k, tb):
    """M = 1 reads B in place (dot products or row updates): both layouts, alpha/beta, a strided row."""
    a, b, c = rand(3, k)[1:2], rand(k, n, seed=1), rand(1, n, seed=2)
    lb = lepton.tensor(np.ascontiguousarray(b.T)).T if tb else lepton.tensor(b)
    la = lepton.tensor(rand(k, 3)).T[1:2]  # a row with column stride 3
    check(la @ lb, np.ascontiguousarray(rand(k, 3).T[1:2]).astype(np.float64) @ b, k)
    out = lepton.addmm(lepton.tensor(c), lepton.tensor(a), lb, beta=0.5, alpha=2.0)
    check(out, 0.5 * c.astype(np.float64) + 2.0 * (a.astype(np.float64) @ b), k)


def test_strided_slices():
    a, b = rand(40, 60), rand(60, 50, seed=1)
    la, lb = lepton.tensor(a)[::2, 1::3], lepton.tensor(b)[1::3, ::2]
    check(la.matmul(lb), a[::2, 1::3].astype(np.float64) @ b[1::3, ::2], 20)


@pytest.mark.parametrize("sa,sb", [((0, 5), (5, 3)), ((4, 0), (0, 3)), ((4, 5), (5, 0)), ((2, 0, 4, 5), (5, 3))])
def test_empty(sa, sb):
    a, b = rand(*sa), rand(*sb, seed=1)
    out = lepton.tensor(a) @ lepton.tensor(b)
    check(out, a.astype(np.float64) @ b, 1)


@pytest.mark.parametrize("sa,sb", [((7,), (7,)), ((3, 7), (7,)), ((7,), (7, 4)), ((2, 3, 7), (7,)), ((7,), (2, 7, 4)),
                                   ((1,), (1,)), ((0,), (0,))])
def test_one_dimensional(sa, sb):
    a, b = rand(*sa), rand(*sb, seed=1)
    check(lepton.matmul(lepton.tensor(a), lepton.tensor(b)), np.matmul(a.astype(np.float64), b), 7)


@pytest.mark.parametrize("sa,sb", [((2, 3, 4, 5), (5, 6)), ((4, 5), (2, 3, 5, 6)), ((2, 1, 4, 5), (3, 5, 6)),
                                   ((1, 4, 5), (3, 5, 6)), ((3, 4, 5), (3, 5, 6)), ((2, 3, 40, 50), (2, 1, 50, 33)),
                                   ((8, 64, 70), (8, 70, 90)), ((3, 64, 70), (3, 70, 90))])
def test_batched_broadcast(sa, sb):
    a, b = rand(*sa), rand(*sb, seed=1)
    check(lepton.tensor(a) @ lepton.tensor(b), np.matmul(a.astype(np.float64), b), sa[-1])


def test_stride_zero_operands():
    v, b = rand(1, 50), rand(50, 40, seed=1)  # every row of a is the same memory
    check(lepton.tensor(v).expand(30, 50) @ lepton.tensor(b), np.broadcast_to(v, (30, 50)).astype(np.float64) @ b, 50)


def test_batched_non_contiguous():
    a, b = rand(5, 3, 4, 6), rand(3, 6, 7, seed=1)  # a is permuted, b is expanded over a new batch dim
    la = lepton.tensor(np.ascontiguousarray(a.transpose(1, 0, 3, 2))).permute(1, 0, 3, 2)
    lb = lepton.tensor(b[:1]).expand(3, 6, 7)
    check(la @ lb, np.matmul(a.astype(np.float64), np.broadcast_to(b[:1], (3, 6, 7))), 6)


def test_float64():
    a, b = rand(67, 45, dtype=np.float64), rand(45, 301, dtype=np.float64, seed=1)
    out = lepton.tensor(a).T.contiguous().T @ lepton.tensor(b)
    assert out.dtype == lepton.float64
    check(out, a @ b, 45)


@needs_torch
@pytest.mark.parametrize("sa,sb", [((64, 784), (784, 128)), ((784, 64), (64, 128)), ((3, 9, 11), (11, 2)),
                                   ((11,), (3, 11, 2))])
def test_against_torch(sa, sb):
    a, b = rand(*sa), rand(*sb, seed=1)
    check(lepton.tensor(a) @ lepton.tensor(b), (torch.from_numpy(a) @ torch.from_numpy(b)).numpy(), sa[-1])


@needs_torch
@pytest.mark.parametrize("activation", ["none", "relu", "gelu"])
@pytest.mark.parametrize("xs", [(64, 784), (5, 3, 33), (33,), (4, 0)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_epilogue(xs, activation, with_bias):
    fin, fout = xs[-1], 130
    x, w, b = rand(*xs), rand(fout, fin, seed=1), rand(fout, seed=2)
    out = lepton._C.linear(lepton.tensor(x), lepton.tensor(w), lepton.tensor(b) if with_bias else None,
                           activation=activation)
    ref = F.linear(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                   torch.from_numpy(b).double() if with_bias else None)
    ref = {"none": ref, "relu": F.relu(ref), "gelu": F.gelu(ref)}[activation]
    check(out, ref.numpy(), fin)


def test_linear_transposed_weight_and_relu_nan():
    x, w = rand(8, 16), rand(16, 9, seed=1)  # weight given as a transposed view: [9, 16]
    x[0, 0] = np.nan
    out = lepton._C.linear(lepton.tensor(x), lepton.tensor(w).T, None, "relu")
    ref = np.maximum(x.astype(np.float64) @ w, 0)
    ref[0] = np.nan  # relu keeps NaN
    check(out, ref, 16)


@needs_torch
def test_bmm_and_addmm():
    a, b, c = rand(4, 5, 6), rand(4, 6, 7, seed=1), rand(7, seed=2)
    check(lepton.bmm(lepton.tensor(a), lepton.tensor(b)), torch.bmm(torch.from_numpy(a), torch.from_numpy(b)).numpy(), 6)
    got = lepton.tensor(c).addmm(lepton.tensor(a[0]), lepton.tensor(b[0]), beta=0.5, alpha=2.0)
    ref = torch.addmm(torch.from_numpy(c), torch.from_numpy(a[0]), torch.from_numpy(b[0]), beta=0.5, alpha=2.0)
    check(got, ref.numpy(), 6)
    nan = lepton.full((5, 7), float("nan"))  # beta = 0 ignores the input entirely, as torch does
    check(lepton.addmm(nan, lepton.tensor(a[0]), lepton.tensor(b[0]), beta=0.0), a[0].astype(np.float64) @ b[0], 6)


# One script checks the GEMM paths that the running process does not use.
ISA_SCRIPT = """
import numpy as np, lepton
rng = np.random.default_rng(0)
for m, n, k in [(1, 1, 1), (13, 17, 19), (7, 40, 300), (64, 128, 784), (300, 65, 9)]:
    for dt in (np.float32, np.float64):
        a, b = rng.uniform(-1, 1, (k, m)).astype(dt), rng.uniform(-1, 1, (k, n)).astype(dt)
        bias = rng.uniform(-1, 1, n).astype(dt)
        out = lepton._C.linear(lepton.tensor(a).T, lepton.tensor(b).T, lepton.tensor(bias), "relu")
        ref = np.maximum(a.T.astype(np.float64) @ b + bias, 0)
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=2e-6 * k)
        bat = lepton.tensor(rng.uniform(-1, 1, (3, m, k)).astype(dt))
        np.testing.assert_allclose((bat @ lepton.tensor(b)).numpy(), bat.numpy().astype(np.float64) @ b,
                                   rtol=1e-4, atol=2e-6 * k)
print("ok", lepton.info().get("cpu_isa"))
"""


@pytest.mark.parametrize("env", [{"LEPTON_CPU_ISA": "avx2"}, {"LEPTON_CPU_ISA": "scalar"}, {"LEPTON_GEMM": "reference"}])
def test_other_kernels_in_subprocess(env):
    r = run_python(ISA_SCRIPT, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


T = lambda *s, dtype=lepton.float32: lepton.ones(*s, dtype=dtype)  # noqa: E731


@pytest.mark.parametrize("bad,exc,match", [
    (lambda: T(2, 3) @ T(4, 5), ValueError, r"matmul: shapes \[2, 3\] and \[4, 5\] cannot be multiplied \(3 != 4\)"),
    (lambda: T(3) @ T(4), ValueError, r"shapes \[3\] and \[4\]"),
    (lambda: T(2, 2, 3) @ T(3, 3, 4), ValueError, r"\[2\].*\[3\]|broadcast"),
    (lambda: lepton.ones(()) @ T(3), ValueError, "at least 1 dimension"),
    (lambda: T(2, 3) @ T(3, 4, dtype=lepton.float64), TypeError, "float32 and float64"),
    (lambda: T(2, 3, dtype=lepton.int64) @ T(3, 4, dtype=lepton.int64), NotImplementedError, "matmul.*int64"),
    (lambda: lepton._C.linear(T(2, 3), T(4, 5)), ValueError, r"input \[2, 3\] and weight \[4, 5\].*3 != 5"),
    (lambda: lepton._C.linear(T(2, 3), T(4, 3, 1)), ValueError, "weight must be 2-D"),
    (lambda: lepton._C.linear(T(2, 3), T(4, 3), T(5)), ValueError, r"bias must have shape \[4\]"),
    (lambda: lepton._C.linear(T(2, 3), T(4, 3), None, "tanh"), ValueError, "'tanh'"),
    (lambda: lepton.bmm(T(2, 3), T(3, 4)), ValueError, "3-D"),
    (lambda: lepton.bmm(T(2, 2, 3), T(3, 3, 4)), ValueError, "batch"),
    (lambda: T(2, 3).matmul(3), TypeError, "incompatible function arguments"),
])
def test_bad_input(bad, exc, match):
    with pytest.raises(exc, match=match):
        bad()


@pytest.mark.cuda
def test_device_mismatch():
    with pytest.raises(ValueError, match="same device"):
        T(2, 3) @ T(3, 4).cuda()
