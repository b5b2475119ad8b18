"""RMSprop (torch.optim.RMSprop: centered, momentum, weight decay, maximize), composed of
tensor ops in torch's order (no fused kernel yet)."""

from lepton._creation import zeros_like
from lepton.optim.optimizer import Optimizer, check_range, lerp_, step_grad, torch_options


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        check_range("learning rate", lr)
        check_range("epsilon value", eps)
        check_range("momentum value", momentum)
        check_range("weight_decay value", weight_decay)
        check_range("alpha value", alpha)
        flags = torch_options("RMSprop", capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize, **flags))

    def _step_group(self, group, params):
        alpha, lr, momentum = group["alpha"], group["lr"], group["momentum"]
        for p in params:
            state = self.state.setdefault(p, {})
            if not state:
                state.update(step=0, square_avg=zeros_like(p))
                if momentum > 0:
                    state["momentum_buffer"] = zeros_like(p)
                if group["centered"]:
                    state["grad_avg"] = zeros_like(p)
            state["step"] += 1
            grad = step_grad(p, group)
            square_avg = state["square_avg"].mul_(alpha).add_(grad * (1 - alpha) * grad)
            if group["centered"]:
                grad_avg = lerp_(state["grad_avg"], grad, 1 - alpha)
                avg = (square_avg - grad_avg * grad_avg).sqrt_().add_(group["eps"])
            else:
                avg = square_avg.sqrt().add_(group["eps"])
            if momentum > 0:
                buf = state["momentum_buffer"].mul_(momentum).add_(grad / avg)
                p.add_(buf, alpha=-lr)
            else:
                p.add_(grad / avg, alpha=-lr)
