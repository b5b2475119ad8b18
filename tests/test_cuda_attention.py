"""scaled_dot_product_attention on CUDA against the same op on the CPU, forward and backward.

Both devices follow one contract (masks, causal alignment, the dropout words), so float32
agrees to 1e-4 (different summation orders) and float64 to 1e-10.
"""

import numpy as np
import pytest

import lepton
import lepton.nn.functional as F

pytestmark = pytest.mark.cuda

TOL = {lepton.float32: 1e-4, lepton.float64: 1e-10}


def pair(shape, dtype, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    return (lepton.tensor(x, dtype=dtype).requires_grad_(True),
            lepton.tensor(x, dtype=dtype, device="cuda").requires_grad_(True))


def close(gpu, cpu, dtype):
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype])


SHAPES = [  # (B, H, L, S, E, Ev)
    (2, 3, 17, 17, 8, 8), (1, 2, 1, 31, 64, 32), (2, 1, 65, 33, 63, 80), (1, 1, 300, 300, 128, 128),
    (1, 2, 7, 5, 256, 256)]


@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float64])
@pytest.mark.parametrize("B,H,L,S,E,Ev", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa(dtype, B, H, L, S, E, Ev, causal):
    qc, qg = pair((B, H, L, E), dtype, 1)
    kc, kg = pair((B, H, S, E), dtype, 2)
    vc, vg = pair((B, H, S, Ev), dtype, 3)
    yc = F.scaled_dot_product_attention(qc, kc, vc, is_causal=causal)
    yg = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
    close(yg, yc, dtype)
    w = np.random.default_rng(4).standard_normal((B, H, L, Ev))
    (yc * lepton.tensor(w, dtype=dtype)).sum().backward()
    (yg * lepton.tensor(w, dtype=dtype, device="cuda")).sum().backward()
    for g, c in ((qg, qc), (kg, kc), (vg, vc)):
        close(g.grad, c.grad, dtype)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_masks_broadcast(kind):
    dtype = lepton.float32
    qc, qg = pair((2, 2, 9, 16), dtype, 5)
    kc, kg = pair((2, 2, 11, 16), dtype, 6)
    vc, vg = pair((2, 2, 11, 16), dtype, 7)
    rng = np.random.default_rng(8)
    m = rng.random((2, 1, 9, 11)) > 0.3 if kind == "bool" else rng.standard_normal((2, 1, 9, 11))
    m[0, 0, 3] = False if kind == "bool" else m[0, 0, 3]  # a fully masked row for the bool case
    mc, mg = lepton.tensor(m), lepton.tensor(m, device="cuda")
    if kind == "float":
        mc, mg = mc.float().requires_grad_(True), mg.float().requires_grad_(True)
    yc = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mc)
    yg = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=mg)
    close(yg, yc, dtype)
    yc.sum().backward()
    yg.sum().backward()
    for g, c in ((qg, qc), (kg, kc), (vg, vc)):
        close(g.grad, c.grad, dtype)
    if kind == "float":
        close(mg.grad, mc.grad, dtype)


def test_sdpa_dropout_matches_cpu():
    dtype = lepton.float32
    qc, qg = pair((2, 2, 33, 16), dtype, 9)
    kc, kg = pair((2, 2, 33, 16), dtype, 10)
    vc, vg = pair((2, 2, 33, 16), dtype, 11)
    lepton.manual_seed(5)
    yc = F.scaled_dot_product_attention(qc, kc, vc, dropout_p=0.3)
    lepton.manual_seed(5)
    yg = F.scaled_dot_product_attention(qg, kg, vg, dropout_p=0.3)
    close(yg, yc, dtype)
    yc.sum().backward()
    yg.sum().backward()
    for g, c in ((qg, qc), (kg, kc), (vg, vc)):
        close(g.grad, c.grad, dtype)
