"""lepton.optim against torch.optim: parameter trajectories over 20 steps from the same weights
and gradients (float64 tight, float32 close), option combinations, param groups, state_dict
round trips, the fused kernels against their serial reference, bad input; clip_grad_*."""

import copy
import itertools
import math

import numpy as np
import pytest

import lepton
from lepton import _C

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (7,), (2, 3, 5), (1,)]
TOL = {"float64": dict(rtol=1e-11, atol=1e-13), "float32": dict(rtol=2e-5, atol=2e-6)}


def make_pair(dtype, shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(dtype) for s in shapes]
    lp = [lepton.nn.Parameter(lepton.tensor(w)) for w in weights]
    tp = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    return lp, tp


def set_grads(lp, tp, rng, skip=()):
    for i, (a, b) in enumerate(zip(lp, tp)):
        if i in skip:
            a.grad, b.grad = None, None
            continue
        g = rng.standard_normal(tuple(a.shape)).astype(a.dtype.name)
        a.grad, b.grad = lepton.tensor(g), torch.tensor(g)


def assert_params_close(lp, tp, dtype, step):
    for i, (a, b) in enumerate(zip(lp, tp)):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **TOL[dtype],
                                   err_msg=f"param {i} after step {step}")


def run_trajectory(lopt, topt, lp, tp, dtype, steps=20, seed=1, skip=lambda step: ()):
    rng = np.random.default_rng(seed)
    for step in range(steps):
        set_grads(lp, tp, rng, skip(step))
        lopt.step()
        topt.step()
        assert_params_close(lp, tp, dtype, step)


def compare(name, dtype="float64", groups=None, **options):
    lp, tp = make_pair(dtype)
    lopt = getattr(lepton.optim, name)(groups(lp) if groups else lp, **options)
    topt = getattr(torch.optim, name)(groups(tp) if groups else tp, **options)
    run_trajectory(lopt, topt, lp, tp, dtype)
    return lopt, topt


def combos(**choices):
    keys = list(choices)
    return [dict(zip(keys, values)) for values in itertools.product(*choices.values())]


SGD_CASES = [c for c in combos(momentum=[0.0, 0.9], dampening=[0.0, 0.3], nesterov=[False, True],
                               weight_decay=[0.0, 0.05], maximize=[False, True])
             if not (c["nesterov"] and (c["momentum"] == 0 or c["dampening"] != 0))
             and not (c["momentum"] == 0 and c["dampening"] != 0)]
ADAM_CASES = combos(betas=[(0.9, 0.999), (0.3, 0.9)], weight_decay=[0.0, 0.1], amsgrad=[False, True],
                    maximize=[False, True])
RMSPROP_CASES = combos(momentum=[0.0, 0.8], centered=[False, True], weight_decay=[0.0, 0.1], maximize=[False, True],
                       alpha=[0.99, 0.3])
ADAGRAD_CASES = combos(lr_decay=[0.0, 0.05], weight_decay=[0.0, 0.1], initial_accumulator_value=[0.0, 0.4],
                       maximize=[False, True])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", SGD_CASES, ids=str)
def test_sgd_matches_torch(options, dtype):
    compare("SGD", dtype, lr=0.05, **options)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", ADAM_CASES, ids=str)
def test_adam_matches_torch(name, options, dtype):
    compare(name, dtype, lr=0.02, **options)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", RMSPROP_CASES, ids=str)
def test_rmsprop_matches_torch(options, dtype):
    compare("RMSprop", dtype, lr=0.01, **options)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", ADAGRAD_CASES, ids=str)
def test_adagrad_matches_torch(options, dtype):
    compare("Adagrad", dtype, lr=0.1, **options)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_defaults_match_torch(name):
    lopt, topt = compare(name, lr=0.01)
    saved = topt.state_dict()["param_groups"][0]
    for key, value in lopt.param_groups[0].items():
        if key not in ("params", "master_weights"):  # master_weights is Lepton's own option
            assert value == saved[key], key


