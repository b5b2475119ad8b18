"""Activation layers: module forms of the functions in lepton.nn.functional."""

from lepton.nn import functional as F
from lepton.nn.modules.module import Module


class _InplaceActivation(Module):
    """An elementwise activation F.<fn>(input, inplace)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return type(self)._fn(input, self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_InplaceActivation):
    _fn = F.relu


class SiLU(_InplaceActivation):
    _fn = F.silu


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class _SoftmaxAlongDim(Module):
    """F.<fn>(input, dim); dim=None picks torch's legacy implicit dim with a warning."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return type(self)._fn(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_SoftmaxAlongDim):
    _fn = F.softmax


class LogSoftmax(_SoftmaxAlongDim):
    _fn = F.log_softmax
