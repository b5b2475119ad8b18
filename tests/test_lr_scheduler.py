"""lepton.optim.lr_scheduler against torch.optim.lr_scheduler: lr (and momentum) sequences over
40 epochs for two param groups, state_dict round trips mid-run, warmup_cosine's formula."""

import math

import pytest

import lepton
from lepton.optim import lr_scheduler as L

torch = pytest.importorskip("torch")
T = torch.optim.lr_scheduler
EPOCHS = 40


def optimizers(kind="SGD", **options):
    """A lepton and a torch optimizer with two param groups (lrs 0.1 and 0.02)."""
    lw = [lepton.nn.Parameter(lepton.ones(2)) for _ in range(2)]
    tw = [torch.nn.Parameter(torch.ones(2)) for _ in range(2)]
    groups = lambda ws: [{"params": [ws[0]]}, {"params": [ws[1]], "lr": 0.02}]  # noqa: E731
    return (getattr(lepton.optim, kind)(groups(lw), lr=0.1, **options),
            getattr(torch.optim, kind)(groups(tw), lr=0.1, **options))


CASES = {
    "StepLR": dict(step_size=7, gamma=0.5),
    "MultiStepLR": dict(milestones=[3, 10, 10, 25], gamma=0.3),
    "ExponentialLR": dict(gamma=0.93),
    "CosineAnnealingLR": dict(T_max=12, eta_min=0.001),
    "LinearLR": dict(start_factor=0.2, end_factor=0.9, total_iters=15),
    "OneCycleLR": dict(max_lr=[0.5, 0.1], total_steps=EPOCHS + 1),
    "OneCycleLR-3phase-linear": dict(max_lr=0.3, total_steps=EPOCHS + 1, three_phase=True, anneal_strategy="linear",
                                     pct_start=0.25),
    "LambdaLR": dict(lr_lambda=[lambda e: 0.95 ** e, lambda e: 1 / (1 + e)]),
}


def schedulers(case, kind="SGD", **options):
    name = case.split("-")[0]
    lopt, topt = optimizers(kind, **options)
    return getattr(L, name)(lopt, **CASES[case]), getattr(T, name)(topt, **CASES[case]), lopt, topt


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def step_and_compare(ls, ts, lopt, topt, epochs):
    for epoch in range(epochs):
        lopt.step()
        topt.step()
        ls.step()
        ts.step()
        assert ls.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13, abs=1e-16), epoch
        assert [g["lr"] for g in lopt.param_groups] == ls.get_last_lr()
        assert momenta(lopt) == pytest.approx(momenta(topt), rel=1e-13), epoch


@pytest.mark.parametrize("case", list(CASES))
def test_lr_sequence_matches_torch(case):
    ls, ts, lopt, topt = schedulers(case, momentum=0.9)
    assert ls.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-13)
    step_and_compare(ls, ts, lopt, topt, EPOCHS)


def test_one_cycle_cycles_adam_beta1():
    ls, ts, lopt, topt = schedulers("OneCycleLR", kind="Adam")
    step_and_compare(ls, ts, lopt, topt, EPOCHS)


@pytest.mark.parametrize("case", list(CASES))
def test_state_dict_round_trip(case):
    ls, ts, lopt, topt = schedulers(case, momentum=0.9)
    step_and_compare(ls, ts, lopt, topt, 15)
    saved = ls.state_dict()
    assert "optimizer" not in saved and saved["last_epoch"] == 15
    # a fresh optimizer and scheduler, restored from both state dicts, continue where they stopped
    lopt2, _ = optimizers(momentum=0.9)
    lopt2.load_state_dict(lopt.state_dict())
    ls2 = type(ls)(lopt2, **CASES[case])
    ls2.load_state_dict(saved)
    lopt2.load_state_dict(lopt.state_dict())  # undo the constructor's step on the groups
    step_and_compare(ls2, ts, lopt2, topt, EPOCHS - 15)


def test_resume_with_last_epoch_uses_closed_form():
    lopt, topt = optimizers()
    for opt in (lopt, topt):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    ls, ts = L.CosineAnnealingLR(lopt, T_max=10, last_epoch=4), T.CosineAnnealingLR(topt, T_max=10, last_epoch=4)
    step_and_compare(ls, ts, lopt, topt, 20)
    lopt, _ = optimizers()
    with pytest.raises(KeyError, match="initial_lr"):
        L.StepLR(lopt, 3, last_epoch=2)


@pytest.mark.parametrize("options", [dict(), dict(mode="max", factor=0.5, patience=2, cooldown=3),
                                     dict(threshold_mode="abs", threshold=0.05, patience=1, min_lr=[0.01, 0.005]),
                                     dict(mode="max", threshold_mode="abs", patience=0, min_lr=0.004)])
def test_reduce_lr_on_plateau_matches_torch(options):
    lopt, topt = optimizers()
    ls, ts = L.ReduceLROnPlateau(lopt, **options), T.ReduceLROnPlateau(topt, **options)
    metrics = [1.0, 0.9, 0.9, 0.95, 0.91, 0.899, 0.9, 0.9, 0.9, 0.5] * 5
    for i, m in enumerate(metrics):
        ls.step(m)
        ts.step(m)
        assert ls.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-14), i
        if i == 20:  # round trip through state_dict mid-run
            fresh = L.ReduceLROnPlateau(lopt, **options)
            fresh.load_state_dict(ls.state_dict())
            ls = fresh
    assert ls.num_bad_epochs == ts.num_bad_epochs and ls.best == ts.best


def test_warmup_cosine():
    lopt, topt = optimizers()
    ls = L.warmup_cosine(lopt, warmup_steps=5, total_steps=30, min_factor=0.1)

    def factor(e):
        if e < 5:
            return e / 5
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (e - 5) / 25)))

    ts = T.LambdaLR(topt, factor)  # the same schedule through torch's LambdaLR
    lrs = [ls.get_last_lr()[0]]
    step_and_compare(ls, ts, lopt, topt, EPOCHS)
    lrs += [factor(e) * 0.1 for e in range(1, EPOCHS + 1)]
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="warmup_steps"):
        L.warmup_cosine(lopt, 10, 5)


def test_bad_arguments():
    lopt, _ = optimizers()
    with pytest.raises(TypeError, match="not an Optimizer"):
        L.StepLR(object(), 3)
    with pytest.raises(ValueError, match="total_steps"):
        L.OneCycleLR(lopt, max_lr=0.1)
    with pytest.raises(ValueError, match="Factor"):
        L.ReduceLROnPlateau(lopt, factor=1.5)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        L.LinearLR(lopt, start_factor=0)
    ls = L.OneCycleLR(lopt, max_lr=0.1, total_steps=3)
    for _ in range(3):
        ls.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        ls.step()