@pytest.mark.parametrize("name,extra", [("SGD", dict(momentum=0.9)), ("Adam", {}), ("AdamW", dict(amsgrad=True)),
                                        ("RMSprop", dict(centered=True, momentum=0.5)), ("Adagrad", {})])
def test_param_groups_with_their_own_options(name, extra):
    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.003, "weight_decay": 0.2}]

    lopt, _ = compare(name, groups=groups, lr=0.02, **extra)
    assert [g["lr"] for g in lopt.param_groups] == [0.02, 0.003]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_params_without_grad_are_skipped_and_steps_differ(name):
    # param 1 has no grad for the first 5 steps and param 3 every third step: their step
    # counts (Adam's bias corrections) and first momentum steps differ within one fused call
    lp, tp = make_pair("float64")
    options = dict(lr=0.05, momentum=0.9) if name == "SGD" else dict(lr=0.05)
    lopt, topt = getattr(lepton.optim, name)(lp, **options), getattr(torch.optim, name)(tp, **options)
    run_trajectory(lopt, topt, lp, tp, "float64",
                   skip=lambda step: ({1} if step < 5 else set()) | ({3} if step % 3 == 0 else set()))


def clone_state(sd):
    return {"state": {i: {k: v.clone() if isinstance(v, lepton.Tensor) else v for k, v in s.items()}
                      for i, s in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                                          ("Adam", dict(lr=0.02, amsgrad=True)), ("AdamW", dict(lr=0.02)),
                                          ("RMSprop", dict(lr=0.01, centered=True, momentum=0.3)),
                                          ("Adagrad", dict(lr=0.1, lr_decay=0.01))])
def test_state_dict_round_trip_continues_identically(name, options):
    lp, tp = make_pair("float64")
    cls = getattr(lepton.optim, name)
    lopt, topt = cls(lp, **options), getattr(torch.optim, name)(tp, **options)
    run_trajectory(lopt, topt, lp, tp, "float64", steps=10)
    saved = clone_state(lopt.state_dict())
    tsaved = topt.state_dict()
    assert saved["state"].keys() == tsaved["state"].keys()
    for i in saved["state"]:
        assert set(saved["state"][i]) == set(tsaved["state"][i])
        if "step" in tsaved["state"][i]:
            assert saved["state"][i]["step"] == int(tsaved["state"][i]["step"])
    assert [g["params"] for g in saved["param_groups"]] == [g["params"] for g in tsaved["param_groups"]]

    resumed, resumed_params = resume_and_continue(cls, saved, lopt, lp, tp, set_grads, steps=10)
    assert resumed.param_groups[0]["lr"] == options["lr"]  # options come back from the state dict
    for a, b in zip(lp, resumed_params):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def resume_and_continue(cls, saved, opt, params, torch_params, set_grads_fn, steps):
    """A fresh optimizer on copies of params loads `saved`; both then take the same steps."""
    resumed_params = [lepton.nn.Parameter(p.detach().clone()) for p in params]
    resumed = cls(resumed_params, lr=123.0)
    resumed.load_state_dict(saved)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(steps):
        set_grads_fn(params, torch_params, rng_a)
        set_grads_fn(resumed_params, torch_params, rng_b)
        opt.step()
        resumed.step()
    return resumed, resumed_params


def test_load_state_dict_copies_and_casts():
    lp, _ = make_pair("float32")
    opt = lepton.optim.Adam(lp)
    for p in lp:
        p.grad = lepton.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    sd64 = {"state": {i: {k: v.double() if isinstance(v, lepton.Tensor) else v for k, v in s.items()}
                      for i, s in sd["state"].items()}, "param_groups": sd["param_groups"]}
    other = lepton.optim.Adam(lp)
    other.load_state_dict(sd64)
    state = other.state[lp[0]]
    assert state["exp_avg"].dtype == lepton.float32
    assert state["exp_avg"].data_ptr() != opt.state[lp[0]]["exp_avg"].data_ptr()
    with pytest.raises(ValueError, match="number of parameter groups"):
        other.load_state_dict({"state": {}, "param_groups": []})


