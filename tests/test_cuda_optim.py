"""The fused optimizer steps and gradient-norm clipping on CUDA against the same steps on the CPU.

40 parameters (more than one launch's pack of 32), some empty, over 8 steps with fresh
gradients each step. CUDA contracts multiply-adds into FMAs where the CPU kernels round each
step like torch, so float32 agrees to 2e-6 relative (float64 to 1e-12).
"""

import math

import numpy as np
import pytest

import lepton

pytestmark = pytest.mark.cuda

SIZES = [0, 1, 3, 17, 256, 1000, 4097] * 5 + [1, 2, 70000, 33, 5]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2, maximize=True, amsgrad=True)),
]


def params_on(device, dtype, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    return [lepton.tensor(rng.standard_normal(n), dtype=dtype, device=device).requires_grad_(True) for n in SIZES]


@pytest.mark.parametrize("dtype,rtol", [(lepton.float32, 2e-6), (lepton.float64, 1e-12)])
@pytest.mark.parametrize("name,options", CONFIGS)
def test_optimizer_matches_cpu(name, options, dtype, rtol):
    cpu, gpu = params_on("cpu", dtype), params_on("cuda", dtype)
    opt_cpu = getattr(lepton.optim, name)(cpu, **options)
    opt_gpu = getattr(lepton.optim, name)(gpu, **options)
    rng = np.random.default_rng(1)
    for _ in range(8):
        for pc, pg in zip(cpu, gpu):
            g = rng.standard_normal(pc.shape)
            pc.grad = lepton.tensor(g, dtype=dtype)
            pg.grad = lepton.tensor(g, dtype=dtype, device="cuda")
        opt_cpu.step()
        opt_gpu.step()
    for pc, pg in zip(cpu, gpu):
        assert pg.device.type == "cuda"
        np.testing.assert_allclose(pg.detach().cpu().numpy(), pc.detach().numpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_matches_cpu(norm_type):
    cpu, gpu = params_on("cpu", lepton.float32), params_on("cuda", lepton.float32)
    rng = np.random.default_rng(2)
    for pc, pg in zip(cpu, gpu):
        g = rng.standard_normal(pc.shape)
        pc.grad = lepton.tensor(g, dtype=lepton.float32)
        pg.grad = lepton.tensor(g, dtype=lepton.float32, device="cuda")
    total_cpu = lepton.nn.utils.clip_grad_norm_(cpu, 1.0, norm_type)
    total_gpu = lepton.nn.utils.clip_grad_norm_(gpu, 1.0, norm_type)
    assert float(total_gpu) == pytest.approx(float(total_cpu), rel=1e-6)
    for pc, pg in zip(cpu, gpu):
        np.testing.assert_allclose(pg.grad.cpu().numpy(), pc.grad.numpy(), rtol=1e-6, atol=1e-7)
