"""lepton.autocast against torch.autocast on the CPU (bfloat16; float16 where noted): the autocast
state (defaults, nesting, decorator, bad arguments), the output dtype of every op Lepton covers
(taken from torch in the same run, not from a table), and values and gradients of Linear,
matmul/bmm/addmm, conv2d, scaled_dot_product_attention and small MLP/CNN training steps.

Tolerances: both sides round the same bfloat16 operands and accumulate in float32 in different
orders, so outputs differ by about one bfloat16 ulp: rtol 1.6e-2 and atol 1e-2 times the largest
reference magnitude. Gradients pass through bfloat16 products on both sides: the same bounds.
The 16-bit CPU GEMM itself (used without autocast too) is checked against float64 products of
the rounded operands, with K large enough that bfloat16 accumulation would fail the check.
CUDA tests (marked `cuda`) compare with torch on the GPU and skip here.
"""
import numpy as np
import pytest

import lepton
import lepton.nn as nn
import lepton.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().float().numpy()
    return t.detach().float().cpu().numpy()


def _close(actual, expected, rtol=1.6e-2, atol=1e-2):
    a, e = _np(actual), _np(expected)
    assert a.shape == e.shape, (a.shape, e.shape)
    scale = max(1.0, float(np.abs(e).max(initial=0)))
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol * scale)


def _same_dtype(actual, expected):
    assert actual.dtype.name == str(expected.dtype).replace("torch.", ""), (actual.dtype, expected.dtype)


def _pair(*shapes, seed=0, grad=False):
    """The same float32 arrays as (lepton tensors, torch tensors)."""
    rng = np.random.default_rng(seed)
    arrs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ls = [lepton.tensor(a, requires_grad=grad) for a in arrs]
    ts = [torch.tensor(a, requires_grad=grad) for a in arrs]
    return ls, ts


# ---- state --------------------------------------------------------------------------------------

def test_defaults_like_torch():
    assert not lepton.is_autocast_enabled("cpu") and not lepton.is_autocast_enabled("cuda")
    assert lepton.get_autocast_dtype("cpu") == lepton.bfloat16
    assert lepton.get_autocast_dtype("cuda") == lepton.float16
    assert str(torch.get_autocast_dtype("cpu")) == "torch.bfloat16"


def test_nesting_restores_state():
    with lepton.autocast("cpu"):
        assert lepton.is_autocast_enabled("cpu") and not lepton.is_autocast_enabled("cuda")
        with lepton.autocast("cpu", enabled=False):
            assert not lepton.is_autocast_enabled("cpu")
            x = lepton.randn(3, 4)
            assert (x @ x.t()).dtype == lepton.float32
        with lepton.autocast("cpu", dtype=lepton.float16):
            assert lepton.get_autocast_dtype("cpu") == lepton.float16
            x = lepton.randn(3, 4)
            assert (x @ x.t()).dtype == lepton.float16
        assert lepton.get_autocast_dtype("cpu") == lepton.bfloat16
        assert lepton.is_autocast_enabled("cpu")
    assert not lepton.is_autocast_enabled("cpu")


def test_state_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with lepton.autocast("cpu"):
            1 / 0
    assert not lepton.is_autocast_enabled("cpu")


def test_decorator():
    @lepton.autocast("cpu")
    def f(x, w):
        assert lepton.is_autocast_enabled("cpu")
        return F.linear(x, w)

    x, w = lepton.randn(2, 3), lepton.randn(4, 3)
    assert f(x, w).dtype == lepton.bfloat16
    assert not lepton.is_autocast_enabled("cpu")
    assert lepton.amp.autocast is lepton.autocast


def test_bad_arguments():
    with pytest.raises(ValueError, match="device_type"):
        lepton.autocast("tpu")
    with pytest.raises(ValueError, match="str"):
        lepton.autocast(0)
    with pytest.warns(UserWarning, match="not supported"):
        ac = lepton.autocast("cpu", dtype=lepton.float32)
    with ac:
        assert not lepton.is_autocast_enabled("cpu")


