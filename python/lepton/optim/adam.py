"""Adam and AdamW (torch.optim.Adam/AdamW: bias correction, amsgrad, maximize; L2 weight decay
for Adam, decoupled for AdamW and for Adam(decoupled_weight_decay=True)), one fused kernel call
per device and dtype, whatever foreach/fused say (see optimizer.torch_options). float16 and
bfloat16 params step float32 master weights with float32 state (master_weights=True, see
lepton.optim.optimizer), or with master_weights=False are stepped directly: computed in float32,
rounded once per update, with 16-bit state."""

from lepton import _C
from lepton._creation import zeros_like
from lepton.optim.optimizer import (Optimizer, by_device_and_dtype, check_range, grads_of, masters_of, state_dtype,
                                    torch_options)


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False, master_weights=True):
        check_range("learning rate", lr)
        check_range("epsilon value", eps)
        check_range("beta parameter at index 0", betas[0], 0.0, 1.0)
        check_range("beta parameter at index 1", betas[1], 0.0, 1.0)
        check_range("weight_decay value", weight_decay)
        flags = torch_options(type(self).__name__, foreach=foreach, capturable=capturable,
                              differentiable=differentiable, fused=fused)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
                                      master_weights=master_weights, **flags))

    def _step_group(self, group, params):
        amsgrad = group["amsgrad"]
        for p in params:
            state = self.state.setdefault(p, {})
            dtype = state_dtype(group, p)
            if "step" not in state:
                state.update(step=0, exp_avg=zeros_like(p, dtype=dtype), exp_avg_sq=zeros_like(p, dtype=dtype))
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = zeros_like(p, dtype=dtype)
            state["step"] += 1
        beta1, beta2 = group["betas"]
        step = _C._fused_adamw_ if group["decoupled_weight_decay"] else _C._fused_adam_
        for batch in by_device_and_dtype(params):
            states = [self.state[p] for p in batch]
            step(batch, grads_of(batch), [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                 [s["max_exp_avg_sq"] for s in states] if amsgrad else [], [s["step"] for s in states],
                 lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                 amsgrad=amsgrad, maximize=group["maximize"], masters=masters_of(self, group, batch))


class AdamW(Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
                 master_weights=True):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, master_weights=master_weights)
