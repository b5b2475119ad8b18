"""Identity and Linear."""

from lepton import _C
from lepton.nn import functional as F, init
from lepton.nn.modules.module import Module
from lepton.nn.parameter import Parameter


class Identity(Module):
    """Returns its input unchanged; accepts and ignores constructor arguments, like torch.nn.Identity."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x·Wᵀ + b with W [out_features, in_features], initialised as torch does."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(_C.empty((out_features, in_features), dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(_C.empty((out_features,), dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init._default_layer_init_(self.weight, self.bias)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class NonDynamicallyQuantizableLinear(Linear):
    """torch's name for MultiheadAttention's output projection: a Linear (torch keeps it apart only
    to stop its dynamic quantiser), here so scripts that name it (safe_globals lists) find it."""
