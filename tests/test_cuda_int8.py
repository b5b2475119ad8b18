"""The int8 GEMM family on CUDA (dp4a) against numpy and the CPU kernels: row quantisation and
packing bit for bit, int32 products exactly, int8_linear within float rounding (1e-5 relative:
the same exact sums, scaled in another order), and device mismatches as clear errors."""

import numpy as np
import pytest

import lepton
from lepton import _C, quant

pytestmark = pytest.mark.cuda

# (m, n, k): ones, primes, shapes that are not multiples of the 64 x 64 tile or the 32-byte k step
SHAPES = [(1, 1, 1), (1, 10, 784), (7, 33, 13), (64, 64, 32), (65, 63, 33), (97, 65, 129), (130, 5, 4099),
          (256, 300, 768), (0, 5, 3), (3, 0, 8)]


def _int8(rng, shape, low=-128):
    return rng.integers(low, 128, shape).astype(np.int8)


def gpu(a):
    return lepton.from_numpy(a).to("cuda")


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("reference", [False, True])
def test_int8_mm_exact(m, n, k, reference):
    rng = np.random.default_rng(m * 1000 + n + k)
    a, w = _int8(rng, (m, k)), _int8(rng, (n, k), low=-127)
    packed = _C.int8_pack_weight(gpu(w))
    cpu_packed = _C.int8_pack_weight(lepton.from_numpy(w))
    assert packed.packed.device.type == "cuda"
    np.testing.assert_array_equal(packed.packed.cpu().numpy(), cpu_packed.packed.numpy())
    np.testing.assert_array_equal(packed.colsum.cpu().numpy(), w.astype(np.int64).sum(1))
    c = _C.int8_mm(gpu(a), packed, reference=reference)
    assert c.device.type == "cuda" and c.dtype == lepton.int32 and tuple(c.shape) == (m, n)
    np.testing.assert_array_equal(c.cpu().numpy(), a.astype(np.int64) @ w.astype(np.int64).T)


def test_int8_mm_extremes_exact():
    k = 4099
    a = np.full((7, k), -128, np.int8)
    w = np.stack([np.full(k, 127, np.int8), np.full(k, -127, np.int8)] * 9)
    c = _C.int8_mm(gpu(a), _C.int8_pack_weight(gpu(w))).cpu().numpy()
    np.testing.assert_array_equal(c, a.astype(np.int64) @ w.astype(np.int64).T)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 7), (5, 784), (33, 1000), (0, 4), (2, 0)])
def test_quantize_rows_matches_cpu(rows, cols):
    x = np.random.default_rng(cols).standard_normal((rows, cols)).astype(np.float32) * 3
    if rows > 1 and cols:
        x[1] = 0
    q, s = _C.quantize_rows_int8(gpu(x))
    qc, sc = _C.quantize_rows_int8(lepton.from_numpy(x))
    np.testing.assert_array_equal(q.cpu().numpy(), qc.numpy())
    np.testing.assert_array_equal(s.cpu().numpy(), sc.numpy())


@pytest.mark.parametrize("m,n,k", [s for s in SHAPES if s[2] > 0])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("reference", [False, True])
def test_int8_linear_matches_cpu(m, n, k, relu, reference):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    q, s = quant.quantize_per_channel(lepton.from_numpy(w))
    want = _C.int8_linear(lepton.from_numpy(x), _C.int8_pack_weight(q), s, lepton.from_numpy(b), relu=relu).numpy()
    got = _C.int8_linear(gpu(x), _C.int8_pack_weight(q.to("cuda")), s.to("cuda"), gpu(b), relu=relu,
                         reference=reference)
    assert got.device.type == "cuda"
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-5, atol=1e-5)


def test_device_mismatch_is_a_clear_error():
    w = _int8(np.random.default_rng(0), (4, 8), low=-127)
    with pytest.raises(ValueError, match="packed weight is on cpu but the input is on cuda"):
        _C.int8_mm(gpu(w), _C.int8_pack_weight(lepton.from_numpy(w)))
    packed = _C.int8_pack_weight(gpu(w))
    x = lepton.randn(2, 8, device="cuda")
    with pytest.raises(ValueError, match="weight scale is on cpu"):
        _C.int8_linear(x, packed, lepton.ones(4))
