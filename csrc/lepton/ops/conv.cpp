// 2-d convolution (NCHW): shape checks, the forward kernel, and a backward node that runs the
// backward-data and backward-weight kernels (the bias gradient comes with the weight's).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/conv.h"
#include "lepton/ops/conv_kernels.h"
#include "lepton/ops/grad.h"
#include "lepton/ops/iter.h"

namespace lepton {

KernelTable<const ConvKernels*> conv_kernels("conv");

}  // namespace lepton

namespace lepton::ops {

namespace {

std::atomic<bool> g_reference{[] {
  const char* v = std::getenv("LEPTON_CONV");
  return v && !std::strcmp(v, "reference");
}()};

const ConvFns& conv_fns(const Tensor& t) {
  use_device(t.device());
  const ConvKernels* k = conv_kernels.get(t.device().type, t.dtype(), "conv2d");
  return g_reference ? k->reference : k->fast;
}

ConvArgs make_args(const ConvGeometry& g, const Tensor& like) {
  ConvArgs a;
  a.g = g;
  a.gemm = gemm_kernels.get(like.device().type, like.dtype(), "conv2d");
  return a;
}

void check_operand(const Tensor& x, const Tensor& t, const char* what) {
  LEPTON_CHECK(t.dtype() == x.dtype(), Type, "conv2d: expected ", what, " to have the input's dtype ",
               dtype_name(x.dtype()), ", got ", dtype_name(t.dtype()));
  LEPTON_CHECK(t.device() == x.device(), Value, "conv2d: expected ", what, " on the input's device ", x.device().str(),
               ", got ", t.device().str());
}

// Checks the arguments of a batched conv2d and returns its geometry.
ConvGeometry geometry(const Tensor& x, const Tensor& w, const std::optional<Tensor>& bias, const Conv2dOptions& o) {
  LEPTON_CHECK(is_floating(x.dtype()), Type, "conv2d: input must be a floating-point tensor, got ",
               dtype_name(x.dtype()));
  check_operand(x, w, "weight");
  LEPTON_CHECK(w.dim() == 4, Value, "conv2d: expected a 4-D weight [out_channels, in_channels / groups, kH, kW], got ",
               "weight of shape ", shape_str(w.shape()));
  for (int d = 0; d < 2; ++d) {
    LEPTON_CHECK(o.stride[d] > 0, Value, "conv2d: stride must be positive, got (", o.stride[0], ", ", o.stride[1], ")");
    LEPTON_CHECK(o.dilation[d] > 0, Value, "conv2d: dilation must be positive, got (", o.dilation[0], ", ",
                 o.dilation[1], ")");
    LEPTON_CHECK(o.padding[d] >= 0, Value, "conv2d: padding must be non-negative, got (", o.padding[0], ", ",
                 o.padding[1], ")");
  }
  LEPTON_CHECK(o.groups > 0, Value, "conv2d: groups must be a positive integer, got ", o.groups);
  LEPTON_CHECK(!o.same || (o.stride[0] == 1 && o.stride[1] == 1), Value,
               "conv2d: padding='same' is not supported for strided convolutions, got stride (", o.stride[0], ", ",
               o.stride[1], ")");
  LEPTON_CHECK(w.size(0) % o.groups == 0, Value, "conv2d: out_channels of weight ", shape_str(w.shape()),
               " must be divisible by groups=", o.groups);
  LEPTON_CHECK(x.size(1) == w.size(1) * o.groups, Value, "conv2d: given groups=", o.groups, ", weight of shape ",
               shape_str(w.shape()), " expects input with ", w.size(1) * o.groups, " channels, but input of shape ",
               shape_str(x.shape()), " has ", x.size(1));
  if (bias) {
    check_operand(x, *bias, "bias");
    LEPTON_CHECK(bias->dim() == 1 && bias->size(0) == w.size(0), Value, "conv2d: expected bias of shape [",
                 w.size(0), "] for weight of shape ", shape_str(w.shape()), ", got ", shape_str(bias->shape()));
  }
  ConvGeometry g;
  g.n = x.size(0), g.c_in = x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.c_out = w.size(0), g.kh = w.size(2), g.kw = w.size(3);
  g.stride_h = o.stride[0], g.stride_w = o.stride[1];
  g.dilation_h = o.dilation[0], g.dilation_w = o.dilation[1];
  g.groups = o.groups;
  const int64_t in[2] = {g.h, g.w}, k[2] = {g.kh, g.kw};
  int64_t out[2], pad[2];
  for (int d = 0; d < 2; ++d) {
    const int64_t span = o.dilation[d] * (k[d] - 1);  // the kernel's extent minus one
    pad[d] = o.same ? span / 2 : o.padding[d];
    const int64_t padded = in[d] + (o.same ? span : 2 * o.padding[d]);
    LEPTON_CHECK(k[d] > 0 && padded >= span + 1, Value, "conv2d: kernel of weight ", shape_str(w.shape()),
                 " (dilated size ", o.dilation[0] * (g.kh - 1) + 1, "x", o.dilation[1] * (g.kw - 1) + 1,
                 ") is larger than the padded input (", g.h + (o.same ? 0 : 2 * o.padding[0]), "x",
                 g.w + (o.same ? 0 : 2 * o.padding[1]), ") of input ", shape_str(x.shape()));
    out[d] = (padded - span - 1) / o.stride[d] + 1;
  }
  g.pad_h = pad[0], g.pad_w = pad[1], g.oh = out[0], g.ow = out[1];
  return g;
}

// The fused backward kernels are not differentiable themselves.
void refuse_double_backward() {
  LEPTON_CHECK(!autograd::grad_enabled(), NotImplemented,
               "conv2d: double backward (create_graph=True) is not supported by the conv kernels");
}

}  // namespace

void set_conv_reference(bool on) { g_reference = on; }
bool conv_reference() { return g_reference; }

Tensor conv2d(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias, const Conv2dOptions& o) {
  if (auto dt = autocast::target("conv2d", {&x, &weight, bias ? &*bias : nullptr})) {
    autocast::Suspend off;
    return conv2d(autocast::cast(x, *dt), autocast::cast(weight, *dt), autocast::cast(bias, *dt), o);
  }
  // 16-bit operands on a device without 16-bit conv kernels (the CPU) compute in float32 and
  // round the output once; the casts are recorded, so gradients come back in 16 bits.
  if (autocast::is_16bit(x.dtype()) && weight.dtype() == x.dtype() && !conv_kernels.has(x.device().type, x.dtype())) {
    const DType f = DType::Float32;
    return to(conv2d(to(x, std::nullopt, f, false), to(weight, std::nullopt, f, false), autocast::cast(bias, f), o),
              std::nullopt, x.dtype(), false);
  }
  LEPTON_CHECK(x.dim() == 3 || x.dim() == 4, Value,
               "conv2d: expected a 3-D (unbatched) or 4-D (batched) input, got input of shape ", shape_str(x.shape()));
  if (x.dim() == 3) return squeeze(conv2d(unsqueeze(x, 0), weight, bias, o), Dims{0});
  const ConvGeometry g = geometry(x, weight, bias, o);
  Tensor y = Tensor::empty({g.n, g.c_out, g.oh, g.ow}, x.dtype(), x.device());
  if (y.numel()) {
    autograd::NoGradGuard no_grad;
    const Tensor xc = contiguous(x), wc = contiguous(weight);
    Tensor bc;
    if (bias) bc = contiguous(*bias);
    ConvArgs a = make_args(g, x);
    a.x = xc.data_ptr(), a.weight = wc.data_ptr(), a.bias = bc.defined() ? bc.data_ptr() : nullptr, a.y = y.data_ptr();
    conv_fns(x).forward(a);
  }
  const Tensor none;
  const Tensor& b = bias ? *bias : none;
  if (!autograd::needs_grad({&x, &weight, &b})) return y;
  const bool need_x = autograd::requires_grad(x), need_w = autograd::requires_grad(weight),
             need_b = b.defined() && autograd::requires_grad(b);
  // grad_x needs only the weight, grad_weight only the input
  const autograd::SavedTensor sx = need_w ? autograd::SavedTensor(x, false) : autograd::SavedTensor();
  const autograd::SavedTensor sw = need_x ? autograd::SavedTensor(weight, false) : autograd::SavedTensor();
  const Shape x_shape = x.shape(), w_shape = weight.shape();
  autograd::record("conv2d_backward", {&x, &weight, &b}, {&y},
                   [=](const autograd::Node& self, autograd::TensorList& grads) -> autograd::TensorList {
    refuse_double_backward();
    const Tensor gy = contiguous(grads[0]);
    Tensor gx, gw, gb;
    if (need_x) {
      gx = Tensor::empty(x_shape, gy.dtype(), gy.device());
      const Tensor wc = contiguous(sw.unpack(self));
      ConvArgs a = make_args(g, gy);
      a.grad_y = gy.data_ptr(), a.weight = wc.data_ptr(), a.grad_x = gx.data_ptr();
      if (gx.numel()) conv_fns(gy).backward_data(a);
    }
    if (need_w) {  // the bias gradient comes with the weight's
      gw = Tensor::empty(w_shape, gy.dtype(), gy.device());
      if (need_b) gb = Tensor::empty({g.c_out}, gy.dtype(), gy.device());
      const Tensor xc = contiguous(sx.unpack(self));
      ConvArgs a = make_args(g, gy);
      a.x = xc.data_ptr(), a.grad_y = gy.data_ptr(), a.grad_weight = gw.data_ptr();
      a.grad_bias = need_b ? gb.data_ptr() : nullptr;
      if (gw.numel() || need_b) conv_fns(gy).backward_weight(a);
    } else if (need_b) {
      gb = reduce(ReduceOp::Sum, gy, {0, 2, 3}, false);
    }
    return {gx, gw, gb};
  });
  return y;
}

}  // namespace lepton::ops
