"""RAdam (torch.optim.RAdam; Liu et al., 2019): Adam whose adaptive step is switched on, with a
variance rectification factor, once the approximated SMA length rho_t exceeds 5 (before that, a
bias-corrected momentum step); L2 or decoupled weight decay, maximize. Composed of tensor ops in
torch's order."""

import math

from lepton._creation import zeros_like
from lepton.optim.optimizer import Optimizer, check_range, lerp_, step_grad, torch_options


class RAdam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False):
        check_range("learning rate", lr)
        check_range("epsilon value", eps)
        check_range("beta parameter at index 0", betas[0], 0.0, 1.0)
        check_range("beta parameter at index 1", betas[1], 0.0, 1.0)
        check_range("weight_decay value", weight_decay)
        flags = torch_options("RAdam", foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, **flags))

    def _step_group(self, group, params):
        (beta1, beta2), lr = group["betas"], group["lr"]
        rho_inf = 2 / (1 - beta2) - 1
        for p in params:
            state = self.state.setdefault(p, {})
            if not state:
                state.update(step=0, exp_avg=zeros_like(p), exp_avg_sq=zeros_like(p))
            state["step"] += 1
            step = state["step"]
            grad = step_grad(p, group)
            exp_avg = lerp_(state["exp_avg"], grad, 1 - beta1)
            exp_avg_sq = state["exp_avg_sq"].mul_(beta2).add_(grad * grad, alpha=1 - beta2)
            bias_correction2 = 1 - beta2 ** step
            update = exp_avg / (1 - beta1 ** step) * lr
            rho_t = rho_inf - 2 * step * beta2 ** step / bias_correction2
            if rho_t > 5.0:
                rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                update = update * (math.sqrt(bias_correction2) / exp_avg_sq.sqrt().add_(group["eps"])) * rect
            p.sub_(update)
