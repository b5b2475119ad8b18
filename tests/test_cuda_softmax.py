"""Fused softmax, log_softmax and cross-entropy on CUDA against the same ops on the CPU.

Both devices run the same formulas; exp/log differ in the last ulps, so float32 agrees to
1e-5 relative and float64 to 1e-12.
"""

import numpy as np
import pytest

import lepton
import lepton.nn.functional as F

pytestmark = pytest.mark.cuda

SHAPES = [(1, 1), (3, 7), (64, 10), (5, 33), (17, 1000), (2, 50257), (0, 5)]
TOL = {lepton.float32: 1e-5, lepton.float64: 1e-12}


def pair(shape, dtype, seed=0, requires_grad=True):
    x = np.random.default_rng(seed).standard_normal(shape) * 4
    cpu = lepton.tensor(x, dtype=dtype).requires_grad_(requires_grad)
    gpu = lepton.tensor(x, dtype=dtype, device="cuda").requires_grad_(requires_grad)
    return cpu, gpu


def close(gpu, cpu, dtype):
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_forward_backward(fn, shape, dtype):
    cpu, gpu = pair(shape, dtype)
    yc, yg = fn(cpu, dim=-1), fn(gpu, dim=-1)
    close(yg, yc, dtype)
    w = np.random.default_rng(1).standard_normal(shape)
    (yc * lepton.tensor(w, dtype=dtype)).sum().backward()
    (yg * lepton.tensor(w, dtype=dtype, device="cuda")).sum().backward()
    close(gpu.grad, cpu.grad, dtype)


@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float64])
@pytest.mark.parametrize("shape", [(1, 1), (64, 10), (37, 1000), (4, 50257)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(shape, dtype, smoothing):
    cpu, gpu = pair(shape, dtype)
    target = np.random.default_rng(2).integers(0, shape[1], shape[0])
    target[::3] = -100  # ignored rows
    tc, tg = lepton.tensor(target), lepton.tensor(target, device="cuda")
    lc = F.cross_entropy(cpu, tc, label_smoothing=smoothing)
    lg = F.cross_entropy(gpu, tg, label_smoothing=smoothing)
    close(lg, lc, dtype)
    lc.backward()
    lg.backward()
    close(gpu.grad, cpu.grad, dtype)


def test_cross_entropy_bad_target_names_it():
    _, gpu = pair((4, 5), lepton.float32)
    with pytest.raises(IndexError, match="target 7 is out of bounds for 5 classes"):
        F.cross_entropy(gpu, lepton.tensor([0, 1, 7, 2], device="cuda"))
