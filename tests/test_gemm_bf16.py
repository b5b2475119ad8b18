"""bfloat16 GEMM on the CPU: vdpbf16ps where the CPU reports AVX512-BF16, else float32 products of
operands widened while packed; both accumulate in float32 and round C to bfloat16 once.

Checked against float64 products of the bfloat16 operands in two ways:
- exact: small-integer operands, whose products and partial sums (< 2^24) are exact in float32 in
  any order, so the result must equal torch's rounding of the exact value to bfloat16, element for
  element: a misplaced pair, row, column or k in the packing changes it;
- bounded: normal values, |y - exact| <= 2^-8 |exact| + 1.01 (K + 2) 2^-24 (|A|·|B|), one final
  bfloat16 rounding plus float32 accumulation over K (and the bias).
The exact checks also run in subprocesses on the other paths (the widening kernel, the avx2 and
scalar kernel sets, the reference GEMM). Inputs avoid bfloat16 denormals: vdpbf16ps reads them as
zero, the widening path does not.
"""
import numpy as np
import pytest

import lepton
from conftest import run_python

torch = pytest.importorskip("torch")

BF16 = lepton.bfloat16
SHAPES = [(1, 1, 1), (1, 3000, 17), (2, 2, 2), (13, 1, 31), (31, 3, 97), (97, 255, 13), (14, 256, 32),
          (15, 257, 33), (29, 511, 64), (33, 4099, 9), (3, 4099, 65), (64, 784, 128), (131, 17, 1)]


def _np(t):
    return t.float().numpy()


def _round_bf16(x):
    """float64 -> the nearest bfloat16 (torch's rounding), as float64."""
    return torch.from_numpy(np.asarray(x, np.float32)).to(torch.bfloat16).double().numpy()


def _operand(rng, shape, transposed, integers):
    """A bfloat16 tensor of `shape`, stored transposed (read through strides) when asked."""
    store = shape[::-1] if transposed else shape
    x = rng.integers(-8, 9, store) if integers else rng.standard_normal(store)
    t = lepton.tensor(x.astype(np.float32)).to(BF16)
    return t.t() if transposed else t


def _check_exact(y, exact):
    assert y.dtype == BF16
    np.testing.assert_array_equal(_np(y).astype(np.float64), _round_bf16(exact))


def _check_bounded(y, a, b, exact, k, extra=0.0):
    """y within one bfloat16 rounding of exact, plus float32 accumulation error over k (and `extra`)."""
    assert y.dtype == BF16
    mag = np.abs(_np(a)).astype(np.float64) @ np.abs(_np(b)).astype(np.float64)
    err = np.abs(_np(y) - exact)
    tol = 2.0 ** -8 * np.abs(exact) + 1.01 * (k + 2) * 2.0 ** -24 * mag + extra
    assert (err <= tol).all(), f"max excess {np.max(err - tol)}"


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_exact_integer_products(m, k, n, ta, tb):
    rng = np.random.default_rng(m * 7 + k * 3 + n)
    a, b = _operand(rng, (m, k), ta, True), _operand(rng, (k, n), tb, True)
    _check_exact(a @ b, _np(a).astype(np.float64) @ _np(b))


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,k,n", [(1, 3000, 17), (33, 4099, 9), (97, 255, 13), (64, 784, 128), (130, 1025, 70)])
def test_bounded_normal_products(m, k, n, ta, tb):
    rng = np.random.default_rng(k)
    a, b = _operand(rng, (m, k), ta, False), _operand(rng, (k, n), tb, False)
    exact = _np(a).astype(np.float64) @ _np(b)
    _check_bounded(a @ b, a, b, exact, k)


def test_strided_operands():
    """Column strides other than 1 and odd row strides take the general packing path."""
    rng = np.random.default_rng(1)
    big_a, big_b = _operand(rng, (37, 2 * 301), False, True), _operand(rng, (301, 2 * 45), True, True)
    a, b = big_a[:, ::2], big_b[:, 1::2]  # [37, 301] with k stride 2; [301, 45] with both strides > 1
    _check_exact(a @ b, _np(a).astype(np.float64) @ _np(b))


