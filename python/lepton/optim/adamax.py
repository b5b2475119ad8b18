"""Adamax (torch.optim.Adamax; Kingma & Ba, 2015, section 7.1): Adam with the second moment
replaced by an exponentially weighted infinity norm of the gradients; weight decay and maximize.
Composed of tensor ops in torch's order."""

from lepton._creation import zeros_like
from lepton.optim.optimizer import Optimizer, check_range, lerp_, step_grad, torch_options


class Adamax(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        check_range("learning rate", lr)
        check_range("epsilon value", eps)
        check_range("beta parameter at index 0", betas[0], 0.0, 1.0)
        check_range("beta parameter at index 1", betas[1], 0.0, 1.0)
        check_range("weight_decay value", weight_decay)
        flags = torch_options("Adamax", foreach=foreach, differentiable=differentiable, capturable=capturable)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, **flags))

    def _step_group(self, group, params):
        beta1, beta2 = group["betas"]
        for p in params:
            state = self.state.setdefault(p, {})
            if not state:
                state.update(step=0, exp_avg=zeros_like(p), exp_inf=zeros_like(p))
            state["step"] += 1
            grad = step_grad(p, group)
            exp_avg = lerp_(state["exp_avg"], grad, 1 - beta1)
            exp_inf = state["exp_inf"]
            exp_inf.copy_(exp_inf.mul_(beta2).maximum(grad.abs().add_(group["eps"])))
            clr = group["lr"] / (1 - beta1 ** state["step"])
            p.add_(exp_avg / exp_inf, alpha=-clr)
