"""SGD with momentum, dampening, Nesterov, weight decay and maximize (torch.optim.SGD), one
fused kernel call per device and dtype (whatever foreach/fused say, see optimizer.torch_options);
float16/bfloat16 params step float32 master weights (master_weights=True, see
lepton.optim.optimizer)."""

from lepton import _C
from lepton._creation import empty_like
from lepton.optim.optimizer import (Optimizer, by_device_and_dtype, check_range, grads_of, masters_of, state_dtype,
                                    torch_options)


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None, master_weights=True):
        check_range("learning rate", lr)
        check_range("momentum value", momentum)
        check_range("weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        flags = torch_options("SGD", foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, master_weights=master_weights, **flags))

    def _step_group(self, group, params):
        options = dict(lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
                       weight_decay=group["weight_decay"], nesterov=group["nesterov"], maximize=group["maximize"])
        if group["momentum"] == 0:
            for batch in by_device_and_dtype(params):
                _C._fused_sgd_(batch, grads_of(batch), [], masters=masters_of(self, group, batch), **options)
            return
        # A param's first step starts its buffer from the gradient (no dampening), as torch does.
        fresh = [p for p in params if "momentum_buffer" not in self.state.get(p, {})]
        for p in fresh:
            self.state.setdefault(p, {})["momentum_buffer"] = empty_like(p, dtype=state_dtype(group, p))
        fresh_ids = {id(p) for p in fresh}
        for first in (True, False):
            for batch in by_device_and_dtype([p for p in params if (id(p) in fresh_ids) == first]):
                buffers = [self.state[p]["momentum_buffer"] for p in batch]
                _C._fused_sgd_(batch, grads_of(batch), buffers, is_first_step=first,
                               masters=masters_of(self, group, batch), **options)
