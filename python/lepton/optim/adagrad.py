"""Adagrad (torch.optim.Adagrad: lr decay, weight decay, initial accumulator, maximize),
composed of tensor ops in torch's order (no fused kernel yet)."""

from lepton._creation import full_like
from lepton.optim.optimizer import Optimizer, check_range, step_grad, torch_options


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        check_range("learning rate", lr)
        check_range("lr_decay value", lr_decay)
        check_range("weight_decay value", weight_decay)
        check_range("initial_accumulator_value value", initial_accumulator_value)
        check_range("epsilon value", eps)
        flags = torch_options("Adagrad", foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize,
                                      **flags))
        # torch creates the accumulators up front, so they are in state_dict() from the start
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group):
        return self.state.setdefault(p, dict(step=0, sum=full_like(p, group["initial_accumulator_value"])))

    def _step_group(self, group, params):
        for p in params:
            state = self._init_state(p, group)  # params added later start here
            state["step"] += 1
            grad = step_grad(p, group)
            clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
            std = state["sum"].add_(grad * grad).sqrt().add_(group["eps"])
            p.add_(grad / std, alpha=-clr)
