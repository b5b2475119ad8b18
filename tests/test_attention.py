"""scaled_dot_product_attention (fused flash-style kernels and the plain-loop reference) and
nn.MultiheadAttention against torch: forward and gradients, masks, broadcasting, dropout, bad input.

Tolerances: float32 rtol 1e-4 and atol 2e-5 relative to the largest reference magnitude (both
kernels sum in float32 in a different order from torch; observed errors are ~1e-6); float64
1e-10. Gradients use the same bounds.
"""
import math

import numpy as np
import pytest

import lepton
from lepton import _C
import lepton.nn as nn
import lepton.nn.functional as F
from conftest import run_python

torch = pytest.importorskip("torch")
TF = torch.nn.functional

KERNELS = [False, True]  # reference?
IDS = ["fast", "reference"]


def _close(actual, expected, dtype=np.float32):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    actual = actual.detach().numpy() if isinstance(actual, (lepton.Tensor, torch.Tensor)) else np.asarray(actual)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(1.0, float(np.abs(expected).max(initial=0)))
    tol = dict(rtol=1e-4, atol=2e-5 * scale) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10 * scale)
    np.testing.assert_allclose(actual, expected, **tol)


def _arrays(*shapes, dtype=np.float32, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(dtype) for s in shapes]


def _compare(q, k, v, mask=None, causal=False, reference=False, scale=None, grads=True):
    """Runs lepton (fast or reference kernel) and torch on the same arrays; checks output and q/k/v grads."""
    dtype = q.dtype.type
    lq, lk, lv = (lepton.tensor(x, requires_grad=grads) for x in (q, k, v))
    tq, tk, tv = (torch.tensor(x, requires_grad=grads) for x in (q, k, v))
    lm = None if mask is None else lepton.tensor(mask)
    tm = None if mask is None else torch.tensor(mask)
    out = _C.scaled_dot_product_attention(lq, lk, lv, lm, 0.0, causal, scale, reference)
    ref = TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, is_causal=causal, scale=scale)
    _close(out, ref, dtype)
    if grads:
        g = np.random.default_rng(7).standard_normal(tuple(ref.shape)).astype(dtype)
        out.backward(lepton.tensor(g))
        ref.backward(torch.tensor(g))
        for a, b in ((lq, tq), (lk, tk), (lv, tv)):
            _close(a.grad, b.grad, dtype)
    return out


# ---- shapes, head dims, causal -------------------------------------------------------------

@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("E", [1, 8, 32, 63, 64, 80, 128, 256])
def test_head_dims(E, causal, reference):
    q, k, v = _arrays((2, 3, 17, E), (2, 3, 31, E), (2, 3, 31, E))
    _compare(q, k, v, causal=causal, reference=reference)


@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("L,S", [(1, 1), (1, 17), (17, 1), (17, 17), (31, 65), (65, 31), (129, 129), (129, 65),
                                 (97, 200), (200, 97)])
def test_sequence_lengths(L, S, causal, reference):
    q, k, v = _arrays((2, 2, L, 32), (2, 2, S, 32), (2, 2, S, 24))
    _compare(q, k, v, causal=causal, reference=reference)


@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
def test_value_dim_differs_and_custom_scale(reference):
    q, k, v = _arrays((3, 40, 16), (3, 70, 16), (3, 70, 5))
    _compare(q, k, v, reference=reference, scale=0.37)
    _compare(q, k, v, causal=True, reference=reference, scale=2.0)


@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
@pytest.mark.parametrize("shapes", [
    ((2, 3, 5, 8), (2, 1, 6, 8), (1, 3, 6, 4)),  # [B, H] against [B, 1] and [1, H]
    ((2, 3, 5, 8), (2, 1, 6, 8), (2, 1, 6, 8)),   # shared key/value heads
    ((4, 9, 8), (4, 11, 8), (4, 11, 8)),          # [B] only
    ((9, 8), (2, 3, 11, 8), (3, 11, 8)),          # unbatched query broadcast over the batch
    ((13, 8), (11, 8), (11, 6)),                  # no batch dims at all
])
def test_broadcast_leading_dims(shapes, reference):
    _compare(*_arrays(*shapes), reference=reference)


