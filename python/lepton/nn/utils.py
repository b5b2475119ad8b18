"""Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_)."""

import math

from lepton import _C
from lepton._C import Tensor
from lepton._creation import tensor
from lepton.autograd import no_grad


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scales all the gradients together so that their joint norm is at most max_norm; returns
    that norm (before clipping) as a 0-d tensor of the grads' dtype, on their device, like torch.
    One fused pass computes the norm of all the grads of one device and dtype, another scales
    them (always, by min(max_norm / (norm + 1e-6), 1) as torch does). Params without a grad
    are skipped; none at all gives tensor(0.). `foreach` is accepted for torch's signature: the
    fused multi-tensor path is the only one."""
    del foreach
    grads = _grads(parameters)
    if not grads:
        return tensor(0.0)
    norm_type = float(norm_type)
    dtype, device = grads[0].dtype, grads[0].device
    batches = {}
    for g in grads:  # one fused call per device and dtype
        batches.setdefault((str(g.device), g.dtype.name), []).append(g)
    norms = [_C._grad_norm(batch, norm_type) for batch in batches.values()]
    total = max(norms) if math.isinf(norm_type) else sum(n ** norm_type for n in norms) ** (1 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    total_t = tensor(total, dtype=dtype)
    # torch computes the coefficient in the grads' dtype and always multiplies
    coef = min(float(tensor(float(max_norm), dtype=dtype) / (total_t + 1e-6)), 1.0)
    with no_grad():
        for batch in batches.values():
            _C._foreach_mul_(batch, coef)
    return total_t if device.type == "cpu" else total_t.to(device)


def clip_grad_value_(parameters, clip_value):
    """Clamps every gradient element into [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            g.clamp_(-clip_value, clip_value)


from lepton.nn.fusion import fuse  # noqa: E402,F401  (inference-time BatchNorm folding and epilogue fusion)