def test_zero_grad_and_closure():
    lp, _ = make_pair("float32")
    opt = lepton.optim.SGD(lp, lr=0.1)
    for p in lp:
        p.grad = lepton.ones_like(p)
    opt.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in lp)
    opt.zero_grad()
    assert all(p.grad is None for p in lp)

    w = lepton.nn.Parameter(lepton.tensor([2.0]))
    opt = lepton.optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with lepton.no_grad():  # the closure still records: step() enables grad for it
        loss = opt.step(closure)
    assert float(loss) == 4.0 and float(w) == 1.0


def test_trains_a_model():
    lepton.manual_seed(0)
    model = lepton.nn.Sequential(lepton.nn.Linear(4, 16), lepton.nn.ReLU(), lepton.nn.Linear(16, 1))
    opt = lepton.optim.AdamW(model.parameters(), lr=0.02)
    x = lepton.randn(64, 4)
    y = (x * lepton.tensor([1.0, -2.0, 0.5, 3.0])).sum(1, keepdim=True)
    for _ in range(300):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert float(loss) < 0.05


def test_l1_recipe_adds_sign_times_l1():
    w = lepton.nn.Parameter(lepton.tensor([1.5, -2.0, 0.5]))
    loss = (w * 0).sum() + 0.1 * sum(p.abs().sum() for p in [w])
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.1, -0.1, 0.1], rtol=1e-6)


@pytest.mark.parametrize("dtype", [lepton.float16, lepton.bfloat16])
def test_half_params_without_master_weights(dtype):
    # computed in float32 and rounded once per step: close to a float32 run, 16-bit state
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64,)).astype(np.float32)
    half = lepton.nn.Parameter(lepton.tensor(w).to(dtype=dtype))
    full = lepton.nn.Parameter(half.detach().float())
    opts = [lepton.optim.AdamW([half], lr=0.01, master_weights=False), lepton.optim.AdamW([full], lr=0.01)]
    for _ in range(10):
        g = lepton.tensor(rng.standard_normal(64).astype(np.float32))
        half.grad, full.grad = g.to(dtype=dtype), g.to(dtype=dtype).float()
        for opt in opts:
            opt.step()
    assert opts[0].state[half]["exp_avg"].dtype == dtype and "master_weight" not in opts[0].state[half]
    np.testing.assert_allclose(half.detach().float().numpy(), full.detach().numpy(), atol=0.05)


# ---- float32 master weights of 16-bit params. torch has no such option: the reference is
# torch's float32 optimizer stepping float32 copies of the 16-bit weights with the 16-bit
# grads' values, i.e. the same float32 arithmetic done by hand; each 16-bit param must then be
# its master rounded to nearest even (torch's .to(dtype) as the rounding oracle).

LOW = {"bfloat16": (lepton.bfloat16, torch.bfloat16), "float16": (lepton.float16, torch.float16)}
MIXED_SHAPES = [(3, 4), (7,), (2, 3, 5), (1,), (129,), (40, 33)]


def make_master_pair(dtype, seed=0):
    ldtype, _ = LOW[dtype]
    rng = np.random.default_rng(seed)
    lp = [lepton.nn.Parameter(lepton.tensor(rng.standard_normal(s).astype(np.float32)).to(dtype=ldtype))
          for s in MIXED_SHAPES]
    tp = [torch.nn.Parameter(torch.tensor(p.detach().float().numpy())) for p in lp]
    return lp, tp


def set_low_grads(lp, tp, rng, scale=1.0):
    for a, b in zip(lp, tp):
        a.grad = lepton.tensor((scale * rng.standard_normal(tuple(a.shape))).astype(np.float32)).to(dtype=a.dtype)
        b.grad = torch.tensor(a.grad.float().numpy())


