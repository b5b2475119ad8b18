"""copy.deepcopy for tensors (and so for whole models), with torch's rules: a leaf tensor is
cloned with its requires_grad, its .grad and its Parameter status; a tensor inside a graph
refuses, since its history cannot be copied. Tensors met twice in one deepcopy (tied weights)
stay one tensor, through deepcopy's memo."""

import copy

from lepton._C import Tensor


def _deepcopy(self, memo):
    if not self.is_leaf:
        raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                           "protocol at the moment; detach() it first")
    from lepton.nn.parameter import Parameter

    data = self.detach().clone()
    result = Parameter(data, self.requires_grad) if isinstance(self, Parameter) else data.requires_grad_(self.requires_grad)
    if self.grad is not None:
        result.grad = copy.deepcopy(self.grad, memo)
    return result


Tensor.__deepcopy__ = _deepcopy