@pytest.mark.skipif(lepton.cuda.is_available(), reason="checks the no-CUDA fallback")
def test_cuda_autocast_without_cuda_is_disabled_and_leaves_cpu_alone():
    with pytest.warns(UserWarning, match="CUDA is not available"):
        ac = lepton.autocast("cuda")
    with ac:
        x = lepton.randn(3, 4)
        assert (x @ x.t()).dtype == lepton.float32


def test_float64_is_not_cast():
    (x, w), (tx, tw) = _pair((3, 5), (4, 5))
    with lepton.autocast("cpu"), torch.autocast("cpu", dtype=torch.bfloat16):
        y, ty = F.linear(x.double(), w.double()), TF.linear(tx.double(), tw.double())
    _same_dtype(y, ty)


# ---- output dtypes, per op, as torch gives them ---------------------------------------------------

def _ops(m, Fm):
    """(name, fn(x2d, x4d, target)) built from one namespace (lepton or torch), same calls on both."""
    return [
        ("linear", lambda x, img, t: Fm.linear(x, x[:3])),
        ("matmul", lambda x, img, t: x @ x.t()),
        ("bmm", lambda x, img, t: m.bmm(img[0], img[0].transpose(1, 2))),
        ("addmm", lambda x, img, t: m.addmm(x[:, :3], x, x[:3].t())),
        ("conv2d", lambda x, img, t: Fm.conv2d(img, img[:2, :, :2, :2])),
        ("sdpa", lambda x, img, t: Fm.scaled_dot_product_attention(img, img, img)),
        ("softmax_of_linear", lambda x, img, t: Fm.softmax(Fm.linear(x, x), -1)),
        ("log_softmax_of_linear", lambda x, img, t: Fm.log_softmax(Fm.linear(x, x), -1)),
        ("layer_norm_of_linear", lambda x, img, t: Fm.layer_norm(Fm.linear(x, x), (x.shape[0],), m.ones(x.shape[0]),
                                                                m.zeros(x.shape[0]))),
        ("batch_norm_of_conv", lambda x, img, t: Fm.batch_norm(Fm.conv2d(img, img[:, :, :2, :2]), None, None,
                                                              training=True)),
        ("sum_of_linear", lambda x, img, t: Fm.linear(x, x).sum()),
        ("mean_of_linear", lambda x, img, t: Fm.linear(x, x).mean()),
        ("exp_of_linear", lambda x, img, t: Fm.linear(x, x).exp()),
        ("relu_of_linear", lambda x, img, t: Fm.relu(Fm.linear(x, x))),
        ("gelu_of_linear", lambda x, img, t: Fm.gelu(Fm.linear(x, x))),
        ("max_pool_of_conv", lambda x, img, t: Fm.max_pool2d(Fm.conv2d(img, img[:, :, :2, :2]), 2)),
        ("add_fp32", lambda x, img, t: Fm.linear(x, x) + x),
        ("cat_fp32", lambda x, img, t: m.cat([Fm.linear(x, x), x])),
        ("cross_entropy", lambda x, img, t: Fm.cross_entropy(Fm.linear(x, x), t)),
        ("cross_entropy_none", lambda x, img, t: Fm.cross_entropy(Fm.linear(x, x), t, reduction="none")),
        ("nll_loss", lambda x, img, t: Fm.nll_loss(Fm.log_softmax(Fm.linear(x, x), -1), t)),
        ("mse_loss", lambda x, img, t: Fm.mse_loss(Fm.linear(x, x), x)),
        ("l1_loss", lambda x, img, t: Fm.l1_loss(Fm.linear(x, x), x)),
        ("bce_with_logits", lambda x, img, t: Fm.binary_cross_entropy_with_logits(Fm.linear(x, x), x.sigmoid())),
        ("bce", lambda x, img, t: Fm.binary_cross_entropy(Fm.linear(x, x).sigmoid(), x.sigmoid())),
    ]


