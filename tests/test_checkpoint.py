"""Activation checkpointing (lepton.utils.checkpoint, torch.utils.checkpoint): the same values and
gradients as running the function plainly (dropout masks replayed), less memory held."""

import numpy as np
import pytest

import lepton
import lepton.nn as nn
from lepton.models import CharGPT
from lepton.utils.checkpoint import checkpoint, checkpoint_sequential


def block(dropout=0.3):
    lepton.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(dropout), nn.Linear(16, 8), nn.LayerNorm(8))


def run(model, x, wrap):
    model.zero_grad()
    if x.requires_grad:
        x.grad = None
    lepton.manual_seed(5)
    y = wrap(model, x)
    (y * y).sum().backward()
    return [y.detach().numpy()] + [p.grad.numpy().copy() for p in model.parameters()] + \
        ([x.grad.numpy().copy()] if x.requires_grad else [])


@pytest.mark.parametrize("use_reentrant", [False, True])
@pytest.mark.parametrize("input_grad", [False, True])
def test_values_and_gradients_equal_the_plain_run_with_dropout(use_reentrant, input_grad):
    model, x = block(), lepton.randn(4, 8, requires_grad=input_grad)
    plain = run(model, x, lambda m, v: m(v))
    ckpt = run(model, x, lambda m, v: checkpoint(m, v, use_reentrant=use_reentrant))
    assert len(plain) == len(ckpt)
    for a, b in zip(plain, ckpt):
        np.testing.assert_array_equal(a, b)


def test_without_rng_replay_the_dropout_masks_differ():
    model, x = block(0.5), lepton.randn(4, 8)
    plain = run(model, x, lambda m, v: m(v))
    ckpt = run(model, x, lambda m, v: checkpoint(m, v, use_reentrant=False, preserve_rng_state=False))
    np.testing.assert_array_equal(plain[0], ckpt[0])  # the forward pass itself is the same draw
    assert not np.array_equal(plain[1], ckpt[1])  # the recomputation drew new masks


def test_tuple_outputs_keyword_arguments_and_unused_outputs():
    lin = nn.Linear(3, 3)

    def fn(a, b, scale=1.0):
        h = lin(a) * scale
        return h + b, h.sum(), "tag"

    a, b = lepton.randn(2, 3, requires_grad=True), lepton.randn(2, 3, requires_grad=True)
    out, total, tag = checkpoint(fn, a, b, scale=2.0, use_reentrant=False)
    assert tag == "tag"
    out.sum().backward()  # `total` gets no gradient
    ga, gb, gw = a.grad.numpy().copy(), b.grad.numpy().copy(), lin.weight.grad.numpy().copy()
    a.grad = b.grad = lin.weight.grad = None
    fn(a, b, scale=2.0)[0].sum().backward()
    np.testing.assert_allclose(ga, a.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(gw, lin.weight.grad.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(gb, b.grad.numpy())
    with pytest.raises(ValueError, match="keyword arguments are only supported with use_reentrant=False"):
        checkpoint(fn, a, b, scale=2.0, use_reentrant=True)


def test_checkpoint_sequential_equals_the_plain_sequential():
    lepton.manual_seed(1)
    seq = nn.Sequential(*[nn.Sequential(nn.Linear(6, 6), nn.Tanh()) for _ in range(5)])
    x = lepton.randn(3, 6)
    plain = run(seq, x, lambda m, v: m(v))
    for segments in (1, 2, 5):
        ckpt = run(seq, x, lambda m, v: checkpoint_sequential(m, segments, v, use_reentrant=False))
        for a, b in zip(plain, ckpt):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="segments must be an integer from 1 to 5"):
        checkpoint_sequential(seq, 6, x)


def test_recomputation_runs_under_the_first_runs_autocast():
    lin = nn.Linear(8, 8)
    x = lepton.randn(4, 8)
    grads = []
    for wrap in (lambda v: lin(v), lambda v: checkpoint(lin, v, use_reentrant=False)):
        lin.zero_grad()
        with lepton.autocast("cpu", dtype=lepton.bfloat16):
            y = wrap(x)
        assert y.dtype == lepton.bfloat16
        y.float().sum().backward()
        grads.append(lin.weight.grad.numpy().copy())
    np.testing.assert_array_equal(*grads)


def test_under_no_grad_the_function_just_runs():
    lin = nn.Linear(2, 2)
    with lepton.no_grad():
        y = checkpoint(lin, lepton.ones(1, 2), use_reentrant=False)
    assert y.grad_fn is None


def test_a_nondeterministic_shape_is_reported():
    calls = []

    def grows(v):
        calls.append(1)
        return v.repeat(len(calls)) * 2

    x = lepton.ones(2, requires_grad=True)
    y = checkpoint(grows, x, use_reentrant=False)
    with pytest.raises(RuntimeError, match=r"recomputing the function gave outputs of shapes \[\(4,\)\]"):
        y.sum().backward()


def test_gpt_with_checkpointed_blocks_holds_less_and_learns_the_same():
    peaks, grads = [], []
    idx = lepton.randint(0, 50, (4, 64))
    for ck in (False, True):
        lepton.manual_seed(0)
        model = CharGPT(50, n_layer=4, n_head=4, n_embd=64, block_size=64, dropout=0.1, checkpoint_activations=ck)
        lepton.manual_seed(1)
        lepton.cpu.reset_peak_memory_stats()
        base = lepton.cpu.memory_allocated()
        logits = model(idx)
        loss = nn.functional.cross_entropy(logits.reshape([-1, 50]), idx.reshape([-1]))
        loss.backward()
        peaks.append(lepton.cpu.max_memory_allocated() - base)
        grads.append([p.grad.numpy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert peaks[1] < 0.6 * peaks[0], peaks


def test_cpu_memory_statistics_follow_tensors():
    lepton.cpu.reset_peak_memory_stats()
    before = lepton.cpu.memory_allocated()
    x = lepton.empty(1 << 20)  # 4 MiB
    assert lepton.cpu.memory_allocated() - before >= 4 << 20
    del x
    assert lepton.cpu.memory_allocated() == before
    assert lepton.cpu.max_memory_allocated() - before >= 4 << 20
    lepton.cpu.reset_peak_memory_stats()
    assert lepton.cpu.max_memory_allocated() == lepton.cpu.memory_allocated()
