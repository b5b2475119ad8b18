"""lepton.amp.GradScaler and its fused ops against torch's (CPU): the unscale + inf/NaN check
(_amp_foreach_non_finite_check_and_unscale_) bit for bit per dtype, the scale update rule, scale
growth/backoff sequences and skipped steps identical to torch.amp.GradScaler fed the same
gradients, an autocast(float16) training loop whose overflowing first steps are skipped as in
torch, state_dict round trips, the disabled scaler, and misuse errors. A CUDA test (marked
`cuda`) runs the same op on the GPU against the CPU result."""
import math

import numpy as np
import pytest

import lepton
from lepton import _C
import lepton.nn as nn
import lepton.nn.functional as F

torch = pytest.importorskip("torch")

DTYPES = ["float32", "float64", "bfloat16", "float16"]


def _np(t):
    return t.detach().float().cpu().numpy() if isinstance(t, lepton.Tensor) else t.detach().float().numpy()


def _arrays(sizes, seed, specials=True):
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        a = (rng.standard_normal(n) * 1000).astype(np.float32)
        if specials and n and i % 3 == 1:
            a[rng.integers(0, n)] = [np.inf, -np.inf, np.nan][i // 3 % 3]
        out.append(a)
    return out


# ---- the ops ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("specials", [False, True])
@pytest.mark.parametrize("inv", [1.0, 2.0 ** -16, 1 / 3])
def test_unscale_matches_torch_bitwise(dtype, specials, inv):
    sizes = [1, 1000, 0, 17, 70000, 5] + [3] * 70  # more tensors than one CUDA pack, an empty one
    arrs = _arrays(sizes, seed=len(dtype), specials=specials)
    ld, td = getattr(lepton, dtype), getattr(torch, dtype)
    ls = [lepton.tensor(a).to(ld) for a in arrs]
    ts = [torch.tensor(a).to(td) for a in arrs]
    lf, tf = lepton.zeros(1), torch.zeros(1)
    linv, tinv = lepton.full([1], inv), torch.full((1,), inv)
    _C._amp_foreach_non_finite_check_and_unscale_(ls, lf, linv)
    torch._amp_foreach_non_finite_check_and_unscale_(ts, tf, tinv)
    assert lf.item() == tf.item() == (1.0 if specials else 0.0)
    for l, t in zip(ls, ts):
        assert l.dtype == ld
        np.testing.assert_array_equal(_np(l), _np(t))


def test_unscale_keeps_found_inf_set_and_handles_views():
    x = lepton.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    view = x.t()  # non-contiguous: unscaled through a copy, written back
    found = lepton.ones(1)
    _C._amp_foreach_non_finite_check_and_unscale_([view], found, lepton.full([1], 0.5))
    assert found.item() == 1.0  # never reset by the op
    np.testing.assert_array_equal(_np(x), np.arange(12).reshape(3, 4) * 0.5)


def test_unscale_bad_arguments():
    x = lepton.ones(3)
    with pytest.raises(TypeError, match="found_inf must be a one-element float32"):
        _C._amp_foreach_non_finite_check_and_unscale_([x], lepton.zeros(1, dtype=lepton.float64), lepton.ones(1))
    with pytest.raises(TypeError, match="inv_scale must be a one-element float32.*shape \\[2\\]"):
        _C._amp_foreach_non_finite_check_and_unscale_([x], lepton.zeros(1), lepton.ones(2))
    with pytest.raises(TypeError, match="tensor 1 must be floating point, got int64"):
        _C._amp_foreach_non_finite_check_and_unscale_([x, lepton.arange(3)], lepton.zeros(1), lepton.ones(1))
    with pytest.raises(ValueError, match="growth_interval must be positive"):
        _C._amp_update_scale_(lepton.ones(1), lepton.zeros(1, dtype=lepton.int32), lepton.zeros(1), 2.0, 0.5, 0)
    with pytest.raises(TypeError, match="growth_tracker must be a one-element int32"):
        _C._amp_update_scale_(lepton.ones(1), lepton.zeros(1), lepton.zeros(1), 2.0, 0.5, 2)


def test_update_scale_sequence_matches_torch():
    found_seq = [0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    ls, lt = lepton.full([1], 3.0e38), lepton.zeros(1, dtype=lepton.int32)  # growth past float max is refused
    ts, tt = torch.full((1,), 3.0e38), torch.zeros(1, dtype=torch.int32)
    for f in found_seq:
        _C._amp_update_scale_(ls, lt, lepton.full([1], float(f)), 2.0, 0.25, 3)
        torch._amp_update_scale_(ts, tt, torch.full((1,), float(f)), 2.0, 0.25, 3)
        assert ls.item() == ts.item() and lt.item() == tt.item(), (ls.item(), ts.item(), lt.item(), tt.item())


# ---- GradScaler ---------------------------------------------------------------------------------

def _params(seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.standard_normal(s).astype(np.float32) for s in [(4, 3), (4,), (2, 4)]]
    return ([lepton.tensor(a, requires_grad=True) for a in arrs], [torch.tensor(a, requires_grad=True) for a in arrs])


@pytest.mark.parametrize("unscale_first", [False, True])
def test_scale_sequence_and_skipped_steps_match_torch(unscale_first):
    lp, tp = _params()
    lopt, topt = lepton.optim.SGD(lp, lr=0.1), torch.optim.SGD(tp, lr=0.1)
    kw = dict(init_scale=2.0 ** 10, growth_factor=2.0, backoff_factor=0.5, growth_interval=2)
    ls, ts = lepton.amp.GradScaler("cpu", **kw), torch.amp.GradScaler("cpu", **kw)
    rng = np.random.default_rng(5)
    bad_steps = {2, 5, 6}
    for step in range(10):
        loss, tloss = ls.scale(lepton.tensor(2.0)), ts.scale(torch.tensor(2.0))
        assert loss.item() == tloss.item() and tuple(loss.shape) == tuple(tloss.shape)
        for i, (p, q) in enumerate(zip(lp, tp)):
            g = (rng.standard_normal(tuple(p.shape)) * ls.get_scale()).astype(np.float32)
            if step in bad_steps and i == 1:
                g.flat[0] = np.nan if step == 5 else np.inf
            p.grad, q.grad = lepton.tensor(g), torch.tensor(g)
        if unscale_first:
            ls.unscale_(lopt)
            ts.unscale_(topt)
            for p, q in zip(lp, tp):
                np.testing.assert_array_equal(_np(p.grad), _np(q.grad))
        before = [_np(p).copy() for p in lp]
        ls.step(lopt)
        ts.step(topt)
        for p, q, b in zip(lp, tp, before):
            np.testing.assert_allclose(_np(p), _np(q), rtol=1e-6, atol=1e-7)
            assert (step in bad_steps) == np.array_equal(_np(p), b)
        ls.update()
        ts.update()
        assert ls.get_scale() == ts.get_scale(), step
        assert ls._get_growth_tracker() == ts._get_growth_tracker()


def test_state_dict_round_trip_matches_torch():
    ls, ts = lepton.amp.GradScaler("cpu", init_scale=128.0, growth_interval=7), torch.amp.GradScaler(
        "cpu", init_scale=128.0, growth_interval=7)
    assert ls.state_dict() == ts.state_dict()
    lp, _ = _params()
    opt = lepton.optim.SGD(lp, lr=0.1)
    ls.scale(lepton.tensor(1.0))
    for p in lp:
        p.grad = lepton.ones_like(p)
    ls.step(opt)
    ls.update()
    sd = ls.state_dict()
    assert sd["_growth_tracker"] == 1 and sd["scale"] == 128.0
    other = lepton.amp.GradScaler("cpu")
    other.load_state_dict(sd)
    assert other.state_dict() == sd
    ts.load_state_dict(sd)
    assert ts.state_dict() == sd
    with pytest.raises(RuntimeError, match="empty"):
        other.load_state_dict({})


def test_disabled_scaler_is_a_pass_through():
    s = lepton.amp.GradScaler("cpu", enabled=False)
    loss = lepton.tensor(3.0)
    assert s.scale(loss) is loss and s.get_scale() == 1.0 and s.state_dict() == {} and not s.is_enabled()
    lp, _ = _params()
    opt = lepton.optim.SGD(lp, lr=1.0)
    for p in lp:
        p.grad = lepton.ones_like(p)
    before = _np(lp[0]).copy()
    s.unscale_(opt)
    s.step(opt)
    s.update()
    np.testing.assert_allclose(_np(lp[0]), before - 1)


@pytest.mark.skipif(lepton.cuda.is_available(), reason="checks the no-CUDA fallback")
def test_cuda_scaler_without_cuda_disables_itself():
    with pytest.warns(UserWarning, match="CUDA is not available"):
        s = lepton.amp.GradScaler()
    assert not s.is_enabled()


def test_misuse_errors():
    lp, _ = _params()
    opt = lepton.optim.SGD(lp, lr=0.1)
    s = lepton.amp.GradScaler("cpu")
    with pytest.raises(RuntimeError, match="scale\\(\\) first"):
        s.unscale_(opt)
    s.scale(lepton.tensor(1.0))
    for p in lp:
        p.grad = lepton.ones_like(p)
    s.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        s.unscale_(opt)
    s.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        s.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        s.unscale_(opt)
    s.update()
    with pytest.raises(RuntimeError, match="No inf checks"):
        s.update()
    half = lepton.ones(3, dtype=lepton.float16, requires_grad=True)
    half.grad = lepton.ones(3, dtype=lepton.float16)
    with pytest.raises(ValueError, match="FP16 gradients"):
        s.unscale_(lepton.optim.SGD([half], lr=0.1))
    with pytest.raises(ValueError, match="growth_factor"):
        lepton.amp.GradScaler("cpu", growth_factor=1.0)
    with pytest.raises(ValueError, match="outputs must be a Tensor"):
        s.scale(3.0)
    with pytest.raises(RuntimeError, match="[Cc]losure"):
        s.step(opt, closure=lambda: 0)


def test_scale_of_nested_outputs():
    s = lepton.amp.GradScaler("cpu", init_scale=4.0)
    a, (b, c) = s.scale([lepton.tensor(1.0), (lepton.tensor(2.0), lepton.tensor(3.0))])
    assert [a.item(), b.item(), c.item()] == [4.0, 8.0, 12.0]


def test_float16_autocast_training_matches_torch():
    """init_scale 2^40 overflows float16 gradients: torch and Lepton skip the same steps, back the
    scale off to the same values, and then train the same parameters."""
    lepton.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    tmodel = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    for p, q in zip(model.parameters(), tmodel.parameters()):
        with torch.no_grad():
            q.copy_(torch.tensor(_np(p)))
    opt, topt = lepton.optim.SGD(model.parameters(), lr=0.05), torch.optim.SGD(tmodel.parameters(), lr=0.05)
    ls = lepton.amp.GradScaler("cpu", init_scale=2.0 ** 40, growth_interval=3)
    ts = torch.amp.GradScaler("cpu", init_scale=2.0 ** 40, growth_interval=3)
    rng = np.random.default_rng(0)
    scales = []
    for _ in range(30):
        x = rng.standard_normal((12, 8)).astype(np.float32)
        y = rng.integers(0, 3, 12)
        with lepton.autocast("cpu", dtype=lepton.float16):
            loss = F.cross_entropy(model(lepton.tensor(x)), lepton.tensor(y))
        with torch.autocast("cpu", dtype=torch.float16):
            tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        assert loss.dtype == lepton.float32
        ls.scale(loss).backward()
        ts.scale(tloss).backward()
        ls.step(opt)
        ts.step(topt)
        ls.update()
        ts.update()
        opt.zero_grad()
        topt.zero_grad()
        scales.append(ls.get_scale())
        assert ls.get_scale() == ts.get_scale()
    assert scales[0] == 2.0 ** 39 and min(scales) < 2.0 ** 30  # backed off several times
    for p, q in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(_np(p), _np(q), rtol=2e-2, atol=2e-3)


@pytest.mark.cuda
@pytest.mark.skipif(not lepton.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_unscale_and_update_match_cpu(dtype):
    arrs = _arrays([1, 1000, 0, 70000] + [3] * 100, seed=1)
    d = getattr(lepton, dtype)
    cpu = [lepton.tensor(a).to(d) for a in arrs]
    gpu = [t.to("cuda") for t in cpu]
    fc, fg = lepton.zeros(1), lepton.zeros(1, device="cuda")
    _C._amp_foreach_non_finite_check_and_unscale_(cpu, fc, lepton.full([1], 1 / 3))
    _C._amp_foreach_non_finite_check_and_unscale_(gpu, fg, lepton.full([1], 1 / 3).to("cuda"))
    assert fc.item() == fg.item() == 1.0
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(_np(a), _np(b))
    s, t = lepton.full([1], 1024.0, device="cuda"), lepton.zeros(1, dtype=lepton.int32, device="cuda")
    _C._amp_update_scale_(s, t, fg, 2.0, 0.5, 2)
    assert s.item() == 512.0 and t.item() == 0