def test_non_contiguous_inputs():
    # [B, L, H, E] viewed as [B, H, L, E] (the MultiheadAttention layout), and a transposed last dim
    q, k, v = _arrays((2, 19, 3, 16), (2, 23, 3, 16), (2, 16, 23, 3))
    lq, tq = lepton.tensor(q).transpose(1, 2), torch.tensor(q).transpose(1, 2)
    lk, tk = lepton.tensor(k).transpose(1, 2), torch.tensor(k).transpose(1, 2)
    lv, tv = lepton.tensor(v).permute(0, 3, 2, 1), torch.tensor(v).permute(0, 3, 2, 1)
    for causal in (False, True):
        _close(F.scaled_dot_product_attention(lq, lk, lv, is_causal=causal),
               TF.scaled_dot_product_attention(tq, tk, tv, is_causal=causal))


def test_problem_split_between_threads():
    """One long sequence on 3 threads: the backward splits its key blocks, so dQ is summed from parts."""
    prev = lepton.get_num_threads()
    lepton.set_num_threads(3)
    try:
        for causal in (False, True):
            _compare(*_arrays((1, 1, 500, 64), (1, 1, 500, 64), (1, 1, 500, 64)), causal=causal)
            _compare(*_arrays((1, 3, 300, 32), (1, 3, 400, 32), (1, 3, 400, 32)), causal=causal)
    finally:
        lepton.set_num_threads(prev)


def test_large_scores_are_stable():
    """Scores of magnitude ~1000: no overflow, and an error against float64 no worse than torch's float32."""
    q, k, v = _arrays((2, 33, 16), (2, 47, 16), (2, 47, 16), scale=30.0)
    g = np.random.default_rng(1).standard_normal((2, 33, 16)).astype(np.float32)

    def torch_run(dtype):
        ts = [torch.tensor(x, dtype=dtype, requires_grad=True) for x in (q, k, v)]
        out = TF.scaled_dot_product_attention(*ts)
        out.backward(torch.tensor(g, dtype=dtype))
        return [out.detach().numpy()] + [t.grad.numpy() for t in ts]

    truth, torch32 = torch_run(torch.float64), torch_run(torch.float32)
    for reference in KERNELS:
        ts = [lepton.tensor(x, requires_grad=True) for x in (q, k, v)]
        out = _C.scaled_dot_product_attention(*ts, None, 0.0, False, None, reference)
        out.backward(lepton.tensor(g))
        for ours, theirs, exact in zip([out.detach().numpy()] + [t.grad.numpy() for t in ts], torch32, truth):
            assert np.isfinite(ours).all()
            scale = np.abs(exact).max()
            assert np.abs(ours - exact).max() <= 3 * np.abs(theirs - exact).max() + 1e-6 * scale


def test_empty_sequences():
    for L, S in ((0, 5), (5, 0), (0, 0)):
        q, k, v = _arrays((2, L, 8), (2, S, 8), (2, S, 3))
        for reference in KERNELS:
            _compare(q, k, v, reference=reference)


@pytest.mark.parametrize("dtype", [lepton.float16, lepton.bfloat16])
def test_16bit_inputs_compute_in_float32(dtype):
    q, k, v = _arrays((2, 9, 8), (2, 12, 8), (2, 12, 8))
    lq, lk, lv = (lepton.tensor(x).to(dtype) for x in (q, k, v))
    out = F.scaled_dot_product_attention(lq, lk, lv, is_causal=True)
    assert out.dtype == dtype
    expected = F.scaled_dot_product_attention(lq.float(), lk.float(), lv.float(), is_causal=True)
    np.testing.assert_allclose(out.float().numpy(), expected.numpy(), rtol=2e-2, atol=2e-2)


# ---- masks ---------------------------------------------------------------------------------

def _bool_mask(shape, seed=3, keep=0.7):
    m = np.random.default_rng(seed).random(shape) < keep
    m[..., 0] = True  # every query may see key 0 (fully masked rows have their own test)
    return m


