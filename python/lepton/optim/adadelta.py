"""Adadelta (torch.optim.Adadelta; Zeiler, 2012): a step scaled by the ratio of the running RMS
of past updates to that of the gradients, times lr; weight decay and maximize. Composed of tensor
ops in torch's order."""

from lepton._creation import zeros_like
from lepton.optim.optimizer import Optimizer, check_range, step_grad, torch_options


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        check_range("learning rate", lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        check_range("epsilon value", eps)
        check_range("weight_decay value", weight_decay)
        flags = torch_options("Adadelta", foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      **flags))

    def _step_group(self, group, params):
        rho, eps = group["rho"], group["eps"]
        for p in params:
            state = self.state.setdefault(p, {})
            if not state:
                state.update(step=0, square_avg=zeros_like(p), acc_delta=zeros_like(p))
            state["step"] += 1
            grad = step_grad(p, group)
            square_avg = state["square_avg"].mul_(rho).add_(grad * grad, alpha=1 - rho)
            delta = state["acc_delta"].add(eps).sqrt_().div_(square_avg.add(eps).sqrt_()).mul_(grad)
            state["acc_delta"].mul_(rho).add_(delta * delta, alpha=1 - rho)
            p.add_(delta, alpha=-group["lr"])
