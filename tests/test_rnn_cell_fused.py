"""The fused LSTM/GRU cells (_C.lstm_cell_fused, _C.gru_cell_fused) against torch's formulas and
Lepton's own unfused composition: forward, backward, float64 finite differences, odd sizes,
strided gates, the reference kernels, 16-bit and mixed dtypes, bad shapes; CUDA against CPU.

Tolerances: float64 1e-12; float32 2e-6 absolute / 2e-5 relative (the fast kernels use
vecmath.h's polynomial exp/tanh, a few ulp from libm).
"""

import numpy as np
import pytest

import lepton
from lepton import _C
from conftest import assert_close, run_python

torch = pytest.importorskip("torch")

TOL = {lepton.float64: dict(rtol=1e-12, atol=1e-12), lepton.float32: dict(rtol=2e-5, atol=2e-6)}
SIZES = [(1, 1), (1, 5), (3, 1), (7, 13), (32, 128), (5, 67)]


def arrays(seed, *shapes, scale=2.0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) * scale for s in shapes]


def leaves(arrs, dtype, device="cpu"):
    return [lepton.tensor(a, dtype=dtype, device=device).requires_grad_(True) for a in arrs]


def torch_leaves(arrs):
    return [torch.tensor(a, requires_grad=True) for a in arrs]


# ---- formulas written out (torch, and lepton's unfused ops) -----------------------------------

def lstm_composed(gates, c):
    i, f, g, o = gates.chunk(4, 1)
    c2 = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c2.tanh(), c2


def gru_composed(x, hg, h):
    xr, xz, xn = x.chunk(3, 1)
    hr, hz, hn = hg.chunk(3, 1)
    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    return (1 - z) * n + z * h


def backward_with(outs, seed):
    """Sum of each output times a fixed random weight, backpropagated (weights returned for torch)."""
    ws = arrays(seed, *[tuple(o.shape) for o in outs], scale=1.0)
    total = None
    for o, w in zip(outs, ws):
        term = (o * (torch.tensor(w) if isinstance(o, torch.Tensor) else lepton.tensor(w, dtype=o.dtype,
                                                                                        device=o.device))).sum()
        total = term if total is None else total + term
    total.backward()


def fused_lstm(gates, c):
    return _C.lstm_cell_fused(gates, c)


def fused_gru(x, hg, h):
    return (_C.gru_cell_fused(x, hg, h),)