def assert_master_follows(lopt, lp, tp, dtype, step):
    _, tdtype = LOW[dtype]
    for i, (a, b) in enumerate(zip(lp, tp)):
        master = lopt.state[a]["master_weight"]
        assert master.dtype == lepton.float32
        np.testing.assert_allclose(master.numpy(), b.detach().numpy(), **TOL["float32"],
                                   err_msg=f"master {i} after step {step}")
        rounded = torch.tensor(master.numpy()).to(tdtype).float().numpy()
        np.testing.assert_array_equal(a.detach().float().numpy(), rounded, err_msg=f"param {i} after step {step}")


def master_trajectory(name, dtype, steps=15, **options):
    lp, tp = make_master_pair(dtype)
    lopt = getattr(lepton.optim, name)(lp, **options)
    topt = getattr(torch.optim, name)(tp, foreach=False, **options)
    rng = np.random.default_rng(1)
    for step in range(steps):
        set_low_grads(lp, tp, rng)
        lopt.step()
        topt.step()
        assert_master_follows(lopt, lp, tp, dtype, step)
    return lopt, lp


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("options", SGD_CASES, ids=str)
def test_sgd_master_weights_match_float32_torch(options, dtype):
    lopt, lp = master_trajectory("SGD", dtype, lr=0.05, **options)
    if options["momentum"]:
        assert all(lopt.state[p]["momentum_buffer"].dtype == lepton.float32 for p in lp)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("options", ADAM_CASES, ids=str)
def test_adam_master_weights_match_float32_torch(name, options, dtype):
    lopt, lp = master_trajectory(name, dtype, lr=0.02, **options)
    assert all(lopt.state[p]["exp_avg_sq"].dtype == lepton.float32 for p in lp)


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_master_weights_keep_updates_below_the_rounding_step(name):
    # lr·update is ~1e-4 per step, far below half a bfloat16 ulp at 1.0 (2^-8): stepping the
    # bfloat16 param loses every update, the master accumulates them
    options = dict(lr=1e-4) if name == "SGD" else dict(lr=1e-4, weight_decay=0.0)
    params = {m: lepton.nn.Parameter(lepton.ones(8, dtype=lepton.bfloat16)) for m in (True, False)}
    opts = {m: getattr(lepton.optim, name)([p], master_weights=m, **options) for m, p in params.items()}
    for _ in range(100):
        for m, p in params.items():
            p.grad = lepton.full((8,), -1.0, dtype=lepton.bfloat16)
            opts[m].step()
    assert float(params[False].float().min()) == 1.0
    assert float(opts[True].state[params[True]]["master_weight"].min()) == pytest.approx(1.01, rel=1e-4)
    assert float(params[True].float().min()) > 1.0


@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                                          ("Adam", dict(lr=0.02, amsgrad=True)), ("AdamW", dict(lr=0.02))])
def test_master_weights_state_dict_round_trip(name, options):
    # mid-training save and load into fresh params: both continue bit for bit, masters included
    cls = getattr(lepton.optim, name)
    lp, tp = make_master_pair("bfloat16")
    opt = cls(lp, **options)
    rng = np.random.default_rng(2)
    for _ in range(5):
        set_low_grads(lp, tp, rng)
        opt.step()
    saved = clone_state(opt.state_dict())
    assert all(s["master_weight"].dtype == lepton.float32 for s in saved["state"].values())
    assert saved["param_groups"][0]["master_weights"] is True
    resumed, resumed_params = resume_and_continue(cls, saved, opt, lp, tp, set_low_grads, steps=5)
    for a, b in zip(lp, resumed_params):
        assert all(v.dtype == lepton.float32 for v in resumed.state[b].values() if isinstance(v, lepton.Tensor))
        np.testing.assert_array_equal(a.detach().float().numpy(), b.detach().float().numpy())
        np.testing.assert_array_equal(opt.state[a]["master_weight"].numpy(),
                                      resumed.state[b]["master_weight"].numpy())


