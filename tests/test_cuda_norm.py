"""The norm family on CUDA (layer_norm, batch_norm, embedding, dropout, pointwise losses)
against the same ops on the CPU, forward and backward.

Tolerances: float32 2e-5 relative/absolute (different reduction orders), float64 1e-12.
Dropout masks are bit-identical across devices for the same seed.
"""

import numpy as np
import pytest

import lepton
import lepton.nn.functional as F

pytestmark = pytest.mark.cuda

TOL = {lepton.float32: 2e-5, lepton.float64: 1e-12}
DTYPES = [lepton.float32, lepton.float64]


def pair(shape, dtype, seed, requires_grad=True, scale=1.0, shift=0.0):
    x = np.random.default_rng(seed).standard_normal(shape) * scale + shift
    cpu = lepton.tensor(x, dtype=dtype).requires_grad_(requires_grad)
    gpu = lepton.tensor(x, dtype=dtype, device="cuda").requires_grad_(requires_grad)
    return cpu, gpu


def close(gpu, cpu, dtype):
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype])


def backward_both(yc, yg, seed=9):
    w = np.random.default_rng(seed).standard_normal(tuple(yc.shape))
    (yc * lepton.tensor(w, dtype=yc.dtype)).sum().backward()
    (yg * lepton.tensor(w, dtype=yg.dtype, device="cuda")).sum().backward()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (33, 17), (8, 768), (3, 5, 4097)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(shape, dtype, affine):
    xc, xg = pair(shape, dtype, 0, shift=3.0)
    n = shape[-1]
    wc, wg = pair((n,), dtype, 1) if affine else (None, None)
    bc, bg = pair((n,), dtype, 2) if affine else (None, None)
    yc, yg = F.layer_norm(xc, (n,), wc, bc), F.layer_norm(xg, (n,), wg, bg)
    close(yg, yc, dtype)
    backward_both(yc, yg)
    close(xg.grad, xc.grad, dtype)
    if affine:
        close(wg.grad, wc.grad, dtype)
        close(bg.grad, bc.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 7, 9), (32, 64, 7, 7), (2, 2, 1)])
def test_batch_norm_train_and_eval(shape, dtype):
    c = shape[1]
    xc, xg = pair(shape, dtype, 3, shift=1.0)
    wc, wg = pair((c,), dtype, 4)
    bc, bg = pair((c,), dtype, 5)
    rm_c, rv_c = lepton.zeros(c, dtype=dtype), lepton.ones(c, dtype=dtype)
    rm_g, rv_g = lepton.zeros(c, dtype=dtype, device="cuda"), lepton.ones(c, dtype=dtype, device="cuda")
    yc = F.batch_norm(xc, rm_c, rv_c, wc, bc, training=True, momentum=0.1)
    yg = F.batch_norm(xg, rm_g, rv_g, wg, bg, training=True, momentum=0.1)
    close(yg, yc, dtype)
    close(rm_g, rm_c, dtype)
    close(rv_g, rv_c, dtype)
    backward_both(yc, yg)
    for g, cc in ((xg, xc), (wg, wc), (bg, bc)):
        close(g.grad, cc.grad, dtype)
    close(F.batch_norm(xg, rm_g, rv_g, wg, bg, training=False), F.batch_norm(xc, rm_c, rv_c, wc, bc, training=False), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 3])
@pytest.mark.parametrize("scale_grad_by_freq", [False, True])
def test_embedding(dtype, padding_idx, scale_grad_by_freq):
    wc, wg = pair((50, 33), dtype, 6)
    idx = np.random.default_rng(7).integers(0, 50, (6, 40))
    idx[0, :5] = 3  # repeats, and the padding index
    ic, ig = lepton.tensor(idx), lepton.tensor(idx, device="cuda")
    yc = F.embedding(ic, wc, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq)
    yg = F.embedding(ig, wg, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq)
    close(yg, yc, dtype)
    backward_both(yc, yg)
    close(wg.grad, wc.grad, dtype)


def test_embedding_bad_index_and_renorm():
    wc, wg = pair((10, 4), lepton.float32, 8, requires_grad=False, scale=5.0)
    with pytest.raises(IndexError):
        F.embedding(lepton.tensor([1, 10], device="cuda"), wg)
    idx = [1, 2, 2, 7]
    close(F.embedding(lepton.tensor(idx, device="cuda"), wg, max_norm=1.0),
          F.embedding(lepton.tensor(idx), wc, max_norm=1.0), lepton.float32)
    close(wg, wc, lepton.float32)  # renormalised in place the same way


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_dropout_masks_match_the_cpu_bit_for_bit(p):
    xc, xg = pair((3, 1000 + 37), lepton.float32, 9)
    lepton.manual_seed(123)
    yc = F.dropout(xc, p, training=True)
    lepton.manual_seed(123)
    yg = F.dropout(xg, p, training=True)
    np.testing.assert_array_equal(yg.detach().cpu().numpy(), yc.detach().numpy())
    backward_both(yc, yg)
    np.testing.assert_array_equal(xg.grad.cpu().numpy(), xc.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_pointwise_losses(name, reduction, dtype):
    xc, xg = pair((37, 11), dtype, 10)
    t = np.random.default_rng(11).uniform(0, 1, (37, 11))
    if name == "binary_cross_entropy":
        x = 1 / (1 + np.exp(-np.random.default_rng(10).standard_normal((37, 11))))
        xc = lepton.tensor(x, dtype=dtype).requires_grad_(True)
        xg = lepton.tensor(x, dtype=dtype, device="cuda").requires_grad_(True)
    tc, tg = lepton.tensor(t, dtype=dtype), lepton.tensor(t, dtype=dtype, device="cuda")
    fn = getattr(F, name)
    lc, lg = fn(xc, tc, reduction=reduction), fn(xg, tg, reduction=reduction)
    close(lg, lc, dtype)
    if reduction == "none":
        backward_both(lc, lg)
    else:
        lc.backward()
        lg.backward()
    close(xg.grad, xc.grad, dtype)


def test_bce_rejects_inputs_outside_unit_interval():
    with pytest.raises(RuntimeError, match="between 0 and 1, got 1.5"):
        F.binary_cross_entropy(lepton.tensor([0.5, 1.5], device="cuda"), lepton.tensor([0.0, 1.0], device="cuda"))