OP_NAMES = [name for name, _ in _ops(None, None)]


@pytest.mark.parametrize("i", range(len(OP_NAMES)), ids=OP_NAMES)
def test_output_dtype_and_value_match_torch(i):
    (x, img), (tx, timg) = _pair((6, 6), (2, 3, 5, 6), seed=i)  # x square: linear(x, x) has x's shape
    t, tt = lepton.tensor([0, 5, 2, 1, 3, 4]), torch.tensor([0, 5, 2, 1, 3, 4])
    fn, tfn = _ops(lepton, F)[i][1], _ops(torch, TF)[i][1]
    with lepton.autocast("cpu"):
        y = fn(x, img, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ty = tfn(tx, timg, tt)
    _same_dtype(y, ty)
    if OP_NAMES[i] == "exp_of_linear":  # exp of a bfloat16 value near 10 amplifies its rounding
        _close(y, ty, rtol=3e-2)
    else:
        _close(y, ty)


# ---- values and gradients -----------------------------------------------------------------------

@pytest.mark.parametrize("n,k,m", [(1, 7, 5), (13, 37, 29), (64, 300, 33), (3, 1, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_backward(n, k, m, bias):
    (x, w, b), (tx, tw, tb) = _pair((n, k), (m, k), (m,), seed=n + k, grad=True)
    with lepton.autocast("cpu"):
        y = F.linear(x, w, b if bias else None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ty = TF.linear(tx, tw, tb if bias else None)
    _same_dtype(y, ty)
    _close(y, ty)
    (gy,), (tgy,) = _pair((n, m), seed=7)
    y.backward(gy.to(lepton.bfloat16))
    ty.backward(tgy.to(torch.bfloat16))
    for p, tp in [(x, tx), (w, tw)] + ([(b, tb)] if bias else []):
        assert p.grad.dtype == lepton.float32 and tp.grad.dtype == torch.float32
        _close(p.grad, tp.grad)


def test_matmul_bmm_addmm_forward_backward():
    (a, b, c3, d3, inp), (ta, tb, tc3, td3, tinp) = _pair((4, 3, 9, 17), (17, 6), (5, 7, 11), (5, 11, 2), (9, 6),
                                                          grad=True)
    with lepton.autocast("cpu"):
        ys = [a @ b, lepton.bmm(c3, d3), lepton.addmm(inp, a[0, 0], b, beta=0.5, alpha=2.0)]
        loss = sum((y.float() ** 2).sum() for y in ys)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tys = [ta @ tb, torch.bmm(tc3, td3), torch.addmm(tinp, ta[0, 0], tb, beta=0.5, alpha=2.0)]
        tloss = sum((ty.float() ** 2).sum() for ty in tys)
    for y, ty in zip(ys, tys):
        _same_dtype(y, ty)
        _close(y, ty)
    loss.backward()
    tloss.backward()
    for p, tp in [(a, ta), (b, tb), (c3, tc3), (d3, td3), (inp, tinp)]:
        _close(p.grad, tp.grad)


@pytest.mark.parametrize("stride,padding,groups", [(1, 1, 1), (2, 0, 1), (1, 2, 3)])
def test_conv2d_forward_backward(stride, padding, groups):
    (x, w, b), (tx, tw, tb) = _pair((2, 3, 11, 9), (6, 3 // groups, 3, 3), (6,), seed=stride + padding, grad=True)
    with lepton.autocast("cpu"):
        y = F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ty = TF.conv2d(tx, tw, tb, stride=stride, padding=padding, groups=groups)
    _same_dtype(y, ty)
    _close(y, ty)
    (y.float() ** 2).sum().backward()
    (ty.float() ** 2).sum().backward()
    for p, tp in [(x, tx), (w, tw), (b, tb)]:
        assert p.grad.dtype == lepton.float32
        _close(p.grad, tp.grad)


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_forward_backward(causal):
    (q, k, v), (tq, tk, tv) = _pair((2, 3, 7, 16), (2, 3, 7, 16), (2, 3, 7, 8), seed=int(causal), grad=True)
    with lepton.autocast("cpu"):
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ty = TF.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    _same_dtype(y, ty)
    _close(y, ty)
    (y.float() * lepton.arange(8.0)).sum().backward()
    (ty.float() * torch.arange(8.0)).sum().backward()
    for p, tp in [(q, tq), (k, tk), (v, tv)]:
        _close(p.grad, tp.grad, rtol=3e-2, atol=2e-2)


def _copy_params(model, tmodel):
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        with torch.no_grad():
            tp.copy_(torch.tensor(p.detach().numpy()))


def _train_step(model, tmodel, x, tx, target, ttarget, lr=0.1):
    """One autocast forward + fp32 backward + SGD step on both; returns the losses."""
    opt, topt = lepton.optim.SGD(model.parameters(), lr=lr), torch.optim.SGD(tmodel.parameters(), lr=lr)
    with lepton.autocast("cpu"):
        loss = F.cross_entropy(model(x), target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tloss = TF.cross_entropy(tmodel(tx), ttarget)
    _same_dtype(loss, tloss)
    loss.backward()
    tloss.backward()
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert p.grad.dtype == lepton.float32
        _close(p.grad, tp.grad, rtol=3e-2, atol=1e-2)
    opt.step()
    topt.step()
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        _close(p, tp, rtol=1e-2, atol=1e-3)
    return loss, tloss


def test_mlp_training_step():
    lepton.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 5))
    tmodel = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.GELU(),
                                 torch.nn.Linear(32, 5))
    _copy_params(model, tmodel)
    (x,), (tx,) = _pair((16, 20), seed=3)
    target = np.random.default_rng(1).integers(0, 5, 16)
    loss, tloss = _train_step(model, tmodel, x, tx, lepton.tensor(target), torch.tensor(target))
    _close(loss, tloss)


def test_cnn_training_step():
    lepton.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    _copy_params(model, tmodel)
    (x,), (tx,) = _pair((6, 1, 8, 8), seed=4)
    target = np.random.default_rng(2).integers(0, 3, 6)
    loss, tloss = _train_step(model, tmodel, x, tx, lepton.tensor(target), torch.tensor(target))
    _close(loss, tloss)


def test_backward_inside_autocast_equals_outside():
    (x, w), _ = _pair((4, 6), (3, 6), grad=True)
    grads = []
    for inside in (False, True):
        x.grad = w.grad = None
        with lepton.autocast("cpu"):
            loss = (F.linear(x, w).float() ** 2).sum()
            if inside:
                loss.backward()
        if not inside:
            loss.backward()
        grads.append((_np(x.grad), _np(w.grad)))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_cross_entropy_fp32_under_autocast_is_exact_on_bf16_logits():
    """The loss runs in float32 on the bfloat16 logits: the same as computing it by hand in float32."""
    (x, w), _ = _pair((8, 10), (7, 10))
    t = lepton.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    with lepton.autocast("cpu"):
        logits = F.linear(x, w)
        loss = F.cross_entropy(logits, t)
    expected = F.cross_entropy(logits.float(), t)
    assert loss.dtype == lepton.float32
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)


def test_16bit_cross_entropy_without_autocast_matches_torch():
    """bfloat16 logits outside autocast (e.g. a model already cast to bfloat16): the fused loss
    computes in float32 and rounds once, giving bfloat16 like torch, with a bfloat16 gradient."""
    (x,), (tx,) = _pair((9, 7), seed=3)
    x, tx = x.to(lepton.bfloat16).requires_grad_(), tx.to(torch.bfloat16).requires_grad_()
    t = np.array([0, 6, 3, 2, 1, 5, 4, 0, 6])
    for reduction in ("mean", "none"):
        y = F.cross_entropy(x, lepton.tensor(t), reduction=reduction, label_smoothing=0.1)
        ty = TF.cross_entropy(tx, torch.tensor(t), reduction=reduction, label_smoothing=0.1)
        _same_dtype(y, ty)
        _close(y, ty)
    y.float().sum().backward()
    ty.float().sum().backward()
    _same_dtype(x.grad, tx.grad)
    _close(x.grad, tx.grad)


# ---- the 16-bit CPU GEMM used under autocast ------------------------------------------------------

@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("m,k,n", [(1, 3000, 17), (33, 4099, 9), (7, 5, 300), (0, 4, 3), (4, 0, 3)])
def test_16bit_gemm_accumulates_in_float32(dtype, m, k, n):
    """Sums of K up to ~4000 products of [0.5, 1] values: rounding each partial sum to 8 or 11 bits
    would be off by far more than one final rounding (the bound here)."""
    rng = np.random.default_rng(m + k)
    dt = getattr(lepton, dtype)
    a = lepton.tensor(rng.uniform(0.5, 1, (m, k)).astype(np.float32)).to(dt)
    b = lepton.tensor(rng.uniform(0.5, 1, (n, k)).astype(np.float32)).to(dt).t()  # a transposed operand
    exact = _np(a).astype(np.float64) @ _np(b).astype(np.float64)
    y = a @ b
    assert y.dtype == dt
    eps = 2.0 ** -8 if dtype == "bfloat16" else 2.0 ** -11
    np.testing.assert_allclose(_np(y), exact, rtol=eps * 1.01, atol=0)


def test_16bit_linear_with_bias_and_batched_matmul_match_float32():
    (x, w, b, c), _ = _pair((3, 5, 40), (12, 40), (12,), (40, 7))
    xb, wb, bb, cb = (t.to(lepton.bfloat16) for t in (x, w, b, c))
    y = F.linear(xb, wb, bb)
    ref = F.linear(xb.float(), wb.float(), bb.float())
    np.testing.assert_allclose(_np(y), _np(ref.to(lepton.bfloat16)), rtol=1e-2, atol=1e-2)
    z = xb @ cb  # [3, 5, 40] @ [40, 7]: a broadcast operand
    np.testing.assert_allclose(_np(z), _np((xb.float() @ cb.float()).to(lepton.bfloat16)), rtol=1e-2, atol=1e-2)


# ---- CUDA -----------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not lepton.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_autocast_matches_torch(dtype):
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    (x, w, b), (tx, tw, tb) = _pair((33, 64), (48, 64), (48,), grad=True)
    x, w, b = (p.detach().to("cuda").requires_grad_() for p in (x, w, b))
    tx, tw, tb = (p.detach().cuda().requires_grad_() for p in (tx, tw, tb))
    t, tt = lepton.tensor(np.arange(33) % 48).to("cuda"), torch.tensor(np.arange(33) % 48).cuda()
    with lepton.autocast("cuda", dtype=getattr(lepton, dtype)):
        h = F.linear(x, w, b)
        outs = [h, F.softmax(h, -1), F.layer_norm(h, (48,)), h.sum(), h.exp(), F.cross_entropy(h, t)]
    with torch.autocast("cuda", dtype=getattr(torch, dtype)):
        th = TF.linear(tx, tw, tb)
        touts = [th, TF.softmax(th, -1), TF.layer_norm(th, (48,)), th.sum(), th.exp(), TF.cross_entropy(th, tt)]
    for o, to in zip(outs, touts):
        _same_dtype(o, to)
        _close(o.cpu(), to.cpu(), rtol=3e-2)
    outs[-1].backward()
    touts[-1].backward()
    for p, tp in [(x, tx), (w, tw), (b, tb)]:
        _close(p.grad.cpu(), tp.grad.cpu(), rtol=3e-2)