def test_mixed_dtype_group_steps_each_dtype_its_own_way():
    lp = [lepton.nn.Parameter(lepton.ones(5, dtype=d)) for d in (lepton.bfloat16, lepton.float32, lepton.float16)]
    opt = lepton.optim.SGD(lp, lr=0.1, momentum=0.9)
    for p in lp:
        p.grad = lepton.ones_like(p)
    opt.step()
    assert [("master_weight" in opt.state[p]) for p in lp] == [True, False, True]
    assert [opt.state[p]["momentum_buffer"].dtype for p in lp] == [lepton.float32] * 3
    for p in lp:
        np.testing.assert_allclose(p.float().numpy(), 0.9, rtol=1e-2)


# ---- the fused kernels against their serial reference

KERNEL_SIZES = [0, 1, 15, 16, 17, 100, 40_003, 70_001, 3, 33_000]  # > 32768 in total: split over threads


def random_list(dtype, seed, positive=False):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(n).astype(dtype) for n in KERNEL_SIZES]
    return [lepton.tensor(np.abs(a) if positive else a) for a in arrays]


def run_both(fn, lists_fn):
    """fn(lists, reference) on two identical copies of the lists; returns both results."""
    fast, ref = lists_fn(), lists_fn()
    return fn(fast, False), fn(ref, True), fast, ref


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", combos(amsgrad=[False, True], weight_decay=[0.0, 0.1], maximize=[False, True],
                                           decoupled=[False, True]), ids=str)
def test_fused_adam_equals_reference(dtype, options):
    def lists():
        return [random_list(dtype, s, positive=(s in (3, 4))) for s in range(5)]

    def step(ls, reference):
        fn = _C._fused_adamw_ if options["decoupled"] else _C._fused_adam_
        steps = [i % 4 + 1 for i in range(len(KERNEL_SIZES))]
        fn(ls[0], ls[1], ls[2], ls[3], ls[4] if options["amsgrad"] else [], steps, lr=0.01, beta1=0.9, beta2=0.99,
           weight_decay=options["weight_decay"], eps=1e-8, amsgrad=options["amsgrad"], maximize=options["maximize"],
           reference=reference)

    _, _, fast, ref = run_both(step, lists)
    for a_list, b_list in zip(fast, ref):
        for a, b in zip(a_list, b_list):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", [c for c in combos(momentum=[0.0, 0.9], nesterov=[False, True], first=[False, True],
                                                       weight_decay=[0.0, 0.1]) if c["momentum"] or not c["nesterov"]],
                         ids=str)
def test_fused_sgd_equals_reference(dtype, options):

    def step(ls, reference):
        _C._fused_sgd_(ls[0], ls[1], ls[2] if options["momentum"] else [], lr=0.1, momentum=options["momentum"],
                       weight_decay=options["weight_decay"], nesterov=options["nesterov"], maximize=True,
                       is_first_step=options["first"], reference=reference)

    _, _, fast, ref = run_both(step, lambda: [random_list(dtype, s) for s in range(3)])
    for a_list, b_list in zip(fast, ref):
        for a, b in zip(a_list, b_list):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("dtype", [lepton.bfloat16, lepton.float16])
