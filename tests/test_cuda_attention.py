"""scaled_dot_product_attention on CUDA, forward and backward.

- float16/bfloat16 (the FlashAttention-2 tensor-core kernels, flash_attention.cu) against a
  float64 NumPy oracle fed the inputs as the GPU sees them (already rounded to the dtype), against
  the untiled reference kernels (reference=True) and against torch's SDPA on the same GPU. The
  kernels round the softmax weights and dS to the dtype before their tensor-core products and
  round each output once; the tolerances (TOL) are a few of those roundings, measured relative to
  the largest magnitude of each result.
- float32/float64 (untiled kernels) against the same op on the CPU: 1e-4 and 1e-10.
- Dropout: the kept/dropped pattern is read back exactly (uniform weights, identity values) and
  must equal the CPU's for the same seed, in every dtype, fast and reference kernels.

LEPTON_ATTENTION_TEST_DEVICE=cpu runs the same checks on the CPU (16-bit inputs then compute in
float32 there), which checks the tests themselves on machines without a GPU.
"""

import os

import numpy as np
import pytest

import lepton
import lepton.nn.functional as F
from lepton import _C
from conftest import lt, to_np

DEVICE = os.environ.get("LEPTON_ATTENTION_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.cuda if DEVICE == "cuda" else []

HALF = [lepton.bfloat16, lepton.float16]
# Largest |error| / largest |reference| allowed: forward and gradients.
TOL = {lepton.bfloat16: (2e-2, 3e-2), lepton.float16: (3e-3, 5e-3)}


def sdpa(q, k, v, mask=None, dropout_p=0.0, causal=False, scale=None, reference=False):
    return _C.scaled_dot_product_attention(q, k, v, mask, dropout_p, causal, scale, reference)


def rounded(shape, dtype, seed):
    """Standard-normal data rounded to dtype, as a float64 array."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return to_np(lt(x, dtype)).astype(np.float64)


def dev(x, dtype, grad=True):
    t = lt(x, dtype, DEVICE)
    return t.requires_grad_(True) if grad else t


def oracle(q, k, v, go, mask=None, causal=False, scale=None):
    """out, dq, dk, dv, dmask in float64 from the textbook formulas; fully masked rows give 0."""
    L, S = q.shape[-2], k.shape[-2]
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == np.bool_ else s + mask
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    l = e.sum(-1, keepdims=True)
    p = np.where(l > 0, e / np.where(l > 0, l, 1), 0)
    out = p @ v
    dp = go @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (p * dp).sum(-1, keepdims=True))
    dq = ds @ k * scale
    dk = np.swapaxes(ds, -1, -2) @ q * scale
    dv = np.swapaxes(p, -1, -2) @ go
    return out, dq, dk, dv, ds


def reduce_to(x, shape):
    """x summed over the dims that broadcast to shape."""
    while x.ndim > len(shape):
        x = x.sum(0)
    for d, n in enumerate(shape):
        if n == 1 and x.shape[d] != 1:
            x = x.sum(d, keepdims=True)
    return x


def close(actual, expected, tol, what):
    a = to_np(actual).astype(np.float64)
    assert a.shape == expected.shape, (what, a.shape, expected.shape)
    assert np.isfinite(a).all(), what
    err = np.abs(a - expected).max(initial=0)
    ref = np.abs(expected).max(initial=0)
    assert err <= tol * max(ref, 1e-3), f"{what}: max error {err:.3g} vs max |reference| {ref:.3g}"


def run(dtype, q, k, v, go, mask=None, causal=False, scale=None, reference=False, mask_grad=False):
    """Forward and backward on DEVICE; returns (out, dq, dk, dv, dmask) tensors."""
    tq, tk, tv = dev(q, dtype), dev(k, dtype), dev(v, dtype)
    tm = None
    if mask is not None:
        tm = lt(mask, None if mask.dtype == np.bool_ else dtype, DEVICE)
        if mask_grad:
            tm.requires_grad_(True)
    out = sdpa(tq, tk, tv, tm, 0.0, causal, scale, reference)
    assert out.dtype == dtype and out.device.type == DEVICE
    (out * dev(go, dtype, grad=False)).sum().backward()
    return out, tq.grad, tk.grad, tv.grad, tm.grad if mask_grad else None


def check(dtype, q, k, v, mask=None, causal=False, scale=None, mask_grad=False, reference=False):
    go = rounded(q.shape[:-1] + (v.shape[-1],), dtype, 99)
    expected = oracle(q, k, v, go, mask, causal, scale)
    got = run(dtype, q, k, v, go, mask, causal, scale, reference, mask_grad)
    fwd, bwd = TOL[dtype]
    close(got[0], expected[0], fwd, "out")
    for name, g, e, like in (("dq", got[1], expected[1], q), ("dk", got[2], expected[2], k),
                             ("dv", got[3], expected[3], v)):
        close(g, reduce_to(e, like.shape), bwd, name)
    if mask_grad:
        close(got[4], reduce_to(expected[4], mask.shape), bwd, "dmask")
    return got


_CANARY = {}


def canary(dtype):
    """The error of one small causal problem forward and backward in dtype, or None. The other
    16-bit tests skip when it fails, so that a broken kernel costs one failure of the GPU check's
    --maxfail budget (shared with every other CUDA test file), not dozens."""
    if dtype not in _CANARY:
        try:
            q = rounded((2, 2, 70, 64), dtype, 51)
            k, v = rounded((2, 2, 90, 64), dtype, 52), rounded((2, 2, 90, 64), dtype, 53)
            check(dtype, q, k, v, causal=True)
            _CANARY[dtype] = None
        except Exception as e:  # an assertion or a CUDA error
            _CANARY[dtype] = e
    return _CANARY[dtype]


def require(dtype):
    if dtype in HALF and canary(dtype) is not None:
        pytest.skip(f"the {dtype.name} canary failed (test_half_canary)")


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
def test_half_canary(dtype):
    error = canary(dtype)
    if error is not None:
        raise error


# (B, H, L, S, E, Ev): L, S of 1, primes, tile sizes ±1 and 1000; every padded head dim (32, 64,
# 96, 128, 256) plus widths that pad (8, 63, 80, 160); E != Ev; odd widths (plain loads, no cp.async).
SHAPES = [(1, 1, 1, 1, 32, 32), (2, 3, 17, 17, 64, 64), (1, 2, 129, 129, 128, 128), (1, 1, 1000, 1000, 64, 64),
          (1, 2, 65, 1000, 96, 96), (1, 2, 17, 129, 256, 256), (2, 1, 33, 47, 8, 8), (2, 1, 65, 33, 63, 80),
          (1, 1, 300, 300, 160, 160), (1, 1, 129, 64, 128, 64), (1, 1, 1, 200, 64, 64)]


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("B,H,L,S,E,Ev", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_half_against_float64(dtype, B, H, L, S, E, Ev, causal):
    require(dtype)
    q = rounded((B, H, L, E), dtype, 1)
    k = rounded((B, H, S, E), dtype, 2)
    v = rounded((B, H, S, Ev), dtype, 3)
    check(dtype, q, k, v, causal=causal)


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("B,H,L,S,E,Ev", [(2, 3, 17, 17, 64, 64), (1, 2, 129, 129, 128, 128),
                                          (1, 1, 300, 300, 256, 256), (2, 1, 65, 33, 63, 80)])
@pytest.mark.parametrize("causal", [False, True])
def test_half_reference_kernels(dtype, B, H, L, S, E, Ev, causal):
    """The untiled kernels (reference=True) for 16-bit inputs meet the same bounds."""
    require(dtype)
    q = rounded((B, H, L, E), dtype, 4)
    k = rounded((B, H, S, E), dtype, 5)
    v = rounded((B, H, S, Ev), dtype, 6)
    check(dtype, q, k, v, causal=causal, reference=True)


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("kind", ["bool", "float", "key_padding"])
def test_half_masks(dtype, kind):
    require(dtype)
    B, H, L, S, E = 2, 2, 70, 131, 64
    q, k, v = rounded((B, H, L, E), dtype, 7), rounded((B, H, S, E), dtype, 8), rounded((B, H, S, E), dtype, 9)
    rng = np.random.default_rng(10)
    if kind == "bool":
        mask = rng.random((B, 1, L, S)) > 0.3
        mask[0, 0, 3] = False  # a fully masked row: output 0, no gradient
    elif kind == "float":
        mask = rounded((B, H, L, S), dtype, 11)
    else:  # torch's key_padding_mask as an attn_mask: [B, 1, 1, S], the last keys of batch 1 padded
        mask = np.ones((B, 1, 1, S), bool)
        mask[1, ..., 100:] = False
    got = check(dtype, q, k, v, mask, mask_grad=kind == "float")
    if kind == "bool":
        assert not to_np(got[0])[0, :, 3].any()


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
def test_half_strided_and_broadcast_inputs(dtype):
    """q from a [B, L, H, E] layout (row stride H·E, problem offsets per head) and k, v shared by
    every head (broadcast leading dim): the kernels read them in place."""
    require(dtype)
    B, H, L, S, E = 2, 4, 77, 90, 64
    qb = rounded((B, L, H, E), dtype, 12)
    k, v = rounded((B, 1, S, E), dtype, 13), rounded((B, 1, S, E), dtype, 14)
    go = rounded((B, H, L, E), dtype, 15)
    tq = dev(qb, dtype)
    tk, tv = dev(k, dtype), dev(v, dtype)
    out = sdpa(tq.transpose(1, 2), tk, tv, causal=True)
    (out * dev(go, dtype, grad=False)).sum().backward()
    q = np.swapaxes(qb, 1, 2)
    expected = oracle(q, k, v, go, causal=True)
    fwd, bwd = TOL[dtype]
    close(out, expected[0], fwd, "out")
    close(tq.grad, np.swapaxes(expected[1], 1, 2), bwd, "dq")
    close(tk.grad, reduce_to(expected[2], k.shape), bwd, "dk")
    close(tv.grad, reduce_to(expected[3], v.shape), bwd, "dv")


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("L,S", [(0, 5), (5, 0), (0, 0)])
def test_half_empty_sequences(dtype, L, S):
    require(dtype)
    q, k, v = dev(np.ones((2, L, 32)), dtype), dev(np.ones((2, S, 32)), dtype), dev(np.ones((2, S, 32)), dtype)
    out = sdpa(q, k, v)
    assert tuple(out.shape) == (2, L, 32)
    assert not to_np(out).any()  # a query with no key gets 0
    out.sum().backward()
    for t in (q, k, v):
        assert tuple(t.grad.shape) == tuple(t.shape) and not to_np(t.grad).any()


def test_large_scores_are_stable():
    """Scores far beyond exp's range (and a running max that grows tile by tile) stay finite."""
    dtype = lepton.bfloat16
    require(dtype)
    q = rounded((1, 1, 200, 64), dtype, 16) * 8
    k = rounded((1, 1, 300, 64), dtype, 17) * np.linspace(1, 8, 300)[:, None]
    v = rounded((1, 1, 300, 64), dtype, 18)
    check(dtype, to_np(lt(q, dtype)).astype(np.float64), to_np(lt(k, dtype)).astype(np.float64), v, scale=1.0)


# ---- dropout


def dropout_pattern(dtype, L, S, p, seed, reference=False, device=DEVICE):
    """Which weights survive: with q = k = 0 every weight is 1/S and v = I reads them out."""
    q = lt(np.zeros((2, L, 16)), dtype, device)
    k = lt(np.zeros((2, S, 16)), dtype, device)
    v = lt(np.broadcast_to(np.eye(S), (2, S, S)).copy(), dtype, device)
    lepton.manual_seed(seed)
    out = to_np(sdpa(q, k, v, None, p, False, None, reference)).astype(np.float64)
    kept = out > 0
    np.testing.assert_allclose(out[kept], 1 / (S * (1 - p)), rtol=1e-2)  # kept weights scaled by 1/(1-p)
    return kept


@pytest.mark.parametrize("dtype", HALF + [lepton.float32], ids=lambda d: d.name)
@pytest.mark.parametrize("reference", [False, True])
def test_dropout_pattern_matches_cpu(dtype, reference):
    require(dtype)
    L, S, p = 150, 200, 0.3  # several query and key tiles
    cpu = dropout_pattern(lepton.float32, L, S, p, 21, device="cpu")
    got = dropout_pattern(dtype, L, S, p, 21, reference)
    assert (got == cpu).all(), f"{(got != cpu).sum()} of {got.size} dropout decisions differ from the CPU's"
    assert abs(cpu.mean() - (1 - p)) < 0.01


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("causal", [False, True])
def test_dropout_forward_backward_match_cpu(dtype, causal):
    """With dropout the CPU in float64 (same seed, so the same mask) is the oracle."""
    require(dtype)
    B, H, L, S, E = 2, 2, 97, 97, 64
    q, k, v = rounded((B, H, L, E), dtype, 22), rounded((B, H, S, E), dtype, 23), rounded((B, H, S, E), dtype, 24)
    go = rounded((B, H, L, E), dtype, 25)
    results = []
    for d, device in ((lepton.float64, "cpu"), (dtype, DEVICE)):
        ts = [lt(x, d, device).requires_grad_(True) for x in (q, k, v)]
        lepton.manual_seed(26)
        out = sdpa(*ts, None, 0.2, causal)
        (out * lt(go, d, device)).sum().backward()
        results.append([out] + [t.grad for t in ts])
    fwd, bwd = TOL[dtype]
    for i, (name, tol) in enumerate((("out", fwd), ("dq", bwd), ("dk", bwd), ("dv", bwd))):
        close(results[1][i], to_np(results[0][i]).astype(np.float64), tol, name)


# ---- against torch on the same device


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("B,H,L,S,E", [(2, 4, 257, 257, 64), (1, 2, 1000, 1000, 128), (2, 2, 129, 129, 256)])
@pytest.mark.parametrize("causal", [False, True])
def test_half_against_torch_sdpa(dtype, B, H, L, S, E, causal):
    """Our error against the float64 oracle is at most ~torch's own (×2, plus a floor)."""
    require(dtype)
    torch = pytest.importorskip("torch")
    if DEVICE == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    q, k, v = rounded((B, H, L, E), dtype, 31), rounded((B, H, S, E), dtype, 32), rounded((B, H, S, E), dtype, 33)
    go = rounded((B, H, L, E), dtype, 34)
    expected = oracle(q, k, v, go, causal=causal)
    ours = run(dtype, q, k, v, go, causal=causal)[:4]
    tdt = getattr(torch, dtype.name)
    tq, tk, tv = (torch.tensor(x, dtype=tdt, device=DEVICE, requires_grad=True) for x in (q, k, v))
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    (tout * torch.tensor(go, dtype=tdt, device=DEVICE)).sum().backward()
    theirs = [t.detach().double().cpu().numpy() for t in (tout, tq.grad, tk.grad, tv.grad)]
    for name, o, t, e in zip(("out", "dq", "dk", "dv"), ours, theirs, expected):
        ref = np.abs(e).max()
        ours_err = np.abs(to_np(o).astype(np.float64) - e).max() / ref
        torch_err = np.abs(t - e).max() / ref
        assert ours_err <= 2 * torch_err + TOL[dtype][0] / 4, f"{name}: ours {ours_err:.3g}, torch {torch_err:.3g}"


def test_fast_and_reference_agree_bf16():
    """The two CUDA versions side by side on one problem (selectable with reference=True)."""
    dtype = lepton.bfloat16
    require(dtype)
    q = rounded((2, 2, 200, 128), dtype, 41)
    k, v = rounded((2, 2, 170, 128), dtype, 42), rounded((2, 2, 170, 128), dtype, 43)
    go = rounded((2, 2, 200, 128), dtype, 44)
    fast = run(dtype, q, k, v, go, causal=True)
    ref = run(dtype, q, k, v, go, causal=True, reference=True)
    for name, a, b in zip(("out", "dq", "dk", "dv"), fast, ref):
        close(a, to_np(b).astype(np.float64), 2 * TOL[dtype][1], name)


# ---- float32 / float64 against the CPU


def pair(shape, dtype, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    return (lepton.tensor(x, dtype=dtype).requires_grad_(True),
            lepton.tensor(x, dtype=dtype, device=DEVICE).requires_grad_(True))


F32_TOL = {lepton.float32: 1e-4, lepton.float64: 1e-10}


def close_cpu(gpu, cpu, dtype):
    assert gpu.device.type == DEVICE
    np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.detach().numpy(), rtol=F32_TOL[dtype],
                               atol=F32_TOL[dtype])


F32_SHAPES = [  # (B, H, L, S, E, Ev)
    (2, 3, 17, 17, 8, 8), (1, 2, 1, 31, 64, 32), (2, 1, 65, 33, 63, 80), (1, 1, 300, 300, 128, 128),
    (1, 2, 7, 5, 256, 256), (1, 1, 1000, 129, 32, 32)]


@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float64])
@pytest.mark.parametrize("B,H,L,S,E,Ev", F32_SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa(dtype, B, H, L, S, E, Ev, causal):
    qc, qg = pair((B, H, L, E), dtype, 1)
    kc, kg = pair((B, H, S, E), dtype, 2)
    vc, vg = pair((B, H, S, Ev), dtype, 3)
    yc = F.scaled_dot_product_attention(qc, kc, vc, is_causal=causal)
    yg = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
    close_cpu(yg, yc, dtype)
    w = np.random.default_rng(4).standard_normal((B, H, L, Ev))
    (yc * lepton.tensor(w, dtype=dtype)).sum().backward()
    (yg * lepton.tensor(w, dtype=dtype, device=DEVICE)).sum().backward()
    for g, c in ((qg, qc), (kg, kc), (vg, vc)):
        close_cpu(g.grad, c.grad, dtype)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_masks_broadcast(kind):
    dtype = lepton.float32
    qc, qg = pair((2, 2, 9, 16), dtype, 5)
    kc, kg = pair((2, 2, 11, 16), dtype, 6)
    vc, vg = pair((2, 2, 11, 16), dtype, 7)
    rng = np.random.default_rng(8)
    m = rng.random((2, 1, 9, 11)) > 0.3 if kind == "bool" else rng.standard_normal((2, 1, 9, 11))
    m[0, 0, 3] = False if kind == "bool" else m[0, 0, 3]  # a fully masked row for the bool case
    mc, mg = lepton.tensor(m), lepton.tensor(m, device=DEVICE)
    if kind == "float":
        mc, mg = mc.float().requires_grad_(True), mg.float().requires_grad_(True)
    yc = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mc)
    yg = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=mg)
    close_cpu(yg, yc, dtype)
    yc.sum().backward()
    yg.sum().backward()
    for g, c in ((qg, qc), (kg, kc), (vg, vc)):
        close_cpu(g.grad, c.grad, dtype)
    if kind == "float":
        close_cpu(mg.grad, mc.grad, dtype)


def test_sdpa_dropout_matches_cpu():
    dtype = lepton.float32
    qc, qg = pair((2, 2, 33, 16), dtype, 9)
    kc, kg = pair((2, 2, 33, 16), dtype, 10)
    vc, vg = pair((2, 2, 33, 16), dtype, 11)
    lepton.manual_seed(5)
    yc = F.scaled_dot_product_attention(qc, kc, vc, dropout_p=0.3)
    lepton.manual_seed(5)
    yg = F.scaled_dot_product_attention(qg, kg, vg, dropout_p=0.3)
    close_cpu(yg, yc, dtype)
    yc.sum().backward()
    yg.sum().backward()
    for g, c in ((qg, qc), (kg, kc), (vg, vc)):
        close_cpu(g.grad, c.grad, dtype)