@pytest.mark.parametrize("act", ["none", "relu"])
@pytest.mark.parametrize("m,k,n", [(1, 9, 5), (64, 784, 128), (17, 4099, 33)])
def test_linear_bias_activation_exact(m, k, n, act):
    rng = np.random.default_rng(k)
    x, w = _operand(rng, (m, k), False, True), _operand(rng, (n, k), False, True)
    bias = lepton.tensor(rng.integers(-50, 51, n).astype(np.float32)).to(BF16)
    exact = _np(x).astype(np.float64) @ _np(w).T + _np(bias)
    if act == "relu":
        exact = np.maximum(exact, 0)
    _check_exact(lepton._C.linear(x, w, bias, act), exact)


@pytest.mark.parametrize("m,k,n", [(1, 9, 5), (64, 784, 128), (17, 4099, 33)])
def test_linear_bias_gelu_bounded(m, k, n):
    rng = np.random.default_rng(k)
    x, w = _operand(rng, (m, k), False, False), _operand(rng, (n, k), False, False)
    bias = lepton.tensor(rng.standard_normal(n).astype(np.float32)).to(BF16)
    s = _np(x).astype(np.float64) @ _np(w).T + _np(bias)
    exact = torch.nn.functional.gelu(torch.from_numpy(s)).numpy()
    # gelu's slope is below 1.13; its float32 evaluation adds a few float32 ulps
    mag = np.abs(_np(x)).astype(np.float64) @ np.abs(_np(w)).T + np.abs(_np(bias))
    y = lepton._C.linear(x, w, bias, "gelu")
    err, tol = np.abs(_np(y) - exact), 2.0 ** -8 * np.abs(exact) + 1.2 * (k + 2) * 2.0 ** -24 * mag + 1e-6
    assert y.dtype == BF16 and (err <= tol).all(), np.max(err - tol)


def test_batched_and_broadcast_matmul():
    rng = np.random.default_rng(2)
    a = lepton.tensor(rng.integers(-8, 9, (3, 29, 257)).astype(np.float32)).to(BF16)
    b = lepton.tensor(rng.integers(-8, 9, (3, 45, 257)).astype(np.float32)).to(BF16).transpose(1, 2)
    _check_exact(lepton.bmm(a, b), np.einsum("bik,bkj->bij", _np(a).astype(np.float64), _np(b)))
    w = _operand(rng, (257, 7), False, True)
    _check_exact(a @ w, _np(a).astype(np.float64) @ _np(w))  # [3, 29, 257] @ [257, 7]
    rn = lepton.tensor(rng.standard_normal((4, 31, 1025)).astype(np.float32)).to(BF16)
    wn = _operand(rng, (1025, 33), True, False)
    _check_bounded(rn @ wn, rn, wn, _np(rn).astype(np.float64) @ _np(wn), 1025)


def test_addmm_beta_alpha():
    """beta * C is read from bfloat16 C into the float32 sum; alpha and beta are powers of two here."""
    rng = np.random.default_rng(3)
    a, b = _operand(rng, (19, 515), False, True), _operand(rng, (515, 37), True, True)
    c = lepton.tensor(rng.integers(-99, 100, (19, 37)).astype(np.float32)).to(BF16)
    y = lepton.addmm(c, a, b, beta=0.5, alpha=2.0)
    _check_exact(y, 0.5 * _np(c).astype(np.float64) + 2.0 * (_np(a).astype(np.float64) @ _np(b)))


OTHER_PATH_SCRIPT = """
import itertools, sys
sys.path.insert(0, "tests")
import test_gemm_bf16 as t
for (m, k, n), ta, tb in itertools.product(t.SHAPES, (False, True), (False, True)):
    t.test_exact_integer_products(m, k, n, ta, tb)
for act in ("none", "relu"):
    t.test_linear_bias_activation_exact(17, 4099, 33, act)
t.test_strided_operands()
t.test_batched_and_broadcast_matmul()
t.test_addmm_beta_alpha()
print("ok")
"""


@pytest.mark.parametrize("env", [{"LEPTON_CPU_BF16": "0"}, {"LEPTON_CPU_ISA": "avx2"}, {"LEPTON_CPU_ISA": "scalar"},
                                 {"LEPTON_GEMM": "reference"}])
def test_other_paths_in_subprocess(env):
    r = run_python(OTHER_PATH_SCRIPT, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-3000:]