@pytest.mark.parametrize("kind", ["sgd", "sgd_momentum", "adam", "adamw_amsgrad"])
def test_fused_master_steps_equal_reference(dtype, kind):
    # 16-bit params and grads, float32 masters and state, over sizes that split across threads
    def lists():
        low = [[t.to(dtype=dtype) for t in random_list("float32", s)] for s in range(2)]
        return low + [random_list("float32", s, positive=(s == 3)) for s in range(2, 6)]

    def step(ls, reference):
        params, grads, a, b, c, masters = ls
        common = dict(masters=masters, reference=reference)
        if kind.startswith("sgd"):
            momentum = 0.9 if kind == "sgd_momentum" else 0.0
            _C._fused_sgd_(params, grads, a if momentum else [], lr=0.1, momentum=momentum, weight_decay=0.1, **common)
        else:
            fn = _C._fused_adamw_ if kind.startswith("adamw") else _C._fused_adam_
            fn(params, grads, a, b, c if "amsgrad" in kind else [], [3] * len(params), lr=0.01, beta1=0.9,
               beta2=0.99, weight_decay=0.1, eps=1e-8, amsgrad="amsgrad" in kind, **common)

    _, _, fast, ref = run_both(step, lists)
    for a_list, b_list in zip(fast, ref):
        for a, b in zip(a_list, b_list):
            np.testing.assert_array_equal(a.float().numpy(), b.float().numpy())
    # each param is its master rounded to nearest even, as torch's .to rounds
    tdtype = LOW[dtype.name][1]
    for p, m in zip(fast[0], fast[5]):
        np.testing.assert_array_equal(p.float().numpy(), torch.tensor(m.numpy()).to(tdtype).float().numpy())


def test_master_weight_lists_are_checked():
    p = [lepton.ones(3, dtype=lepton.bfloat16)]
    with pytest.raises(TypeError, match="master weights are for float16 and bfloat16 params, but params have dtype "
                                        "float32"):
        _C._fused_sgd_([lepton.ones(3)], [lepton.ones(3)], [], lr=0.1, masters=[lepton.ones(3)])
    with pytest.raises(TypeError, match=r"masters\[0\] has dtype bfloat16 but it must be float32"):
        _C._fused_sgd_(p, p, [], lr=0.1, masters=p)
    with pytest.raises(TypeError, match=r"exp_avgs\[0\] has dtype bfloat16 but it must be float32"):
        _C._fused_adam_(p, p, p, [lepton.ones(3)], [], [1], lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0,
                        eps=1e-8, masters=[lepton.ones(3)])
    with pytest.raises(ValueError, match="expected 1 masters"):
        _C._fused_sgd_(p, p, [], lr=0.1, masters=[lepton.ones(3), lepton.ones(3)])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0])
def test_grad_norm_equals_reference_and_numpy(dtype, p):
    ts = random_list(dtype, 0)
    fast, ref = _C._grad_norm(ts, p), _C._grad_norm(ts, p, reference=True)
    flat = np.concatenate([t.numpy().astype(np.float64) for t in ts])
    expected = np.abs(flat).max() if math.isinf(p) else (np.abs(flat) ** p).sum() ** (1 / p)
    assert fast == pytest.approx(ref, rel=1e-12)
    assert fast == pytest.approx(expected, rel=1e-10)
    assert _C._grad_norm([], p) == 0.0


def test_grad_norm_does_not_depend_on_the_thread_count():
    ts = random_list("float32", 0) * 4
    threads = lepton.get_num_threads()
    try:
        lepton.set_num_threads(1)
        one = _C._grad_norm(ts)
        lepton.set_num_threads(max(2, threads))
        assert _C._grad_norm(ts) == one
    finally:
        lepton.set_num_threads(threads)


def test_grad_norm_propagates_nan_and_inf():
    ts = random_list("float32", 0)
    ts[6][5] = float("nan")
    assert math.isnan(_C._grad_norm(ts)) and math.isnan(_C._grad_norm(ts, math.inf))
    ts[6][5] = float("inf")
    assert _C._grad_norm(ts) == math.inf


def test_foreach_mul_equals_reference():
    fast, ref = random_list("float32", 0), random_list("float32", 0)
    _C._foreach_mul_(fast, 0.37)
    _C._foreach_mul_(ref, 0.37, reference=True)
    for a, b, c in zip(fast, ref, random_list("float32", 0)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy(), c.numpy() * np.float32(0.37))


