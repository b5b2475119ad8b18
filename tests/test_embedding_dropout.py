"""embedding (functional and nn.Embedding) against torch, and the fused dropout kernel: its mask
statistics, forward/backward agreement, reproducibility, edge cases, and the reference kernels.

Tolerances: embedding outputs are copies (exact); weight gradients are sums of a few rows
(float32 rtol 1e-6, atol 1e-6; float64 rtol 1e-12).
"""
import numpy as np
import pytest

import lepton
from lepton import _C, nn
import lepton.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def weights(rows, dim, dtype=np.float32, seed=0):
    w = np.random.default_rng(seed).standard_normal((rows, dim)).astype(dtype)
    return lepton.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)


def with_reference(fn):
    """fn() run on the fast kernels and then on the serial reference kernels."""
    fast = fn()
    _C._set_norm_reference(True)
    try:
        return fast, fn()
    finally:
        _C._set_norm_reference(False)


# ---- embedding -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("idx_shape", [(), (1,), (7,), (3, 5), (2, 3, 4), (0,)])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(idx_shape, padding_idx, dtype):
    rows, dim = 11, 17
    (w, tw) = weights(rows, dim, dtype)
    idx = np.random.default_rng(1).integers(0, rows, idx_shape)
    if idx.size:
        idx.flat[0] = 2 if padding_idx == 2 else rows - 1  # the padding row is looked up
    y = F.embedding(lepton.tensor(idx), w, padding_idx=padding_idx)
    ty = TF.embedding(torch.tensor(idx), tw, padding_idx=padding_idx)
    assert tuple(y.shape) == tuple(ty.shape)
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    g = np.random.default_rng(2).standard_normal(ty.shape).astype(dtype)
    y.backward(lepton.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), **TOL[dtype])


def test_embedding_repeated_indices_and_scale_grad_by_freq():
    (w, tw) = weights(6, 5)
    idx = np.array([[1, 1, 1, 4], [4, 0, 1, 5]])
    for scale in (False, True):
        w.grad = None
        tw.grad = None
        F.embedding(lepton.tensor(idx), w, scale_grad_by_freq=scale).pow(2).sum().backward()
        TF.embedding(torch.tensor(idx), tw, scale_grad_by_freq=scale).pow(2).sum().backward()
        np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_embedding_int32_indices_and_large_table():
    (w, tw) = weights(5000, 96, seed=3)
    idx = np.random.default_rng(4).integers(0, 5000, (64, 33)).astype(np.int32)
    y = F.embedding(lepton.tensor(idx), w)
    ty = TF.embedding(torch.tensor(idx), tw)
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    g = np.random.default_rng(5).standard_normal(ty.shape).astype(np.float32)
    y.backward(lepton.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0])
def test_embedding_max_norm_renormalises_in_place_like_torch(norm_type):
    wa = np.random.default_rng(6).standard_normal((8, 4)).astype(np.float32) * 3
    w, tw = lepton.tensor(wa.copy()), torch.tensor(wa.copy())
    idx = np.array([1, 3, 3, 6])
    y = F.embedding(lepton.tensor(idx), w, max_norm=1.5, norm_type=norm_type)
    ty = TF.embedding(torch.tensor(idx), tw, max_norm=1.5, norm_type=norm_type)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.numpy(), tw.numpy(), rtol=1e-5, atol=1e-6)  # rows 1, 3, 6 changed in place
    assert not np.allclose(w.numpy()[1], wa[1])


@pytest.mark.parametrize("rows", [300, 3000])  # 3000 x 24: the fast backward splits the table between threads
def test_embedding_fast_kernel_matches_reference(rows):
    idx = lepton.tensor(np.random.default_rng(7).integers(0, rows, (400, 9)))
    g = lepton.tensor(np.random.default_rng(8).standard_normal((400, 9, 24)).astype(np.float32))

    def run():
        w = lepton.tensor(np.random.default_rng(9).standard_normal((rows, 24)).astype(np.float32), requires_grad=True)
        y = F.embedding(idx, w, padding_idx=5, scale_grad_by_freq=True)
        y.backward(g)
        return y.detach().numpy(), w.grad.numpy()

    fast, ref = with_reference(run)
    np.testing.assert_array_equal(fast[0], ref[0])
    np.testing.assert_allclose(fast[1], ref[1], rtol=1e-6, atol=1e-6)


