"""Conv2d (NCHW), with torch's arguments, checks, initialisation and repr."""

from collections.abc import Iterable

from lepton import _C
from lepton.nn import functional as F, init
from lepton.nn.modules.module import Module
from lepton.nn.parameter import Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(v):
    return tuple(v) if isinstance(v, Iterable) else (v, v)


class Conv2d(Module):
    """2-d convolution over [N, C_in, H, W] (or [C_in, H, W]) inputs; weight [C_out, C_in / groups, kH, kW].

    padding is an int, a pair, or 'valid' / 'same' (stride 1 only); padding_mode 'zeros' pads in
    the kernel, 'reflect' / 'replicate' / 'circular' pad the input with F.pad first, as torch does.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        stride = _pair(stride)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = _pair(padding)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(_PADDING_MODES)}, "
                             f"but got padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), stride, _pair(dilation)
        self.padding = padding
        self.transposed, self.output_padding = False, (0, 0)
        self.groups, self.padding_mode = groups, padding_mode
        self.weight = Parameter(_C.empty((out_channels, in_channels // groups, *self.kernel_size), dtype=dtype,
                                         device=device))
        if bias:
            self.bias = Parameter(_C.empty((out_channels,), dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init._default_layer_init_(self.weight, self.bias)

    def _input_pads(self):
        """F.pad's (left, right, top, bottom) for this layer's padding."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":  # the odd one goes after, as torch does
            (th, tw) = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        return (self.padding[1], self.padding[1], self.padding[0], self.padding[0])

    def forward(self, input):
        if self.padding_mode != "zeros":
            return F.conv2d(F.pad(input, self._input_pads(), mode=self.padding_mode), self.weight, self.bias,
                            self.stride, 0, self.dilation, self.groups)
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if isinstance(self.padding, str) or self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
