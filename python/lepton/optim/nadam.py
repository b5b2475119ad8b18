"""NAdam (torch.optim.NAdam; Dozat, 2016): Adam with Nesterov momentum, whose momentum
coefficient mu_t = beta1 * (1 - 0.96^(t * momentum_decay) / 2) warms up over the steps; L2 or
decoupled weight decay, maximize. Composed of tensor ops in torch's order.

state["mu_product"] (the product of the mu_t so far) is a Python float, as "step" is (torch
keeps both as 0-d tensors)."""

from lepton._creation import zeros_like
from lepton.optim.optimizer import Optimizer, check_range, lerp_, step_grad, torch_options


class NAdam(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        check_range("learning rate", lr)
        check_range("epsilon value", eps)
        check_range("beta parameter at index 0", betas[0], 0.0, 1.0)
        check_range("beta parameter at index 1", betas[1], 0.0, 1.0)
        check_range("weight_decay value", weight_decay)
        check_range("momentum_decay value", momentum_decay)
        flags = torch_options("NAdam", foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, **flags))

    def _step_group(self, group, params):
        (beta1, beta2), lr = group["betas"], group["lr"]
        for p in params:
            state = self.state.setdefault(p, {})
            if not state:
                state.update(step=0, mu_product=1.0, exp_avg=zeros_like(p), exp_avg_sq=zeros_like(p))
            state["step"] += 1
            step = state["step"]
            grad = step_grad(p, group)
            mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"]))
            mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"]))
            state["mu_product"] *= mu
            mu_product = state["mu_product"]
            exp_avg = lerp_(state["exp_avg"], grad, 1 - beta1)
            exp_avg_sq = state["exp_avg_sq"].mul_(beta2).add_(grad * grad, alpha=1 - beta2)
            denom = exp_avg_sq.div(1 - beta2 ** step).sqrt_().add_(group["eps"])
            p.add_(grad / denom, alpha=-lr * (1.0 - mu) / (1.0 - mu_product))
            p.add_(exp_avg / denom, alpha=-lr * mu_next / (1.0 - mu_product * mu_next))