def test_embedding_module():
    lepton.manual_seed(0)
    m = nn.Embedding(1000, 64, padding_idx=3)
    w = m.weight.detach().numpy()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02  # N(0, 1)
    np.testing.assert_array_equal(w[3], np.zeros(64, np.float32))
    assert list(m.state_dict()) == ["weight"]
    assert repr(m) == "Embedding(1000, 64, padding_idx=3)"
    assert nn.Embedding(10, 4, padding_idx=-1).padding_idx == 9
    out = m(lepton.tensor([[3, 4], [5, 3]]))
    assert tuple(out.shape) == (2, 2, 64)
    out.sum().backward()
    np.testing.assert_array_equal(m.weight.grad.numpy()[3], np.zeros(64, np.float32))
    np.testing.assert_array_equal(m.weight.grad.numpy()[4], np.ones(64, np.float32))
    # from_pretrained: shares the tensor's values, frozen by default
    table = lepton.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(lepton.tensor([2])).numpy(), [[6, 7, 8]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    # state_dict round trip with torch's layer
    tm = torch.nn.Embedding(1000, 64, padding_idx=3)
    m.load_state_dict({"weight": lepton.tensor(tm.weight.detach().numpy())})
    idx = np.array([0, 999, 3])
    np.testing.assert_array_equal(m(lepton.tensor(idx)).detach().numpy(), tm(torch.tensor(idx)).detach().numpy())


def test_embedding_errors():
    w = lepton.randn(10, 3)
    with pytest.raises(IndexError, match="index 10 is out of range for 10 embeddings"):
        F.embedding(lepton.tensor([1, 10]), w)
    with pytest.raises(IndexError, match="index -1 is out of range"):
        F.embedding(lepton.tensor([[0, -1]]), w)
    with pytest.raises(IndexError, match="out of range"):
        F.embedding(lepton.tensor([11]), w, max_norm=1.0)
    with pytest.raises(TypeError, match="indices must be an integer tensor"):
        F.embedding(lepton.tensor([1.0]), w)
    with pytest.raises(ValueError, match=r"weight must be 2-D \[num_embeddings, embedding_dim\], got shape \[10\]"):
        F.embedding(lepton.tensor([1]), lepton.randn(10))
    with pytest.raises(ValueError, match="padding_idx 10 must be within num_embeddings"):
        F.embedding(lepton.tensor([1]), w, padding_idx=10)
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=-6)
    with pytest.raises(NotImplementedError, match="sparse"):
        F.embedding(lepton.tensor([1]), w, sparse=True)
    with pytest.raises(ValueError, match="2-dimensional"):
        nn.Embedding.from_pretrained(lepton.randn(4))


# ---- dropout ---------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float64])
def test_dropout_mask_statistics_and_backward(p, dtype):
    x = lepton.tensor(np.random.default_rng(0).uniform(1, 2, (300, 701)), dtype=dtype, requires_grad=True)
    y = F.dropout(x, p)
    xv, yv = x.detach().numpy(), y.detach().numpy()
    kept = yv != 0
    n = kept.size
    assert abs((1 - kept.mean()) - p) < 4 * np.sqrt(p * (1 - p) / n)  # within 4 sigma
    scale = np.float32(1 / (1 - p)) if dtype == lepton.float32 else 1 / (1 - p)
    np.testing.assert_allclose(yv[kept], xv[kept] * scale, rtol=1e-6)
    g = np.random.default_rng(1).standard_normal(xv.shape)
    y.backward(lepton.tensor(g, dtype=dtype))
    gx = x.grad.numpy()
    np.testing.assert_array_equal(gx != 0, kept)  # the backward made the same mask again
    np.testing.assert_allclose(gx[kept], g.astype(xv.dtype)[kept] * scale, rtol=1e-6)


@pytest.mark.parametrize("n", [1, 3, 15, 16, 17, 63, 64, 65, 1000, 4097, 100003])
def test_dropout_fast_kernel_matches_reference_bit_for_bit(n):
    x = lepton.tensor(np.random.default_rng(n).standard_normal(n).astype(np.float32))

    def run():
        lepton.manual_seed(1234)
        return F.dropout(x, 0.3).numpy()

    fast, ref = with_reference(run)
    np.testing.assert_array_equal(fast, ref)