@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
@pytest.mark.parametrize("mask_shape", [(17, 31), (2, 3, 17, 31), (2, 1, 1, 31), (3, 17, 1), (1, 31)])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_masks(kind, mask_shape, reference):
    q, k, v = _arrays((2, 3, 17, 16), (2, 3, 31, 16), (2, 3, 31, 8))
    if kind == "bool":
        mask = _bool_mask(mask_shape)
    else:
        mask = np.random.default_rng(4).standard_normal(mask_shape).astype(np.float32)
        mask[np.random.default_rng(5).random(mask_shape) < 0.2] = -np.inf
        mask[..., 0] = 0.0
    _compare(q, k, v, mask=mask, reference=reference)


@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
def test_long_masked_rows_span_several_blocks(reference):
    q, k, v = _arrays((1, 2, 130, 32), (1, 2, 250, 32), (1, 2, 250, 32))
    _compare(q, k, v, mask=_bool_mask((130, 250), keep=0.3), reference=reference)
    fm = np.random.default_rng(6).standard_normal((1, 2, 130, 250)).astype(np.float32) * 3
    _compare(q, k, v, mask=fm, reference=reference)


@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_fully_masked_rows_give_zero(kind, reference):
    """torch returns 0 (and passes 0 gradient) for a query that may attend to no key; so does lepton."""
    q, k, v = _arrays((2, 2, 7, 8), (2, 2, 9, 8), (2, 2, 9, 4))
    mask = _bool_mask((7, 9))
    mask[2] = False
    mask[5] = False
    if kind == "float":
        mask = np.where(mask, 0.0, -np.inf).astype(np.float32)
    out = _compare(q, k, v, mask=mask, reference=reference)
    assert not np.abs(out.detach().numpy()[:, :, [2, 5]]).any()


@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
def test_float_mask_gradient(reference):
    q, k, v = _arrays((2, 3, 11, 8), (2, 3, 13, 8), (2, 3, 13, 8))
    (m,) = _arrays((11, 13), seed=9)
    lm, tm = lepton.tensor(m, requires_grad=True), torch.tensor(m, requires_grad=True)
    out = _C.scaled_dot_product_attention(lepton.tensor(q), lepton.tensor(k), lepton.tensor(v), lm, 0.0, False,
                                          None, reference)
    ref = TF.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=tm)
    g = np.random.default_rng(1).standard_normal(tuple(ref.shape)).astype(np.float32)
    out.backward(lepton.tensor(g))
    ref.backward(torch.tensor(g))
    _close(lm.grad, tm.grad)


# ---- finite differences (float64) ------------------------------------------------------------

@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
@pytest.mark.parametrize("case", ["plain", "causal", "bool_mask", "float_mask", "dropout"])
def test_gradcheck(case, reference):
    q, k, v = _arrays((2, 3, 4), (2, 5, 4), (2, 5, 3), dtype=np.float64, seed=11)
    inputs = [lepton.tensor(x, requires_grad=True) for x in (q, k, v)]
    mask, causal, p = None, case == "causal", 0.0
    if case == "bool_mask":
        mask = lepton.tensor(_bool_mask((3, 5)))
    if case == "float_mask":
        inputs.append(lepton.tensor(_arrays((3, 5), dtype=np.float64, seed=12)[0], requires_grad=True))
    if case == "dropout":
        p = 0.4

    def fn(q, k, v, m=mask):
        lepton.manual_seed(5)  # the same dropout mask at every evaluation
        return _C.scaled_dot_product_attention(q, k, v, m, p, causal, None, reference)

    assert lepton.autograd.gradcheck(fn, inputs, atol=1e-7, rtol=1e-5)


def test_double_backward_is_refused():
    q = lepton.tensor(_arrays((3, 4), dtype=np.float64)[0], requires_grad=True)
    y = F.scaled_dot_product_attention(q, q, q).sum()
    with pytest.raises(NotImplementedError, match="double backward"):
        lepton.autograd.grad(y, [q], create_graph=True)


# ---- dropout -------------------------------------------------------------------------------

def _dropout_run(q, k, v, p, seed, reference=False, grads=False):
    lq, lk, lv = (lepton.tensor(x, requires_grad=grads) for x in (q, k, v))
    lepton.manual_seed(seed)
    return _C.scaled_dot_product_attention(lq, lk, lv, None, p, False, None, reference), (lq, lk, lv)


