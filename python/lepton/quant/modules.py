"""Quantised layers: int8 weights with per-output-channel scales, float32 in and out."""

from lepton import _C
from lepton.nn import functional as F
from lepton.nn.modules.module import Module


def quantize_per_channel(weight):
    """(int8 [out, in], float32 scales [out]) for a float weight [out, ...] flattened per output channel:
    w ≈ q · scale with scale = max|w_row| / 127 (symmetric, round half to even)."""
    fan_in = 1
    for d in weight.shape[1:]:
        fan_in *= d
    w = weight.detach().float().contiguous().reshape([weight.shape[0], fan_in])
    return _C.quantize_rows_int8(w)


class _Int8Weights(Module):
    """Holds weight (int8 [out, in]), weight_scale and bias as buffers, so that state_dict and
    load_state_dict carry them; the packed GEMM layout is rebuilt whenever weight changes."""

    def __init__(self, q, scale, bias, weight_only, relu=False):
        super().__init__()
        self.weight_only, self.relu = weight_only, relu
        self.register_buffer("weight", q)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if bias is None else bias.detach().float().contiguous())
        object.__setattr__(self, "_pack_cache", (None, None))  # (key, packed): not module state

    def _packed(self):
        w = self._buffers["weight"]  # not self.weight: Module.__getattr__ costs a recurrent step ~1 µs
        key = (id(w), w._version)
        if self._pack_cache[0] != key:
            object.__setattr__(self, "_pack_cache", (key, _C.int8_pack_weight(w)))
        return self._pack_cache[1]

    @property
    def dtype(self):
        """The dtype it takes and returns (float32), as a float layer's weight.dtype tells."""
        return _C.dtype.float32

    @property
    def device(self):
        return self.weight.device

    def linear(self, x, bias=None, relu=False):
        """x [..., in] float32 -> x·Wᵀ + bias [..., out] (then ReLU)."""
        if self.weight_only:
            y = F.linear(x, self.weight.float() * self.weight_scale.unsqueeze(1), bias)
            return y.relu() if relu else y
        return _C.int8_linear(x, self._packed(), self._buffers["weight_scale"], bias, relu)

    def _matmul(self, x2):
        """x2 [m, in] float32 -> [m, out] with the bias (and ReLU, when fused) applied."""
        return self.linear(x2, self.bias, self.relu)

    def extra_repr(self):
        mode = "weight_only" if self.weight_only else "dynamic"
        return f"{mode}=int8, relu={self.relu}"


class QuantizedLinear(_Int8Weights):
    """nn.Linear with int8 weights; inputs [..., in_features] float32."""

    def __init__(self, in_features, out_features, q, scale, bias=None, weight_only=False, relu=False):
        super().__init__(q, scale, bias, weight_only, relu)
        self.in_features, self.out_features = in_features, out_features

    @classmethod
    def from_float(cls, linear, weight_only=False):
        q, scale = quantize_per_channel(linear.weight)
        return cls(linear.in_features, linear.out_features, q, scale, linear.bias, weight_only)

    def forward(self, input):
        if input.shape[-1] != self.in_features:
            raise ValueError(f"QuantizedLinear: expected input [..., {self.in_features}], got {list(input.shape)}")
        return self._matmul(input.float())

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " + super().extra_repr()


class QuantizedConv2d(_Int8Weights):
    """nn.Conv2d (groups=1, any padding_mode) with int8 weights: pad, im2col, then the int8 GEMM."""

    def __init__(self, conv, q, scale, weight_only=False):
        super().__init__(q, scale, conv.bias, weight_only)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.dilation = conv.kernel_size, conv.stride, conv.dilation
        self.padding = conv.padding
        self.pads = conv._input_pads()  # (left, right, top, bottom), for F.pad
        self.pad_mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode

    @classmethod
    def from_float(cls, conv, weight_only=False):
        if conv.groups != 1:
            raise ValueError(f"QuantizedConv2d: only groups=1 is supported, got groups={conv.groups}")
        q, scale = quantize_per_channel(conv.weight)
        return cls(conv, q, scale, weight_only)

    def forward(self, input):
        x = input.float()
        unbatched = x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"QuantizedConv2d: expected input [N, {self.in_channels}, H, W], got {list(input.shape)}")
        if any(self.pads):
            x = F.pad(x, self.pads, mode=self.pad_mode)
        n, c = x.shape[:2]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        hp, wp = x.shape[2], x.shape[3]
        oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
        if oh <= 0 or ow <= 0:
            raise ValueError(f"QuantizedConv2d: input {list(input.shape)} is smaller than the kernel "
                             f"{self.kernel_size}")
        # im2col: columns ordered (c, i, j) like the flattened weight [out, c·kh·kw]
        patches = [x[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                   for i in range(kh) for j in range(kw)]
        cols = _C.stack(patches, 2).reshape([n, c * kh * kw, oh * ow]).transpose(1, 2).reshape([n * oh * ow, -1])
        y = self._matmul(cols).reshape([n, oh, ow, self.out_channels]).permute(0, 3, 1, 2).contiguous()
        return y.squeeze(0) if unbatched else y

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                + super().extra_repr())