def test_fused_step_bumps_versions():
    p, g, m, v = (lepton.ones(4) for _ in range(4))
    before = [t._version() for t in (p, g, m, v)]
    _C._fused_adam_([p], [g], [m], [v], [], [1], lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0, eps=1e-8)
    after = [t._version() for t in (p, g, m, v)]
    assert after[0] > before[0] and after[2] > before[2] and after[3] > before[3] and after[1] == before[1]


# ---- bad input

def adam_call(params, grads, exp_avgs=None, exp_avg_sqs=None, steps=None, **kw):
    exp_avgs = exp_avgs if exp_avgs is not None else [lepton.zeros_like(p) for p in params]
    exp_avg_sqs = exp_avg_sqs if exp_avg_sqs is not None else [lepton.zeros_like(p) for p in params]
    steps = steps if steps is not None else [1] * len(params)
    options = dict(lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0, eps=1e-8)
    options.update(kw)
    _C._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, **options)


def test_bad_lists_raise_clear_errors():
    p = [lepton.ones(3), lepton.ones(2, 2)]
    with pytest.raises(ValueError, match="expected 2 grads"):
        adam_call(p, [lepton.ones(3)])
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \[4\] but params\[1\] has shape \[2, 2\]"):
        adam_call(p, [lepton.ones(3), lepton.ones(4)])
    with pytest.raises(TypeError, match=r"grads\[0\] has dtype float64"):
        adam_call(p, [lepton.ones(3, dtype=lepton.float64), lepton.ones(2, 2)])
    with pytest.raises(TypeError, match="floating-point"):
        adam_call([lepton.ones(3, dtype=lepton.int64)], [lepton.ones(3, dtype=lepton.int64)])
    with pytest.raises(ValueError, match="not contiguous"):
        adam_call([lepton.ones(3, 2).T], [lepton.ones(2, 3)])
    with pytest.raises(ValueError, match="state_steps"):
        adam_call(p, [lepton.ones(3), lepton.ones(2, 2)], steps=[1])
    with pytest.raises(ValueError, match="steps count from 1"):
        adam_call(p, [lepton.ones(3), lepton.ones(2, 2)], steps=[0, 1])
    with pytest.raises(ValueError, match="betas"):
        adam_call(p, [lepton.ones(3), lepton.ones(2, 2)], beta1=1.0)
    with pytest.raises(ValueError, match="max_exp_avg_sqs given without amsgrad"):
        _C._fused_adam_(p, p, p, p, p, [1, 1], lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0, eps=1e-8)
    with pytest.raises(ValueError, match="momentum is 0"):
        _C._fused_sgd_(p, p, p, lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        _C._fused_sgd_(p, p, p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="norm_type"):
        _C._grad_norm(p, 0.0)


def test_optimizer_argument_errors():
    w = lepton.nn.Parameter(lepton.ones(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        lepton.optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        lepton.optim.SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        lepton.optim.Adam([w], lr=-1)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        lepton.optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov"):
        lepton.optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        lepton.optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        lepton.optim.SGD({w}, lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        lepton.optim.SGD([w * 2], lr=0.1)


# ---- gradient clipping

@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    lp, tp = make_pair(dtype)
    set_grads(lp, tp, np.random.default_rng(3), skip={2})
    total = lepton.nn.utils.clip_grad_norm_(lp, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type)
    assert total.dtype.name == dtype
    assert float(total) == pytest.approx(float(ttotal), rel=1e-6)
    for a, b in zip(lp, tp):
        if b.grad is None:
            assert a.grad is None
        else:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_clip_grad_norm_low_precision_matches_torch(norm_type, dtype):
    (ldtype, tdtype), rng = LOW[dtype], np.random.default_rng(3)
    lp = [lepton.nn.Parameter(lepton.zeros(s, dtype=ldtype)) for s in MIXED_SHAPES]
    tp = [torch.nn.Parameter(torch.zeros(s, dtype=tdtype)) for s in MIXED_SHAPES]
    for a, b in zip(lp, tp):
        g = rng.standard_normal(tuple(a.shape)).astype(np.float32)
        a.grad, b.grad = lepton.tensor(g).to(dtype=ldtype), torch.tensor(g).to(tdtype)
    total = lepton.nn.utils.clip_grad_norm_(lp, 0.5, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tp, 0.5, norm_type)
    assert total.dtype.name == dtype
    # both round the exact norm to the 16-bit dtype; torch's per-tensor 16-bit norms add a rounding
    assert float(total) == pytest.approx(float(ttotal), rel=2e-2)
    for a, b in zip(lp, tp):
        np.testing.assert_allclose(a.grad.float().numpy(), b.grad.float().numpy(), rtol=2e-2, atol=1e-3)


def test_clip_grad_norm_mixed_dtypes_and_inputs():
    # one norm over grads of several dtypes (one fused pass per dtype); a single tensor or a
    # generator are accepted like torch; params without grads are skipped; foreach is accepted
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (5, 300, 7)]
    lp = [lepton.nn.Parameter(lepton.tensor(a).to(dtype=d)) for a, d in
          zip(arrays, (lepton.float32, lepton.float64, lepton.float32))]
    tp = [torch.nn.Parameter(torch.tensor(a).to(d)) for a, d in zip(arrays, (torch.float32, torch.float64, torch.float32))]
    for a, b in zip(lp, tp):
        a.grad, b.grad = a.detach().clone(), b.detach().clone()
    total = lepton.nn.utils.clip_grad_norm_((p for p in lp), 1.0, foreach=True)
    ttotal = torch.nn.utils.clip_grad_norm_((p for p in tp), 1.0, foreach=True)
    assert float(total) == pytest.approx(float(ttotal), rel=1e-6)
    for a, b in zip(lp, tp):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6)
    w, tw = lepton.nn.Parameter(lepton.tensor([3.0, 4.0])), torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    w.grad, tw.grad = lepton.tensor([3.0, 4.0]), torch.tensor([3.0, 4.0])
    assert float(lepton.nn.utils.clip_grad_norm_(w, 1.0)) == float(torch.nn.utils.clip_grad_norm_(tw, 1.0)) == 5.0
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-7)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clip_grad_norm_nonfinite(bad, norm_type):
    values = [1.0, bad, 0.0]
    w, tw = lepton.nn.Parameter(lepton.ones(3)), torch.nn.Parameter(torch.ones(3))
    w.grad, tw.grad = lepton.tensor(values), torch.tensor(values)
    with pytest.raises(RuntimeError, match="non-finite"):
        lepton.nn.utils.clip_grad_norm_([w], 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_([tw], 1.0, norm_type, error_if_nonfinite=True)
    # without the check both scale by the non-finite norm's coefficient
    total = lepton.nn.utils.clip_grad_norm_([w], 1.0, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_([tw], 1.0, norm_type)
    np.testing.assert_array_equal(float(total), float(ttotal))
    np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())


def test_clip_grad_norm_empty():
    assert float(lepton.nn.utils.clip_grad_norm_([lepton.nn.Parameter(lepton.ones(2))], 1.0)) == 0.0
    assert float(lepton.nn.utils.clip_grad_norm_([], 1.0)) == 0.0
    with pytest.raises(ValueError, match="norm_type must be positive"):
        w = lepton.nn.Parameter(lepton.ones(2))
        w.grad = lepton.ones(2)
        lepton.nn.utils.clip_grad_norm_([w], 1.0, norm_type=0)


def test_clip_grad_value_matches_torch():
    lp, tp = make_pair("float32")
    set_grads(lp, tp, np.random.default_rng(4))
    lepton.nn.utils.clip_grad_value_(lp, 0.3)
    torch.nn.utils.clip_grad_value_(tp, 0.3)
    for a, b in zip(lp, tp):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
