"""The fused optimizer steps and gradient-norm clipping on CUDA against the same steps on the CPU.

40 parameters, some empty and one spanning several of the launch's 16384-element chunks, over 8
steps with fresh gradients each step. CUDA contracts multiply-adds into FMAs where the CPU
kernels round each step like torch, so float32 agrees to 2e-6 relative (float64 to 1e-12);
16-bit params with float32 master weights: the masters to 2e-6, each param exactly its master
rounded to nearest even.
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


@pytest.mark.parametrize("dtype", [lepton.bfloat16, lepton.float16])
@pytest.mark.parametrize("name,options", CONFIGS)
def test_master_weights_match_cpu(name, options, dtype):
    cpu = [p.detach().to(dtype=dtype).requires_grad_(True) for p in params_on("cpu", lepton.float32)]
    gpu = [p.detach().to("cuda").requires_grad_(True) for p in cpu]
    opt_cpu = getattr(lepton.optim, name)(cpu, **options)
    opt_gpu = getattr(lepton.optim, name)(gpu, **options)
    rng = np.random.default_rng(1)
    for _ in range(8):
        for pc, pg in zip(cpu, gpu):
            g = lepton.tensor(rng.standard_normal(pc.shape), dtype=lepton.float32).to(dtype=dtype)
            pc.grad, pg.grad = g, g.to("cuda")
        opt_cpu.step()
        opt_gpu.step()
    for pc, pg in zip(cpu, gpu):
        mc, mg = opt_cpu.state[pc]["master_weight"], opt_gpu.state[pg]["master_weight"]
        assert mg.device.type == "cuda" and mg.dtype == lepton.float32
        np.testing.assert_allclose(mg.cpu().numpy(), mc.numpy(), rtol=2e-6, atol=2e-6)
        np.testing.assert_array_equal(pg.detach().cpu().float().numpy(), mg.cpu().to(dtype=dtype).float().numpy())


def test_master_weights_state_dict_round_trip():
    params = [p.detach().to(dtype=lepton.bfloat16).requires_grad_(True) for p in params_on("cuda", lepton.float32)]
    opt = lepton.optim.AdamW(params, lr=1e-2)
    for p in params:
        p.grad = lepton.ones_like(p)
    opt.step()
    fresh = [p.detach().clone().requires_grad_(True) for p in params]
    other = lepton.optim.AdamW(fresh, lr=1.0)
    other.load_state_dict(opt.state_dict())
    for a, b in zip(params, fresh):
        a.grad, b.grad = lepton.ones_like(a), lepton.ones_like(b)
    opt.step()
    other.step()
    for a, b in zip(params, fresh):
        assert other.state[b]["master_weight"].device.type == "cuda"
        np.testing.assert_array_equal(a.detach().cpu().float().numpy(), b.detach().cpu().float().numpy())


@pytest.mark.parametrize("dtype", [lepton.bfloat16, lepton.float16])
def test_clip_grad_norm_low_precision_matches_cpu(dtype):
    cpu = [p.detach().to(dtype=dtype).requires_grad_(True) for p in params_on("cpu", lepton.float32)]
    gpu = [p.detach().to("cuda").requires_grad_(True) for p in cpu]
    for pc, pg in zip(cpu, gpu):
        pc.grad = pc.detach().clone()
        pg.grad = pc.grad.to("cuda")
    total_cpu = lepton.nn.utils.clip_grad_norm_(cpu, 1.0)
    total_gpu = lepton.nn.utils.clip_grad_norm_(gpu, 1.0)
    assert total_gpu.device.type == "cuda" and total_gpu.dtype == dtype
    assert float(total_gpu) == float(total_cpu)
    for pc, pg in zip(cpu, gpu):
        np.testing.assert_array_equal(pg.grad.cpu().float().numpy(), pc.grad.float().numpy())