def test_dropout_is_reproducible_and_seeded():
    q, k, v = _arrays((2, 2, 50, 16), (2, 2, 70, 16), (2, 2, 70, 16))
    a, _ = _dropout_run(q, k, v, 0.3, seed=1)
    b, _ = _dropout_run(q, k, v, 0.3, seed=1)
    c, _ = _dropout_run(q, k, v, 0.3, seed=2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(a.numpy() - c.numpy()).max() > 1e-2
    # consecutive calls draw fresh masks
    lepton.manual_seed(1)
    x = F.scaled_dot_product_attention(*(lepton.tensor(t) for t in (q, k, v)), dropout_p=0.3)
    y = F.scaled_dot_product_attention(*(lepton.tensor(t) for t in (q, k, v)), dropout_p=0.3)
    assert np.abs(x.numpy() - y.numpy()).max() > 1e-2


def _recover_mask(q, k, p, seed, reference=False):
    """The dropout factors Z [..., L, S]: with v = I (S×S) the output is the dropped weight matrix P∘Z."""
    S = k.shape[-2]
    eye = np.broadcast_to(np.eye(S, dtype=q.dtype), k.shape[:-2] + (S, S)).copy()
    dropped, _ = _dropout_run(q, k, eye, p, seed, reference)
    weights, _ = _dropout_run(q, k, eye, 0.0, seed, reference)
    return dropped.numpy() / weights.numpy()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_statistics(p):
    q, k = _arrays((4, 4, 64, 16), (4, 4, 96, 16), scale=0.3)
    z = _recover_mask(q, k, p, seed=3)
    kept = np.isclose(z, 1 / (1 - p), rtol=1e-4)
    assert np.all(kept | (z == 0)), "every factor is 0 or 1/(1-p)"
    n = z.size
    assert abs((~kept).mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    # the mask does not repeat across problems or rows
    assert not np.array_equal(z[0, 0], z[0, 1]) and not np.array_equal(z[0, 0, 0], z[0, 0, 1])


def test_dropout_extremes():
    q, k, v = _arrays((2, 9, 8), (2, 12, 8), (2, 12, 8))
    zero, _ = _dropout_run(q, k, v, 1.0, seed=0)
    assert not zero.numpy().any()
    none, _ = _dropout_run(q, k, v, 0.0, seed=0)
    _close(none, TF.scaled_dot_product_attention(*(torch.tensor(t) for t in (q, k, v))))


def test_dropout_fast_and_reference_share_the_mask():
    q, k, v = _arrays((2, 3, 130, 24), (2, 3, 110, 24), (2, 3, 110, 20))
    a, _ = _dropout_run(q, k, v, 0.25, seed=8)
    b, _ = _dropout_run(q, k, v, 0.25, seed=8, reference=True)
    _close(a, b)


@pytest.mark.parametrize("reference", KERNELS, ids=IDS)
def test_dropout_backward_matches_explicit_mask(reference):
    """Forward and backward against torch applying the mask recovered from the same seed."""
    p, seed = 0.3, 21
    q, k, v = _arrays((2, 2, 37, 16), (2, 2, 53, 16), (2, 2, 53, 12))
    z = torch.tensor(_recover_mask(q, k, p, seed, reference))
    out, (lq, lk, lv) = _dropout_run(q, k, v, p, seed, reference, grads=True)
    tq, tk, tv = (torch.tensor(x, requires_grad=True) for x in (q, k, v))
    weights = torch.softmax(tq @ tk.transpose(-1, -2) / math.sqrt(16), dim=-1)
    ref = (weights * z) @ tv
    _close(out, ref)
    g = np.random.default_rng(2).standard_normal(tuple(ref.shape)).astype(np.float32)
    out.backward(lepton.tensor(g))
    ref.backward(torch.tensor(g))
    for a, b in ((lq, tq), (lk, tk), (lv, tv)):
        _close(a.grad, b.grad)


# ---- bad input -----------------------------------------------------------------------------

def test_bad_inputs():
    t = lambda *s: lepton.zeros(*s)  # noqa: E731
    sdpa = F.scaled_dot_product_attention
    with pytest.raises(ValueError, match="at least 2-D"):
        sdpa(t(4), t(4), t(4))
    with pytest.raises(ValueError, match=r"same head dim.*\[2, 5, 8\].*\[2, 6, 7\]|\[2, 5, 8\].*\[2, 6, 7\]"):
        sdpa(t(2, 5, 8), t(2, 6, 7), t(2, 6, 7))
    with pytest.raises(ValueError, match="sequence length"):
        sdpa(t(2, 5, 8), t(2, 6, 8), t(2, 7, 8))
    with pytest.raises(ValueError, match="up to 256"):
        sdpa(t(2, 5, 257), t(2, 6, 257), t(2, 6, 8))
    with pytest.raises(ValueError, match="up to 256"):
        sdpa(t(2, 5, 8), t(2, 6, 8), t(2, 6, 300))
    with pytest.raises(ValueError, match=r"attn_mask of shape \[5, 7\]"):
        sdpa(t(2, 5, 8), t(2, 6, 8), t(2, 6, 8), attn_mask=t(5, 7))
    with pytest.raises(ValueError, match=r"attn_mask of shape \[3, 5, 6\]"):
        sdpa(t(2, 5, 8), t(2, 6, 8), t(2, 6, 8), attn_mask=t(3, 5, 6))
    with pytest.raises(ValueError, match="is_causal"):
        sdpa(t(2, 5, 8), t(2, 6, 8), t(2, 6, 8), attn_mask=t(5, 6), is_causal=True)
    with pytest.raises(ValueError, match="dropout_p"):
        sdpa(t(2, 5, 8), t(2, 6, 8), t(2, 6, 8), dropout_p=1.5)
    with pytest.raises(ValueError):  # batch dims that do not broadcast
        sdpa(t(2, 5, 8), t(3, 6, 8), t(3, 6, 8))
    with pytest.raises(TypeError, match="dtype"):
        sdpa(t(2, 5, 8), t(2, 6, 8).double(), t(2, 6, 8))
    with pytest.raises(TypeError, match="attn_mask"):
        sdpa(t(2, 5, 8), t(2, 6, 8), t(2, 6, 8), attn_mask=t(5, 6).long())
    with pytest.raises(TypeError):
        sdpa(t(2, 5, 8).long(), t(2, 6, 8).long(), t(2, 6, 8).long())


# ---- other instruction sets ----------------------------------------------------------------

@pytest.mark.parametrize("isa", ["avx2", "scalar"])
def test_other_isas_match_reference(isa):
    code = """
        import numpy as np, lepton
        from lepton import _C
        rng = np.random.default_rng(0)
        for causal, E, L, S, mask, p in [(False, 63, 130, 101, False, 0.0), (True, 32, 101, 130, False, 0.0),
                                          (False, 8, 17, 31, True, 0.0), (False, 16, 40, 50, False, 0.3)]:
            q, k, v, g = (rng.standard_normal(s).astype(np.float32)
                          for s in ((2, 3, L, E), (2, 3, S, E), (2, 3, S, 24), (2, 3, L, 24)))
            m = lepton.tensor(rng.random((L, S)) < 0.6) if mask else None
            res = []
            for ref in (False, True):
                ts = [lepton.tensor(x, requires_grad=True) for x in (q, k, v)]
                lepton.manual_seed(1)
                o = _C.scaled_dot_product_attention(*ts, m, p, causal, None, ref)
                o.backward(lepton.tensor(g))
                res.append([o.detach().numpy()] + [t.grad.numpy() for t in ts])
            for a, b in zip(*res):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=5e-5)
        print("ok", lepton.info()["cpu_isa"] if isinstance(lepton.info(), dict) else "")
    """
    r = run_python(code, env={"LEPTON_CPU_ISA": isa})
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


# ---- nn.MultiheadAttention -----------------------------------------------------------------

def _mha_pair(E, H, **kw):
    """A torch MultiheadAttention and a lepton one holding the same weights."""
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H, **kw)
    lm = nn.MultiheadAttention(E, H, **kw)
    state = tm.state_dict()
    assert list(lm.state_dict()) == list(state)
    lm.load_state_dict({k: lepton.tensor(v.detach().numpy().copy()) for k, v in state.items()})
    return lm, tm


def _pair(x, grad=True):
    return lepton.tensor(x, requires_grad=grad), torch.tensor(x, requires_grad=grad)


@pytest.mark.parametrize("kw", [{}, dict(kdim=6, vdim=10), dict(bias=False), dict(add_bias_kv=True)])
def test_mha_parameters_and_init(kw):
    lm, tm = _mha_pair(16, 4, **kw)
    assert [(n, tuple(p.shape)) for n, p in lm.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    lepton.manual_seed(0)
    fresh = nn.MultiheadAttention(64, 8, **kw)
    if fresh.in_proj_bias is not None:
        assert not fresh.in_proj_bias.numpy().any() and not fresh.out_proj.bias.numpy().any()
    if fresh.in_proj_weight is not None:  # xavier_uniform over [3E, E]: U(±√(6 / 4E))
        w, bound = fresh.in_proj_weight.detach().numpy(), math.sqrt(6 / (4 * 64))
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound


MHA_CASES = {
    "self": dict(),
    "self_batch_first": dict(batch_first=True),
    "cross_kv_same": dict(cross="kv"),
    "cross_all_different": dict(cross="all"),
    "kdim_vdim": dict(kdim=6, vdim=10, cross="all"),
    "no_bias": dict(bias=False),
    "bias_kv_zero_attn": dict(add_bias_kv=True, add_zero_attn=True),
    "bias_kv_zero_attn_batch_first": dict(add_bias_kv=True, add_zero_attn=True, batch_first=True),
}
MASK_CASES = ["none", "key_padding", "bool_2d", "float_3d", "both"]


def _mha_inputs(case, E, L, S, N, seed=0):
    kw = dict(MHA_CASES[case])
    cross = kw.pop("cross", None)
    bf = kw.get("batch_first", False)
    shape = lambda T, D: (N, T, D) if bf else (T, N, D)  # noqa: E731
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(shape(L, E)).astype(np.float32)
    if cross is None:
        return kw, (q, None, None)
    k = rng.standard_normal(shape(S, kw.get("kdim", E))).astype(np.float32)
    v = k if cross == "kv" else rng.standard_normal(shape(S, kw.get("vdim", E))).astype(np.float32)
    return kw, (q, k, v)


def _mha_masks(mask_case, L, S, N, H):
    rng = np.random.default_rng(4)
    kpm = am = None
    if mask_case in ("key_padding", "both"):
        kpm = rng.random((N, S)) < 0.3
        kpm[:, 0] = False
    if mask_case == "bool_2d":
        am = rng.random((L, S)) < 0.3
        am[:, 0] = False
    if mask_case in ("float_3d", "both"):
        am = rng.standard_normal((N * H, L, S)).astype(np.float32)
    return kpm, am


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("need_weights,average", [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize("mask_case", MASK_CASES)
@pytest.mark.parametrize("case", list(MHA_CASES))
def test_mha_matches_torch(case, mask_case, need_weights, average):
    E, H, L, N = 16, 4, 7, 3
    kw, (q, k, v) = _mha_inputs(case, E, L, 9, N)
    S = (q if k is None else k).shape[1 if kw.get("batch_first") else 0]
    lm, tm = _mha_pair(E, H, **kw)
    lq, tq = _pair(q)
    lk, tk = (lq, tq) if k is None else _pair(k)  # the same objects: self-attention's fused projection
    lv, tv = (lk, tk) if v is None or v is k else _pair(v)
    kpm, am = _mha_masks(mask_case, L, S, N, H)
    masks = dict(key_padding_mask=kpm, attn_mask=am)
    out, w = lm(lq, lk, lv, need_weights=need_weights, average_attn_weights=average,
                **{n: None if m is None else lepton.tensor(m) for n, m in masks.items()})
    tout, tw = tm(tq, tk, tv, need_weights=need_weights, average_attn_weights=average,
                  **{n: None if m is None else torch.tensor(m) for n, m in masks.items()})
    _close(out, tout)
    assert (w is None) == (tw is None)
    if w is not None:
        _close(w, tw)
    g = np.random.default_rng(5).standard_normal(tuple(tout.shape)).astype(np.float32)
    out.backward(lepton.tensor(g))
    tout.backward(torch.tensor(g))
    tparams = dict(tm.named_parameters())
    for name, p in lm.named_parameters():
        _close(p.grad, tparams[name].grad)
    _close(lq.grad, tq.grad)


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("with_padding", [False, True])
def test_mha_is_causal_hint(need_weights, with_padding):
    E, H, L, N = 16, 2, 10, 2
    lm, tm = _mha_pair(E, H, batch_first=True)
    (x,) = _arrays((N, L, E))
    causal = np.triu(np.ones((L, L), bool), 1)
    kpm = np.zeros((N, L), bool)
    kpm[1, -3:] = True
    kw = dict(need_weights=need_weights, is_causal=True)
    out, _ = lm(*[lepton.tensor(x)] * 3, attn_mask=lepton.tensor(causal),
                key_padding_mask=lepton.tensor(kpm) if with_padding else None, **kw)
    tout, _ = tm(*[torch.tensor(x)] * 3, attn_mask=torch.tensor(causal),
                 key_padding_mask=torch.tensor(kpm) if with_padding else None, **kw)
    _close(out, tout)
    with pytest.raises(ValueError, match="is_causal"):
        lm(*[lepton.tensor(x)] * 3, is_causal=True)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("need_weights", [False, True])
def test_mha_unbatched(need_weights):
    E, H, L, S = 12, 3, 5, 8
    lm, tm = _mha_pair(E, H)
    q, k = _arrays((L, E), (S, E))
    kpm = np.zeros(S, bool)
    kpm[-2:] = True
    am = np.random.default_rng(1).standard_normal((H, L, S)).astype(np.float32)
    out, w = lm(lepton.tensor(q), lepton.tensor(k), lepton.tensor(k), key_padding_mask=lepton.tensor(kpm),
                attn_mask=lepton.tensor(am), need_weights=need_weights)
    tout, tw = tm(torch.tensor(q), torch.tensor(k), torch.tensor(k), key_padding_mask=torch.tensor(kpm),
                  attn_mask=torch.tensor(am), need_weights=need_weights)
    _close(out, tout)
    if need_weights:
        _close(w, tw)


def test_mha_dropout_training_and_eval():
    lm, tm = _mha_pair(16, 4, dropout=0.5, batch_first=True)
    (x,) = _arrays((2, 6, 16))
    lx = lepton.tensor(x)
    lepton.manual_seed(3)
    a, _ = lm(lx, lx, lx, need_weights=False)
    lepton.manual_seed(3)
    b, _ = lm(lx, lx, lx, need_weights=False)
    lepton.manual_seed(4)
    c, _ = lm(lx, lx, lx, need_weights=False)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert np.abs(a.detach().numpy() - c.detach().numpy()).max() > 1e-3
    lm.eval()
    tm.eval()
    for need_weights in (False, True):
        _close(lm(lx, lx, lx, need_weights=need_weights)[0],
               tm(*[torch.tensor(x)] * 3, need_weights=need_weights)[0])


def test_mha_bad_inputs():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)
    m = nn.MultiheadAttention(8, 2)
    x = lepton.zeros(4, 2, 8)
    with pytest.raises(ValueError, match="3-D"):
        m(lepton.zeros(1, 4, 2, 8), x, x)
    with pytest.raises(ValueError, match="feature sizes"):
        m(lepton.zeros(4, 2, 6), x, x)
    with pytest.raises(ValueError, match="batch size"):
        m(x, lepton.zeros(4, 3, 8), lepton.zeros(4, 3, 8))
    with pytest.raises(ValueError, match=r"attn_mask of shape \[4, 5\]"):
        m(x, x, x, attn_mask=lepton.zeros(4, 5))
    with pytest.raises(ValueError, match="key_padding_mask"):
        m(x, x, x, key_padding_mask=lepton.zeros(2, 4, 1))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \[4, 2\]"):
        m(x, x, x, key_padding_mask=lepton.zeros(4, 2))
    with pytest.raises(TypeError, match="attn_mask"):
        m(x, x, x, attn_mask=lepton.zeros(4, 4).long())
