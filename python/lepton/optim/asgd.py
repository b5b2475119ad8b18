"""ASGD (torch.optim.ASGD; Polyak & Juditsky, 1992): SGD with a decaying step size
eta_t = lr / (1 + lambd * lr * t)^alpha and a running average of the iterates, state["ax"],
which starts averaging after t0 steps; weight decay and maximize. Composed of tensor ops in
torch's order.

state["eta"] and state["mu"] (the averaging weight) are Python floats, as "step" is (torch keeps
them as 0-d tensors)."""

from lepton._creation import zeros_like
from lepton.optim.optimizer import Optimizer, check_range, step_grad, torch_options


class ASGD(Optimizer):
    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, foreach=None,
                 maximize=False, differentiable=False, capturable=False):
        check_range("learning rate", lr)
        check_range("weight_decay value", weight_decay)
        flags = torch_options("ASGD", foreach=foreach, differentiable=differentiable, capturable=capturable)
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                                      maximize=maximize, **flags))

    def _step_group(self, group, params):
        lr, lambd = group["lr"], group["lambd"]
        for p in params:
            state = self.state.setdefault(p, {})
            if not state:
                state.update(step=0, eta=float(lr), mu=1.0, ax=zeros_like(p))
            state["step"] += 1
            grad = step_grad(p, group)
            eta = state["eta"]
            p.mul_(1 - lambd * eta).add_(grad, alpha=-eta)
            if state["mu"] != 1:
                state["ax"].add_((p - state["ax"]) * state["mu"])
            else:
                state["ax"].copy_(p)
            state["eta"] = lr / (1 + lambd * lr * state["step"]) ** group["alpha"]
            state["mu"] = 1 / max(1, state["step"] - group["t0"])