CASES = {
    "lstm": (lambda B, H: [(B, 4 * H), (B, H)], fused_lstm, lambda *a: lstm_composed(*a)),
    "gru": (lambda B, H: [(B, 3 * H), (B, 3 * H), (B, H)], fused_gru, lambda *a: (gru_composed(*a),)),
}


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("B,H", SIZES)
@pytest.mark.parametrize("dtype", [lepton.float64, lepton.float32])
def test_matches_torch_forward_and_backward(kind, B, H, dtype):
    shapes, fused, composed = CASES[kind]
    arrs = arrays(B * 100 + H, *shapes(B, H))
    ins, tins = leaves(arrs, dtype), torch_leaves(arrs)
    outs, touts = fused(*ins), composed(*tins)
    for o, t in zip(outs, touts):
        assert_close(o, t.detach().to(torch.float64).numpy(), check_dtype=False, **TOL[dtype])
        assert o.dtype == dtype
    backward_with(outs, 7)
    backward_with(touts, 7)
    for a, t in zip(ins, tins):
        assert a.grad is not None and a.grad.dtype == dtype
        assert_close(a.grad, t.grad.numpy(), check_dtype=False, **TOL[dtype])


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("B,H", [(1, 1), (4, 6), (9, 31)])
def test_matches_unfused_lepton_ops(kind, B, H):
    shapes, fused, composed = CASES[kind]
    arrs = arrays(3, *shapes(B, H))
    ins, ref = leaves(arrs, lepton.float32), leaves(arrs, lepton.float32)
    outs, routs = fused(*ins), composed(*ref)
    for o, r in zip(outs, routs):
        assert_close(o, r.detach().numpy(), **TOL[lepton.float32])
    backward_with(outs, 1)
    backward_with(routs, 1)
    for a, r in zip(ins, ref):
        assert_close(a.grad, r.grad.numpy(), **TOL[lepton.float32])


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("dtype", [lepton.float64, lepton.float32])
def test_reference_kernels_agree(kind, dtype):
    shapes, fused, _ = CASES[kind]
    arrs = arrays(11, *shapes(6, 37))
    results = []
    for reference in (False, True):
        _C._set_rnn_cell_reference(reference)
        try:
            ins = leaves(arrs, dtype)
            outs = fused(*ins)
            backward_with(outs, 2)
            results.append([o.detach().numpy() for o in outs] + [a.grad.numpy() for a in ins])
        finally:
            _C._set_rnn_cell_reference(False)
    for fast, ref in zip(*results):
        np.testing.assert_allclose(fast, ref, **TOL[dtype])


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("B,H", [(1, 1), (2, 3), (3, 2)])
def test_gradcheck_float64(kind, B, H):
    shapes, fused, _ = CASES[kind]
    ins = leaves(arrays(5, *shapes(B, H), scale=1.0), lepton.float64)
    assert lepton.autograd.gradcheck(fused, ins, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_gradcheck_layer_float64(mode):
    lepton.manual_seed(0)
    layer = getattr(lepton.nn, mode)(3, 4, num_layers=2, bidirectional=True).double()
    x = lepton.randn(3, 2, 3, dtype=lepton.float64).requires_grad_(True)
    params = list(layer.parameters())

    def run(x, *ps):
        return layer(x)[0]

    assert lepton.autograd.gradcheck(run, [x] + params[:2], atol=1e-7, rtol=1e-5)


def test_one_backward_node_per_step():
    gates, c = leaves(arrays(0, (2, 8), (2, 2)), lepton.float32)
    h, c2 = fused_lstm(gates, c)
    assert h.grad_fn.name() == "lstm_cell_fused_backward" and c2.grad_fn is h.grad_fn
    x, hg, hh = leaves(arrays(0, (2, 6), (2, 6), (2, 2)), lepton.float32)
    assert fused_gru(x, hg, hh)[0].grad_fn.name() == "gru_cell_fused_backward"


@pytest.mark.parametrize("which", [0, 1])
def test_lstm_one_output_used(which):
    """Only h' or only c' reaches the loss: the other's gradient counts as zero."""
    arrs = arrays(4, (3, 20), (3, 5))
    ins, tins = leaves(arrs, lepton.float64), torch_leaves(arrs)
    fused_lstm(*ins)[which].sum().backward()
    lstm_composed(*tins)[which].sum().backward()
    for a, t in zip(ins, tins):
        assert_close(a.grad, t.grad.numpy(), check_dtype=False, **TOL[lepton.float64])


@pytest.mark.parametrize("layout", ["column_slice", "batch_first_step", "transposed"])
def test_strided_gates(layout):
    """Gates read in place from a row-strided view, or copied when rows are not unit-stride."""
    B, H = 5, 7
    if layout == "column_slice":
        big = arrays(8, (B, 4 * H + 9))[0]
        g_np, make = big[:, 3:3 + 4 * H], lambda t: t[:, 3:3 + 4 * H]
    elif layout == "batch_first_step":
        big = arrays(8, (B, 4, 4 * H))[0]
        g_np, make = big[:, 2], lambda t: t.unbind(1)[2]
    else:
        big = arrays(8, (4 * H, B))[0]
        g_np, make = big.T, lambda t: t.t()
    c_np = arrays(9, (B, H))[0]
    base, c = leaves([big, c_np], lepton.float64)
    gates = make(base)
    assert not gates.is_contiguous()
    outs = fused_lstm(gates, c)
    tg, tc = torch_leaves([np.ascontiguousarray(g_np), c_np])
    touts = lstm_composed(tg, tc)
    for o, t in zip(outs, touts):
        assert_close(o, t.detach().numpy(), check_dtype=False, **TOL[lepton.float64])
    backward_with(outs, 3)
    backward_with(touts, 3)
    expected = np.zeros_like(big)
    if layout == "column_slice":
        expected[:, 3:3 + 4 * H] = tg.grad.numpy()
    elif layout == "batch_first_step":
        expected[:, 2] = tg.grad.numpy()
    else:
        expected = tg.grad.numpy().T
    assert_close(base.grad, expected, check_dtype=False, **TOL[lepton.float64])


def test_gru_strided_gates():
    B, H = 4, 5
    proj = arrays(1, (3, B, 3 * H))[0]
    hg_big, h_np = arrays(2, (B, 3 * H + 4), (B, H))
    p, hgb, h = leaves([proj, hg_big, h_np], lepton.float64)
    out = fused_gru(p.unbind(0)[1], hgb[:, 4:], h)[0]
    tx, thg, th = torch_leaves([proj[1], np.ascontiguousarray(hg_big[:, 4:]), h_np])
    tout = gru_composed(tx, thg, th)
    assert_close(out, tout.detach().numpy(), check_dtype=False, **TOL[lepton.float64])
    backward_with([out], 5)
    backward_with([tout], 5)
    assert_close(p.grad[1], tx.grad.numpy(), check_dtype=False, **TOL[lepton.float64])
    assert float(p.grad[0].abs().sum()) == 0 and float(p.grad[2].abs().sum()) == 0
    assert_close(hgb.grad[:, 4:], thg.grad.numpy(), check_dtype=False, **TOL[lepton.float64])
    assert_close(h.grad, th.grad.numpy(), check_dtype=False, **TOL[lepton.float64])


@pytest.mark.parametrize("kind", CASES)
def test_empty_batch(kind):
    shapes, fused, _ = CASES[kind]
    ins = leaves([np.zeros(s) for s in shapes(0, 4)], lepton.float32)
    outs = fused(*ins)
    assert all(tuple(o.shape) == (0, 4) for o in outs)
    sum(o.sum() for o in outs).backward()
    assert all(tuple(a.grad.shape) == tuple(a.shape) for a in ins)


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("dtype", [lepton.bfloat16, lepton.float16])
def test_16bit_computes_in_float32(kind, dtype):
    shapes, fused, _ = CASES[kind]
    arrs = arrays(6, *shapes(3, 4), scale=1.0)
    ins = leaves(arrs, dtype)
    outs = fused(*ins)
    ref = fused(*[a.detach().float() for a in ins])
    for o, r in zip(outs, ref):
        assert o.dtype == dtype
        assert_close(o.float(), r.to(dtype).float().numpy(), rtol=0, atol=0)
    sum(o.float().sum() for o in outs).backward()
    assert all(a.grad.dtype == dtype for a in ins)


def test_mixed_dtypes_promote():
    gates, c = leaves(arrays(2, (2, 12), (2, 3)), lepton.float32)
    c64 = c.detach().double().requires_grad_(True)
    h, c2 = fused_lstm(gates, c64)
    assert h.dtype == c2.dtype == lepton.float64
    (h.sum() + c2.sum()).backward()
    assert gates.grad.dtype == lepton.float32 and c64.grad.dtype == lepton.float64


@pytest.mark.parametrize("kind", CASES)
def test_double_backward_is_refused(kind):
    shapes, fused, _ = CASES[kind]
    ins = leaves(arrays(1, *shapes(2, 3)), lepton.float64)
    out = fused(*ins)[0].sum()
    with pytest.raises(NotImplementedError, match="double backward"):
        lepton.autograd.grad(out, ins, create_graph=True)


@pytest.mark.parametrize("args,exc,match", [
    (lambda: _C.lstm_cell_fused(lepton.randn(2, 7), lepton.randn(2, 2)), ValueError,
     r"gates of shape \[2, 8\].*got \[2, 7\]"),
    (lambda: _C.lstm_cell_fused(lepton.randn(3, 8), lepton.randn(2, 2)), ValueError,
     r"gates of shape \[2, 8\].*got \[3, 8\]"),
    (lambda: _C.lstm_cell_fused(lepton.randn(2, 8), lepton.randn(2)), ValueError, r"expected c of shape"),
    (lambda: _C.lstm_cell_fused(lepton.randn(2, 4, 2), lepton.randn(2, 2)), ValueError,
     r"gates of shape \[2, 8\].*got \[2, 4, 2\]"),
    (lambda: _C.lstm_cell_fused(lepton.ones(2, 8, dtype=lepton.int64), lepton.randn(2, 2)), TypeError, "floating"),
    (lambda: _C.gru_cell_fused(lepton.randn(2, 6), lepton.randn(2, 9), lepton.randn(2, 2)), ValueError,
     r"h_gates of shape \[2, 6\].*\[2, 9\]"),
    (lambda: _C.gru_cell_fused(lepton.randn(2, 5), lepton.randn(2, 6), lepton.randn(2, 2)), ValueError,
     r"x_gates.*\[2, 5\]"),
    (lambda: _C.gru_cell_fused(lepton.randn(2, 6), lepton.randn(2, 6), lepton.randn(1, 2)), ValueError,
     r"x_gates of shape \[1, 6\].*h of shape \[1, 2\]\), got \[2, 6\]"),
    (lambda: _C.gru_cell_fused(lepton.randn(2, 6), lepton.randn(2, 6), lepton.ones(2, 2, dtype=lepton.int32)),
     TypeError, "floating"),
])
def test_bad_inputs_raise_clear_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        args()


def test_scalar_isa_matches_torch():
    """The scalar build of the fast kernels (no SIMD) in a fresh process."""
    code = """
        import numpy as np, torch, lepton
        from lepton import _C
        rng = np.random.default_rng(0)
        g, c = rng.standard_normal((5, 44)), rng.standard_normal((5, 11))
        h, c2 = _C.lstm_cell_fused(lepton.tensor(g, dtype=lepton.float32), lepton.tensor(c, dtype=lepton.float32))
        tg, tc = torch.tensor(g), torch.tensor(c)
        i, f, gg, o = tg.chunk(4, 1)
        tc2 = f.sigmoid() * tc + i.sigmoid() * gg.tanh()
        th = o.sigmoid() * tc2.tanh()
        assert np.allclose(h.numpy(), th.numpy(), rtol=2e-5, atol=2e-6)
        assert np.allclose(c2.numpy(), tc2.numpy(), rtol=2e-5, atol=2e-6)
    """
    r = run_python(code, env={"LEPTON_CPU_ISA": "scalar"})
    assert r.returncode == 0, r.stderr


# ---- CUDA against the CPU ops -------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("B,H", [(1, 1), (7, 13), (32, 128), (3, 1031)])
@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float64])
def test_cuda_matches_cpu(kind, B, H, dtype):
    shapes, fused, _ = CASES[kind]
    arrs = arrays(B + H, *shapes(B, H))
    cpu, gpu = leaves(arrs, dtype), leaves(arrs, dtype, "cuda")
    outs_c, outs_g = fused(*cpu), fused(*gpu)
    tol = TOL[dtype]
    for oc, og in zip(outs_c, outs_g):
        assert og.device.type == "cuda"
        np.testing.assert_allclose(og.detach().cpu().numpy(), oc.detach().numpy(), **tol)
    backward_with(outs_c, 4)
    backward_with(outs_g, 4)
    for ac, ag in zip(cpu, gpu):
        np.testing.assert_allclose(ag.grad.cpu().numpy(), ac.grad.numpy(), **tol)


@pytest.mark.cuda
def test_cuda_strided_gates_and_layer():
    lepton.manual_seed(1)
    cpu_layer = lepton.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    gpu_layer = lepton.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    gpu_layer.load_state_dict(cpu_layer.state_dict())
    gpu_layer.to("cuda")
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    out_c = cpu_layer(lepton.tensor(x, dtype=lepton.float32))[0]
    out_g = gpu_layer(lepton.tensor(x, dtype=lepton.float32, device="cuda"))[0]
    np.testing.assert_allclose(out_g.detach().cpu().numpy(), out_c.detach().numpy(), rtol=1e-4, atol=1e-5)
