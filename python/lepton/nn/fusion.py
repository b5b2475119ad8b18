"""lepton.nn.utils.fuse: inference-time layer fusion for eval-mode models.

Inside every Sequential (at any depth): a BatchNorm right after a Linear or Conv2d is folded into
that layer's weight and bias (W' = W·γ/σ, b' = (b - μ)·γ/σ + β with the running statistics), and
a ReLU or GELU right after a Linear runs in the GEMM's epilogue (one pass over the output instead
of two). Folded layers are replaced by Identity so that indices and names of the others stay.
"""

import copy

from lepton import _C, _creation
from lepton.autograd import no_grad
from lepton.nn.modules.activation import GELU, ReLU
from lepton.nn.modules.containers import Sequential
from lepton.nn.modules.conv import Conv2d
from lepton.nn.modules.linear import Identity, Linear
from lepton.nn.modules.normalization import BatchNorm1d, BatchNorm2d
from lepton.nn.parameter import Parameter

__all__ = ["fuse", "LinearAct", "clone_module"]


def clone_module(model):
    """A deep copy of model with its own tensors (lepton tensors don't pickle, so copy.deepcopy
    gets each one's clone through its memo; parameters stay parameters, shared ones stay shared)."""
    memo = {}
    for m in model.modules():
        for store in (m._parameters, m._buffers):
            for t in store.values():
                if t is not None and id(t) not in memo:
                    clone = t.detach().clone()
                    memo[id(t)] = Parameter(clone, t.requires_grad) if isinstance(t, Parameter) else clone
    return copy.deepcopy(model, memo)


class LinearAct(Linear):
    """Linear whose activation ('relu' or 'gelu') is applied by the GEMM kernel's epilogue."""

    def __init__(self, linear, activation):
        super(Linear, self).__init__()
        self.in_features, self.out_features, self.activation = linear.in_features, linear.out_features, activation
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, input):
        return _C.linear(input, self.weight, self.bias, self.activation)

    def extra_repr(self):
        return super().extra_repr() + f", activation={self.activation}"


def _fold_bn(layer, bn):
    """Folds eval-mode bn into layer's weight and bias, in place."""
    if not bn.track_running_stats or bn.running_mean is None:
        raise ValueError("fuse: a BatchNorm without running statistics can't be folded")
    with no_grad():
        inv_std = (bn.running_var + bn.eps).rsqrt()
        gamma = bn.weight if bn.weight is not None else _creation.ones_like(inv_std)
        beta = bn.bias if bn.bias is not None else _creation.zeros_like(inv_std)
        factor = gamma * inv_std
        shape = [-1] + [1] * (layer.weight.dim() - 1)
        layer.weight.mul_(factor.reshape(shape).to(layer.weight.dtype))
        bias = layer.bias if layer.bias is not None else _creation.zeros_like(inv_std)
        new_bias = (bias - bn.running_mean) * factor + beta
        if layer.bias is None:
            layer.bias = Parameter(new_bias.to(layer.weight.dtype))
        else:
            layer.bias.copy_(new_bias)


def _fuse_sequential(seq):
    names = list(seq._modules)
    for i, name in enumerate(names):
        layer = seq._modules[name]
        nxt_name = names[i + 1] if i + 1 < len(names) else None
        nxt = seq._modules[nxt_name] if nxt_name else None
        if (type(layer) is Linear and type(nxt) is BatchNorm1d) or (type(layer) is Conv2d and type(nxt) is BatchNorm2d):
            _fold_bn(layer, nxt)
            seq._modules[nxt_name] = Identity()  # in place: a Sequential runs in this order
            # the activation may sit after the folded BatchNorm
            nxt_name = names[i + 2] if i + 2 < len(names) else None
            nxt = seq._modules[nxt_name] if nxt_name else None
        if type(layer) is Linear and type(nxt) in (ReLU, GELU) and getattr(nxt, "approximate", "none") == "none":
            seq._modules[name] = LinearAct(layer, "relu" if type(nxt) is ReLU else "gelu")
            seq._modules[nxt_name] = Identity()


def fuse(model, inplace=False):
    """An eval-mode copy of model (model itself with inplace=True) with BatchNorm folded into the
    preceding Linear/Conv2d and ReLU/GELU fused into the preceding Linear, inside Sequentials.
    For inference only: a fused model computes the eval-mode function, not the training one."""
    if not inplace:
        model = clone_module(model)
    model.eval()
    for m in list(model.modules()):
        if isinstance(m, Sequential):
            _fuse_sequential(m)
    return model