def test_dropout_is_reproducible_and_advances_the_generator():
    x = lepton.ones(5000)
    lepton.manual_seed(7)
    a, b = F.dropout(x, 0.5).numpy(), F.dropout(x, 0.5).numpy()
    assert not np.array_equal(a, b)  # each call takes new counters
    lepton.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), b)
    lepton.manual_seed(7)
    F.dropout(x, 0.5)
    r1 = lepton.rand(3).numpy()
    lepton.manual_seed(7)
    F.dropout(x, 0.5)
    np.testing.assert_array_equal(lepton.rand(3).numpy(), r1)


def test_dropout_edges():
    x = lepton.tensor([1.0, -2.0, float("nan"), float("inf")], requires_grad=True)
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0.7, training=False) is x
    zero = F.dropout(x, 1.0)
    ref = TF.dropout(torch.tensor([1.0, -2.0, float("nan"), float("inf")]), 1.0)
    np.testing.assert_array_equal(zero.detach().numpy(), ref.numpy())  # 0·x: NaN stays NaN, as in torch
    zero.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(4, np.float32))
    assert tuple(F.dropout(lepton.ones(0, 3), 0.5).shape) == (0, 3)
    h = F.dropout(lepton.ones(2, 3, dtype=lepton.bfloat16), 0.5)
    assert h.dtype == lepton.bfloat16 and set(np.unique(h.float().numpy())) <= {0.0, 2.0}
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            F.dropout(x, bad)
        with pytest.raises(ValueError, match="between 0 and 1"):
            _C.dropout(x, bad)
    with pytest.raises(TypeError, match="floating-point"):
        _C.dropout(lepton.ones(3, dtype=lepton.int64), 0.5)


def test_dropout_inplace_and_strided():
    lepton.manual_seed(3)
    expected = F.dropout(lepton.ones(6, 7), 0.4).numpy()
    lepton.manual_seed(3)
    y = lepton.ones(6, 7)
    assert F.dropout(y, 0.4, inplace=True) is y
    np.testing.assert_array_equal(y.numpy(), expected)
    lepton.manual_seed(3)
    t = lepton.ones(7, 6).transpose(0, 1)  # not contiguous: written back through its strides
    F.dropout(t, 0.4, inplace=True)
    np.testing.assert_array_equal(t.numpy(), expected)
    # in place on a non-leaf keeps the graph: d(dropout(2a))/da = 2·mask·scale
    a = lepton.ones(50, requires_grad=True)
    h = a * 2.0
    out = F.dropout(h, 0.5, inplace=True)
    out.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), out.detach().numpy())
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        F.dropout(lepton.ones(3, requires_grad=True), 0.5, inplace=True)


def test_dropout_double_backward():
    # L = Σ y² with y = m·s·x: dL/dx = 2·m·s²·x goes through the dropout backward, and
    # d(Σ dL/dx)/dx = 2·m·s² needs that backward to be differentiable (it is dropout again)
    x = lepton.ones(100, requires_grad=True)
    y = F.dropout(x, 0.5)
    (g,) = lepton.autograd.grad(y.pow(2).sum(), [x], create_graph=True)
    (gg,) = lepton.autograd.grad(g.sum(), [x])
    yv = y.detach().numpy()
    np.testing.assert_allclose(g.detach().numpy(), 2 * 2 * yv)
    np.testing.assert_allclose(gg.numpy(), 2 * 2 * yv)


def test_gradcheck():
    w = lepton.tensor(np.random.default_rng(10).standard_normal((5, 3)), requires_grad=True)
    idx = lepton.tensor([[0, 4, 4], [2, 1, 0]])
    # (padding_idx and scale_grad_by_freq change the gradient on purpose, so only the plain lookup)
    assert lepton.autograd.gradcheck(lambda w: F.embedding(idx, w), [w])

    def seeded_dropout(x):  # the same mask on every call, as finite differences need
        lepton.manual_seed(5)
        return F.dropout(x, 0.4)

    x = lepton.tensor(np.random.default_rng(11).standard_normal((4, 7)), requires_grad=True)
    assert lepton.autograd.gradcheck(seeded_dropout, [x])


def test_dropout_module():
    m = nn.Dropout(0.25)
    x = lepton.ones(2000)
    assert 0.2 < float((m(x) == 0).float().mean()) < 0.3
    assert m.eval()(x) is x
