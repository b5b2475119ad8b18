"""lepton.optim against torch.optim, for what torch programs reach beyond SGD/Adam: Adadelta,
Adamax, NAdam, RAdam, ASGD and LBFGS (parameter trajectories from the same weights and gradients;
LBFGS's iterates, counters and state_dict on Rosenbrock and a small regression), torch's keyword
surface (foreach, fused, capturable, differentiable, named params), and the lr schedulers
CosineAnnealingWarmRestarts, CyclicLR, PolynomialLR, ConstantLR, MultiplicativeLR, SequentialLR
and ChainedScheduler (lr sequences step by step, state_dict round trips, step(epoch))."""

import itertools
import warnings

import numpy as np
import pytest

import lepton
from lepton.optim import lr_scheduler as L

torch = pytest.importorskip("torch")
T = torch.optim.lr_scheduler

SHAPES = [(3, 4), (7,), (2, 3, 5)]


@pytest.fixture(autouse=True)
def torch_scalars_in_float64():
    """torch keeps some optimizer scalars (NAdam's mu_product, ASGD's eta and mu) as 0-d tensors of
    its default dtype, float32 unless told; Lepton keeps Python floats. float64 compares like with like."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
TOL = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}


def make_pair(dtype, shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return ([lepton.nn.Parameter(lepton.tensor(w)) for w in weights],
            [torch.nn.Parameter(torch.tensor(w)) for w in weights])


def run_trajectory(lopt, topt, lp, tp, dtype, steps, rng):
    for step in range(steps):
        for a, b in zip(lp, tp):
            g = rng.standard_normal(tuple(a.shape)).astype(dtype)
            a.grad, b.grad = lepton.tensor(g), torch.tensor(g)
        lopt.step()
        topt.step()
        for i, (a, b) in enumerate(zip(lp, tp)):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **TOL[dtype],
                                       err_msg=f"param {i} after step {step}")


def combos(**choices):
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


CASES = {
    "Adadelta": combos(lr=[1.0, 0.3], rho=[0.9, 0.5], weight_decay=[0.0, 0.1], maximize=[False, True]),
    "Adamax": combos(betas=[(0.9, 0.999), (0.5, 0.9)], weight_decay=[0.0, 0.1], maximize=[False, True]),
    "NAdam": combos(momentum_decay=[4e-3, 0.05], weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True],
                    maximize=[False, True]),
    "RAdam": combos(betas=[(0.9, 0.999), (0.8, 0.7)], weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True],
                    maximize=[False, True]),
    "ASGD": combos(lambd=[1e-4, 0.1], t0=[1e6, 4], weight_decay=[0.0, 0.1], maximize=[False, True]),
}
CASE_IDS = [(name, options) for name, cases in CASES.items() for options in cases]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,options", CASE_IDS, ids=[f"{n}-{o}" for n, o in CASE_IDS])
def test_optimizer_matches_torch(name, options, dtype):
    lp, tp = make_pair(dtype)
    lopt, topt = getattr(lepton.optim, name)(lp, **options), getattr(torch.optim, name)(tp, **options)
    run_trajectory(lopt, topt, lp, tp, dtype, 20, np.random.default_rng(1))


NAMES = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD"]


@pytest.mark.parametrize("name", NAMES + ["LBFGS"])
def test_param_group_options_are_torchs(name):
    """The same keys and defaults in param_groups (torch's implementation switches included)."""
    lp, tp = make_pair("float64")
    mine = getattr(lepton.optim, name)(lp).param_groups[0]
    theirs = getattr(torch.optim, name)(tp).param_groups[0]
    assert {k: v for k, v in mine.items() if k not in ("params", "master_weights")} == \
        {k: v for k, v in theirs.items() if k != "params"}


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam", "ASGD"])
def test_param_groups_and_a_group_added_mid_run(name):
    lp, tp = make_pair("float64")

    def groups(params):
        return [{"params": params[:1]}, {"params": params[1:2], "lr": 0.003, "weight_decay": 0.2}]

    lopt, topt = getattr(lepton.optim, name)(groups(lp), lr=0.02), getattr(torch.optim, name)(groups(tp), lr=0.02)
    rng = np.random.default_rng(2)
    run_trajectory(lopt, topt, lp[:2], tp[:2], "float64", 5, rng)
    lopt.add_param_group({"params": lp[2:], "lr": 0.05})
    topt.add_param_group({"params": tp[2:], "lr": 0.05})
    run_trajectory(lopt, topt, lp, tp, "float64", 5, rng)
    assert [g["lr"] for g in lopt.param_groups] == [0.02, 0.003, 0.05]


@pytest.mark.parametrize("name,options", [("Adadelta", {}), ("Adamax", dict(weight_decay=0.1)),
                                          ("NAdam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
                                          ("RAdam", {}), ("ASGD", dict(t0=3))])
def test_state_dict_round_trip_continues_like_torch(name, options, tmp_path):
    lp, tp = make_pair("float64")
    lopt, topt = getattr(lepton.optim, name)(lp, **options), getattr(torch.optim, name)(tp, **options)
    rng = np.random.default_rng(3)
    run_trajectory(lopt, topt, lp, tp, "float64", 8, rng)
    lepton.save(lopt.state_dict(), tmp_path / "opt.safetensors")
    resumed = getattr(lepton.optim, name)(lp, **options)
    resumed.load_state_dict(lepton.load(tmp_path / "opt.safetensors"))
    assert resumed.state[lp[0]]["step"] == 8
    run_trajectory(resumed, topt, lp, tp, "float64", 8, rng)


@pytest.mark.parametrize("name,flags", [
    ("SGD", dict(fused=True)), ("SGD", dict(foreach=True, momentum=0.9)), ("Adam", dict(fused=True, amsgrad=True)),
    ("Adam", dict(foreach=False, capturable=True)), ("Adam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
    ("AdamW", dict(fused=True)), ("AdamW", dict(foreach=True, capturable=True)),
    ("RMSprop", dict(foreach=True, capturable=True, centered=True, momentum=0.5)),
    ("Adagrad", dict(fused=True, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("Adagrad", dict(foreach=False)), ("Adadelta", dict(capturable=True, foreach=False)),
    ("NAdam", dict(foreach=True)), ("RAdam", dict(foreach=False)), ("Adamax", dict(capturable=True)),
    ("ASGD", dict(foreach=True)),
])
def test_torch_implementation_switches_are_accepted_and_kept(name, flags):
    """Every foreach/fused/capturable choice runs Lepton's one step, which equals torch's default one."""
    lp, tp = make_pair("float64")
    lopt, topt = getattr(lepton.optim, name)(lp, lr=0.01, **flags), getattr(torch.optim, name)(tp, lr=0.01)
    for key, value in flags.items():
        assert lopt.param_groups[0][key] == value
        assert lopt.state_dict()["param_groups"][0][key] == value
    if name == "Adam" and flags.get("decoupled_weight_decay"):  # the same as AdamW
        topt = torch.optim.AdamW(tp, lr=0.01, weight_decay=0.1)
    elif flags.keys() - {"fused", "foreach", "capturable"}:
        topt = getattr(torch.optim, name)(tp, lr=0.01, **{k: v for k, v in flags.items()
                                                          if k not in ("fused", "foreach", "capturable")})
    run_trajectory(lopt, topt, lp, tp, "float64", 10, np.random.default_rng(4))


@pytest.mark.parametrize("name", NAMES)
def test_switch_combinations_that_cannot_work_raise(name):
    lp, tp = make_pair("float32")
    with pytest.raises(NotImplementedError, match=f"{name}: differentiable=True"):
        getattr(lepton.optim, name)(lp, differentiable=True)
    if name in ("SGD", "Adam", "AdamW", "Adagrad"):
        for lib, params in ((lepton, lp), (torch, tp)):
            with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
                getattr(lib.optim, name)(params, fused=True, foreach=True)


def test_named_parameters_give_param_names():
    lmodel, tmodel = lepton.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    lopt, topt = lepton.optim.AdamW(lmodel.named_parameters()), torch.optim.AdamW(tmodel.named_parameters())
    assert lopt.param_groups[0]["param_names"] == topt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert lopt.param_groups[0]["params"][0] is lmodel.weight
    assert lopt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]
    with pytest.raises(ValueError, match="Some param names are missing"):
        lepton.optim.SGD([("weight", lmodel.weight), lmodel.bias])


def test_zero_grad_keeps_or_drops_grads_as_torch():
    lp, _ = make_pair("float32")
    opt = lepton.optim.Adadelta(lp)
    for p in lp:
        p.grad = lepton.ones(*p.shape)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and float(p.grad.abs().sum()) == 0 for p in lp)
    opt.zero_grad()
    assert all(p.grad is None for p in lp)


@pytest.mark.parametrize("name,options", [
    ("Adadelta", dict(lr=-1.0)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(rho=-0.1)),
    ("Adadelta", dict(eps=-1e-6)), ("Adadelta", dict(weight_decay=-0.1)), ("Adamax", dict(betas=(1.0, 0.9))),
    ("Adamax", dict(betas=(0.9, -0.1))), ("Adamax", dict(lr=-2e-3)), ("NAdam", dict(momentum_decay=-1.0)),
    ("NAdam", dict(eps=-1.0)), ("RAdam", dict(betas=(0.9, 1.0))), ("RAdam", dict(weight_decay=-1.0)),
    ("ASGD", dict(lr=-0.1)), ("ASGD", dict(weight_decay=-0.1)), ("LBFGS", dict(lr=-1.0)),
    ("RMSprop", dict(alpha=-0.5)), ("Adagrad", dict(lr_decay=-0.1)), ("SGD", dict(nesterov=True)),
])
def test_bad_arguments_raise_value_error_like_torch(name, options):
    lp, tp = make_pair("float32")
    for lib, params in ((lepton, lp), (torch, tp)):
        with pytest.raises(ValueError, match="Invalid|Nesterov"):
            getattr(lib.optim, name)(params, **options)


# ---------------------------------------------------------------------------------------- LBFGS

def rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2).sum() + ((1 - x[:-1]) ** 2).sum()


def mse_regression(lib, dtype):
    """A Linear(4, 2) model and a closure-maker over fixed data, for lib (lepton or torch)."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((32, 4)).astype(dtype), rng.standard_normal((32, 2)).astype(dtype)
    w, b = rng.standard_normal((2, 4)).astype(dtype) * 0.5, np.zeros(2, dtype)
    params = [lib.nn.Parameter(lib.tensor(w)), lib.nn.Parameter(lib.tensor(b))]
    xs, ys = lib.tensor(x), lib.tensor(y)

    def loss():
        return ((xs @ params[0].t() + params[1] - ys) ** 2).mean() + 0.1 * (params[0] ** 4).sum()

    return params, loss


def rosenbrock_problem(lib, dtype):
    x = lib.nn.Parameter(lib.tensor(np.array([-1.5, 2.0, -0.5, 1.2, 0.3], dtype)))
    return [x], lambda: rosenbrock(x)


def closure_for(opt, loss):
    def closure():
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    return closure


def lbfgs_pair(problem, dtype, **options):
    (lp, lloss), (tp, tloss) = problem(lepton, dtype), problem(torch, dtype)
    lopt, topt = lepton.optim.LBFGS(lp, **options), torch.optim.LBFGS(tp, **options)
    return (lopt, lp, closure_for(lopt, lloss)), (topt, tp, closure_for(topt, tloss))


def step_both(mine, theirs, dtype, steps, tol):
    (lopt, lp, lclosure), (topt, tp, tclosure) = mine, theirs
    for step in range(steps):
        lloss, tloss = lopt.step(lclosure), topt.step(tclosure)
        assert float(lloss) == pytest.approx(float(tloss.detach()), **tol), step
        for a, b in zip(lp, tp):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol["rel"], atol=tol["abs"],
                                       err_msg=f"step {step}")
        lstate, tstate = lopt.state[lp[0]], topt.state[tp[0]]
        assert (lstate["n_iter"], lstate["func_evals"]) == (tstate["n_iter"], tstate["func_evals"]), step
        assert len(lstate.get("old_dirs", [])) == len(tstate.get("old_dirs", [])), step


LBFGS_CASES = [
    ("rosenbrock", "float64", dict(), 6),
    ("rosenbrock", "float64", dict(lr=0.02, max_iter=7), 6),
    ("rosenbrock", "float64", dict(line_search_fn="strong_wolfe"), 5),
    ("rosenbrock", "float64", dict(line_search_fn="strong_wolfe", history_size=3, max_iter=10), 6),
    ("rosenbrock", "float64", dict(line_search_fn="strong_wolfe", max_iter=1), 4),  # max_eval 1: a line search of 1
    ("regression", "float64", dict(lr=0.8), 4),
    ("regression", "float64", dict(line_search_fn="strong_wolfe", history_size=5), 4),
    # float32 only away from the optimum: near it the losses differ in their last bits, and LBFGS stops on them
    ("regression", "float32", dict(lr=0.5, max_iter=3), 4),
    ("regression", "float32", dict(line_search_fn="strong_wolfe", max_iter=3), 4),
]


@pytest.mark.parametrize("problem,dtype,options,steps", LBFGS_CASES, ids=[str(c) for c in LBFGS_CASES])
def test_lbfgs_iterates_match_torch(problem, dtype, options, steps):
    make = rosenbrock_problem if problem == "rosenbrock" else mse_regression
    tol = dict(rel=1e-9, abs=1e-12) if dtype == "float64" else dict(rel=1e-5, abs=1e-6)
    mine, theirs = lbfgs_pair(make, dtype, **options)
    step_both(mine, theirs, dtype, steps, tol)


def test_lbfgs_reaches_rosenbrock_minimum():
    x = lepton.nn.Parameter(lepton.tensor([-1.2, 1.0], dtype=lepton.float64))
    opt = lepton.optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=200, tolerance_change=1e-15)
    closure = closure_for(opt, lambda: rosenbrock(x))
    opt.step(closure)
    np.testing.assert_allclose(x.detach().numpy(), [1.0, 1.0], atol=1e-7)
    assert float(closure()) < 1e-14


def test_lbfgs_stops_at_a_zero_gradient_after_one_evaluation():
    def at_optimum(lib, dtype):
        x = lib.nn.Parameter(lib.tensor(np.ones(3, dtype)))
        return [x], lambda: rosenbrock(x)

    for options in ({}, dict(line_search_fn="strong_wolfe")):
        mine, theirs = lbfgs_pair(at_optimum, "float64", **options)
        step_both(mine, theirs, "float64", 2, dict(rel=0, abs=0))
        state = mine[0].state[mine[1][0]]
        assert (state["func_evals"], state["n_iter"]) == (2, 0) and "d" not in state


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_state_dict_round_trip_continues_like_torch(line_search_fn, tmp_path):
    options = dict(line_search_fn=line_search_fn, max_iter=4, history_size=3, lr=1 if line_search_fn else 0.05)
    mine, theirs = lbfgs_pair(rosenbrock_problem, "float64", **options)
    tol = dict(rel=1e-9, abs=1e-12)
    step_both(mine, theirs, "float64", 2, tol)
    lopt, (x,), lclosure = mine
    saved = lopt.state_dict()
    assert set(saved["state"][0]) == {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
                                      "prev_flat_grad", "prev_loss"}
    assert saved["param_groups"][0]["line_search_fn"] == line_search_fn
    lepton.save(saved, tmp_path / "lbfgs.safetensors")
    at_save = x.detach().numpy().copy()
    history = [h.numpy().copy() for h in saved["state"][0]["old_stps"]]
    lopt.step(lclosure)  # a later step leaves what was saved as it was
    assert saved["state"][0]["n_iter"] == 8 and len(saved["state"][0]["old_stps"]) == len(history)
    for h, before in zip(saved["state"][0]["old_stps"], history):
        np.testing.assert_array_equal(h.numpy(), before)
    # a fresh optimizer on params with the saved values, loaded from the file, continues as torch does
    resumed_x = lepton.nn.Parameter(lepton.tensor(at_save))
    resumed = lepton.optim.LBFGS([resumed_x], **options)
    resumed.load_state_dict(lepton.load(tmp_path / "lbfgs.safetensors"))
    step_both((resumed, [resumed_x], closure_for(resumed, lambda: rosenbrock(resumed_x))), theirs, "float64", 3, tol)


def test_lbfgs_bad_arguments():
    (x,), _ = rosenbrock_problem(lepton, "float64")
    with pytest.raises(ValueError, match="only 'strong_wolfe' is supported"):
        lepton.optim.LBFGS([x], line_search_fn="armijo")
    for name in ("max_iter", "max_eval", "history_size"):
        with pytest.raises(ValueError, match=f"Invalid {name}"):
            lepton.optim.LBFGS([x], **{name: 0})
    y = lepton.nn.Parameter(lepton.ones(2))
    for lib, params in ((lepton, [{"params": [x]}, {"params": [y]}]),
                        (torch, [{"params": [torch.nn.Parameter(torch.ones(2))]},
                                 {"params": [torch.nn.Parameter(torch.ones(2))]}])):
        with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
            lib.optim.LBFGS(params)
    opt = lepton.optim.LBFGS([x])
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        opt.add_param_group({"params": [y]})
    with pytest.raises(TypeError):
        opt.step()  # the closure is required


def test_lbfgs_params_without_grad_count_as_zero_gradient():
    """A param the loss does not reach has no grad; LBFGS treats it as zero and leaves it alone."""
    x, unused = lepton.nn.Parameter(lepton.tensor([-1.2, 1.0], dtype=lepton.float64)), \
        lepton.nn.Parameter(lepton.tensor([5.0], dtype=lepton.float64))
    opt = lepton.optim.LBFGS([x, unused], line_search_fn="strong_wolfe")
    opt.step(closure_for(opt, lambda: rosenbrock(x)))
    assert unused.item() == 5.0 and float(rosenbrock(x)) < float(rosenbrock(lepton.tensor([-1.2, 1.0])))


# ------------------------------------------------------------------------------------ schedulers

EPOCHS = 40


def optimizers(kind="SGD", **options):
    """A lepton and a torch optimizer with two param groups (lrs 0.1 and 0.02)."""
    lw = [lepton.nn.Parameter(lepton.ones(2)) for _ in range(2)]
    tw = [torch.nn.Parameter(torch.ones(2)) for _ in range(2)]

    def groups(ws):
        return [{"params": [ws[0]]}, {"params": [ws[1]], "lr": 0.02}]

    return (getattr(lepton.optim, kind)(groups(lw), lr=0.1, **options),
            getattr(torch.optim, kind)(groups(tw), lr=0.1, **options))


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def make_scheduler(lib, opt, case):
    S = L if lib is lepton else T
    simple = {
        "CosineAnnealingWarmRestarts": lambda: S.CosineAnnealingWarmRestarts(opt, T_0=5, eta_min=0.001),
        "CosineAnnealingWarmRestarts-Tmult": lambda: S.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2),
        "CyclicLR": lambda: S.CyclicLR(opt, base_lr=[0.01, 0.002], max_lr=0.1, step_size_up=4, step_size_down=7),
        "CyclicLR-triangular2": lambda: S.CyclicLR(opt, base_lr=0.01, max_lr=[0.1, 0.05], step_size_up=3,
                                                   mode="triangular2", base_momentum=0.7, max_momentum=0.95),
        "CyclicLR-exp_range": lambda: S.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range",
                                                 gamma=0.97),
        "CyclicLR-scale_fn": lambda: S.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2,
                                                scale_fn=lambda x: 1 / (1 + 0.1 * x), scale_mode="iterations",
                                                cycle_momentum=False),
        "PolynomialLR": lambda: S.PolynomialLR(opt, total_iters=25, power=2.0),
        "ConstantLR": lambda: S.ConstantLR(opt, factor=0.25, total_iters=7),
        "MultiplicativeLR": lambda: S.MultiplicativeLR(opt, lr_lambda=[lambda e: 0.95, lambda e: 1 - 0.01 * e]),
        "SequentialLR-warmup-cosine": lambda: S.SequentialLR(
            opt, [S.LinearLR(opt, start_factor=0.1, total_iters=5), S.CosineAnnealingLR(opt, T_max=30)], [5]),
        "SequentialLR-three": lambda: S.SequentialLR(
            opt, [S.ConstantLR(opt, factor=0.5, total_iters=4), S.ExponentialLR(opt, gamma=0.9),
                  S.StepLR(opt, step_size=6, gamma=0.5)], milestones=[8, 20]),
        "SequentialLR-lambda": lambda: S.SequentialLR(
            opt, [S.LambdaLR(opt, lambda e: (e + 1) / 6), S.MultiStepLR(opt, [5, 12], gamma=0.2)], [6]),
        "ChainedScheduler": lambda: S.ChainedScheduler([S.ConstantLR(opt, factor=0.2, total_iters=6),
                                                        S.ExponentialLR(opt, gamma=0.93)]),
        "ChainedScheduler-nested": lambda: S.ChainedScheduler(
            [S.SequentialLR(opt, [S.LinearLR(opt, 0.5, total_iters=3), S.PolynomialLR(opt, 30)], [3]),
             S.MultiplicativeLR(opt, lambda e: 0.99)], optimizer=opt),
    }
    return simple[case]()


SCHED_CASES = ["CosineAnnealingWarmRestarts", "CosineAnnealingWarmRestarts-Tmult", "CyclicLR", "CyclicLR-triangular2",
               "CyclicLR-exp_range", "CyclicLR-scale_fn", "PolynomialLR", "ConstantLR", "MultiplicativeLR",
               "SequentialLR-warmup-cosine", "SequentialLR-three", "SequentialLR-lambda", "ChainedScheduler",
               "ChainedScheduler-nested"]


def step_and_compare(ls, ts, lopt, topt, epochs):
    for epoch in range(epochs):
        lopt.step()
        topt.step()
        ls.step()
        ts.step()
        assert ls.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13, abs=1e-16), epoch
        assert [g["lr"] for g in lopt.param_groups] == ls.get_last_lr(), epoch
        assert momenta(lopt) == pytest.approx(momenta(topt), rel=1e-13), epoch


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("case", SCHED_CASES)
def test_scheduler_lr_sequence_matches_torch(case, kind):
    options = dict(momentum=0.9) if kind == "SGD" else {}
    lopt, topt = optimizers(kind, **options)
    ls, ts = make_scheduler(lepton, lopt, case), make_scheduler(torch, topt, case)
    assert ls.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13)
    assert [g["lr"] for g in lopt.param_groups] == pytest.approx([g["lr"] for g in topt.param_groups], rel=1e-13)
    step_and_compare(ls, ts, lopt, topt, EPOCHS)


@pytest.mark.parametrize("case", SCHED_CASES)
def test_scheduler_state_dict_round_trip(case, tmp_path):
    lopt, topt = optimizers(momentum=0.9)
    ls, ts = make_scheduler(lepton, lopt, case), make_scheduler(torch, topt, case)
    step_and_compare(ls, ts, lopt, topt, 13)
    saved = ls.state_dict()
    assert "optimizer" not in saved
    lepton.save({"scheduler": saved}, tmp_path / "sched.safetensors")  # plain data: it goes through a checkpoint
    lopt2, _ = optimizers(momentum=0.9)
    lopt2.load_state_dict(lopt.state_dict())
    ls2 = make_scheduler(lepton, lopt2, case)
    ls2.load_state_dict(lepton.load(tmp_path / "sched.safetensors")["scheduler"])
    lopt2.load_state_dict(lopt.state_dict())  # undo the constructor's step on the groups
    step_and_compare(ls2, ts, lopt2, topt, EPOCHS - 13)


@pytest.mark.parametrize("name,options", [
    ("StepLR", dict(step_size=4, gamma=0.5)), ("MultiStepLR", dict(milestones=[3, 7, 7], gamma=0.3)),
    ("ConstantLR", dict(factor=0.3, total_iters=6)), ("LinearLR", dict(start_factor=0.2, total_iters=9)),
    ("ExponentialLR", dict(gamma=0.9)), ("PolynomialLR", dict(total_iters=12, power=0.5)),
    ("CosineAnnealingLR", dict(T_max=9, eta_min=0.01)), ("LambdaLR", dict(lr_lambda=lambda e: 1 / (1 + e))),
])
def test_step_with_an_epoch_uses_the_closed_form(name, options):
    lopt, topt = optimizers()
    ls, ts = getattr(L, name)(lopt, **options), getattr(T, name)(topt, **options)
    for epoch in [3, 4, 10, 2, 15, 15, 0, 7]:
        with pytest.warns(UserWarning, match="epoch"):
            ls.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts.step(epoch)
        assert ls.last_epoch == epoch
        assert ls.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13), epoch


@pytest.mark.parametrize("T_mult", [1, 2])
def test_warm_restarts_take_fractional_epochs(T_mult):
    lopt, topt = optimizers()
    ls = L.CosineAnnealingWarmRestarts(lopt, T_0=4, T_mult=T_mult, eta_min=0.005)
    ts = T.CosineAnnealingWarmRestarts(topt, T_0=4, T_mult=T_mult, eta_min=0.005)
    iters = 7
    for epoch in range(20):
        for i in range(iters):
            ls.step(epoch + i / iters)
            ts.step(epoch + i / iters)
            assert ls.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12), (epoch, i)
            assert (ls.T_i, ls.last_epoch) == (ts.T_i, ts.last_epoch)
    with pytest.raises(ValueError, match="non-negative epoch"):
        ls.step(-1)


def test_old_scheduler_base_name_and_reduce_on_plateau_is_a_scheduler():
    class Halving(L._LRScheduler):
        def get_lr(self):
            return [base * 0.5 ** self.last_epoch for base in self.base_lrs]

    lopt, _ = optimizers()
    sched = Halving(lopt)
    sched.step()
    sched.step()
    assert sched.get_last_lr() == [0.025, 0.005]
    assert isinstance(L.ReduceLROnPlateau(lopt), L.LRScheduler)


def test_scheduler_bad_arguments():
    lopt, topt = optimizers()
    other, _ = optimizers()
    for S, opt, other_opt in ((L, lopt, other), (T, topt, optimizers()[1])):
        with pytest.raises(ValueError, match="Constant multiplicative factor"):
            S.ConstantLR(opt, factor=1.5)
        with pytest.raises(ValueError, match="positive integer T_0"):
            S.CosineAnnealingWarmRestarts(opt, T_0=0)
        with pytest.raises(ValueError, match="T_mult >= 1"):
            S.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=0)
        with pytest.raises(ValueError, match="mode is invalid"):
            S.CyclicLR(opt, 0.01, 0.1, mode="sawtooth")
        with pytest.raises(ValueError, match="max_lr must have the same length"):
            S.CyclicLR(opt, 0.01, [0.1, 0.2, 0.3])
        with pytest.raises(ValueError, match="number of milestones"):
            S.SequentialLR(opt, [S.ConstantLR(opt), S.ExponentialLR(opt, 0.9)], milestones=[2, 5])
        with pytest.raises(ValueError, match="same optimizer"):
            S.ChainedScheduler([S.ConstantLR(opt), S.ExponentialLR(other_opt, 0.9)])
        with pytest.raises(ValueError, match="ReduceLROnPlateau"):
            S.SequentialLR(opt, [S.ConstantLR(opt), S.ReduceLROnPlateau(opt)], milestones=[2])
        with pytest.raises(TypeError, match="lr_lambda should be a function"):
            S.MultiplicativeLR(opt, lr_lambda=0.9)
    no_momentum = lepton.optim.Adagrad([lepton.nn.Parameter(lepton.ones(2))])
    with pytest.raises(ValueError, match="momentum or beta1"):
        L.CyclicLR(no_momentum, 0.01, 0.1)
    with pytest.raises(TypeError, match="not an Optimizer"):
        L.CyclicLR(object(), 0.01, 0.1)
