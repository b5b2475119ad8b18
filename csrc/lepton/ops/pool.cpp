// 2-d max/avg/adaptive-avg pooling (NCHW): torch's output-size rules and checks, the forward
// kernels, and backward nodes (max pooling routes each gradient to its saved argmax).
#include "lepton/core/error.h"
#include "lepton/ops/conv.h"
#include "lepton/ops/grad.h"
#include "lepton/ops/iter.h"
#include "lepton/ops/pool_kernels.h"

namespace lepton {

KernelTable<const PoolKernels*> pool_kernels("pool");

}  // namespace lepton

namespace lepton::ops {

namespace {

const PoolKernels* pool_kernel(const Tensor& t, const char* op) {
  use_device(t.device());
  return pool_kernels.get(t.device().type, t.dtype(), op);
}

// A 16-bit input on a device without 16-bit pooling kernels (the CPU) is pooled in float32 and
// rounded back: exact for max pooling, as accurate as the 16-bit result can be for averages.
bool via_float32(const Tensor& x) {
  return (x.dtype() == DType::Float16 || x.dtype() == DType::BFloat16) && !pool_kernels.has(x.device().type, x.dtype());
}
Tensor with_dtype(const Tensor& x, DType dtype) { return to(x, x.device(), dtype, false); }

void check_input(const Tensor& x, const char* op) {
  LEPTON_CHECK(is_floating(x.dtype()), Type, op, ": input must be a floating-point tensor, got ",
               dtype_name(x.dtype()));
  LEPTON_CHECK((x.dim() == 3 || x.dim() == 4) && x.size(-1) > 0 && x.size(-2) > 0 && x.size(-3) > 0, Value, op,
               ": expected a 3-D [C, H, W] or 4-D [N, C, H, W] input with non-zero C, H and W, got input of shape ",
               shape_str(x.shape()));
}

// torch's pooling_output_shape: windows start inside the input or its leading padding.
int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation, bool ceil_mode) {
  const int64_t num = in + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// Checks the options of max/avg pooling over a 4-D x and returns the geometry.
PoolGeometry window_geometry(const Tensor& x, const Pool2dOptions& o, const char* op) {
  for (int d = 0; d < 2; ++d) {
    LEPTON_CHECK(o.kernel[d] > 0, Value, op, ": kernel_size must be positive, got (", o.kernel[0], ", ", o.kernel[1],
                 ")");
    LEPTON_CHECK(o.stride[d] > 0, Value, op, ": stride must be positive, got (", o.stride[0], ", ", o.stride[1], ")");
    LEPTON_CHECK(o.dilation[d] > 0, Value, op, ": dilation must be positive, got (", o.dilation[0], ", ",
                 o.dilation[1], ")");
    LEPTON_CHECK(o.padding[d] >= 0 && o.padding[d] <= o.kernel[d] / 2, Value, op,
                 ": padding should be at least 0 and at most half of kernel size, got padding (", o.padding[0], ", ",
                 o.padding[1], ") for kernel_size (", o.kernel[0], ", ", o.kernel[1], ")");
  }
  PoolGeometry g;
  g.planes = x.size(0) * x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.kh = o.kernel[0], g.kw = o.kernel[1], g.stride_h = o.stride[0], g.stride_w = o.stride[1];
  g.pad_h = o.padding[0], g.pad_w = o.padding[1], g.dilation_h = o.dilation[0], g.dilation_w = o.dilation[1];
  g.oh = pooled_size(g.h, g.kh, g.pad_h, g.stride_h, g.dilation_h, o.ceil_mode);
  g.ow = pooled_size(g.w, g.kw, g.pad_w, g.stride_w, g.dilation_w, o.ceil_mode);
  LEPTON_CHECK(g.oh > 0 && g.ow > 0, Value, op, ": input of shape ", shape_str(x.shape()),
               " is too small for kernel_size (", o.kernel[0], ", ", o.kernel[1], ") with dilation (", o.dilation[0],
               ", ", o.dilation[1], ") and padding (", o.padding[0], ", ", o.padding[1], "): the output would be ", g.oh,
               "x", g.ow);
  return g;
}

// Runs `pool` on x as a batch: a 3-D input goes in with a batch of one and comes out without it.
template <class F>
auto batched(const Tensor& x, F&& pool) {
  return x.dim() == 4 ? pool(x) : pool(unsqueeze(x, 0));
}
Tensor unbatch(const Tensor& y, const Tensor& x) { return x.dim() == 4 ? y : squeeze(y, Dims{0}); }

// The backward kernels are not differentiable themselves.
void refuse_double_backward(const char* op) {
  LEPTON_CHECK(!autograd::grad_enabled(), NotImplemented, op,
               ": double backward (create_graph=True) is not supported by the pooling kernels");
}

// Forward of a mean-pooling kernel (avg or adaptive avg) with its backward node.
Tensor mean_pool(const Tensor& x, const PoolArgs& base, PoolFn forward, PoolFn backward, const char* name) {
  Tensor y = Tensor::empty({x.size(0), x.size(1), base.g.oh, base.g.ow}, x.dtype(), x.device());
  if (y.numel()) {
    autograd::NoGradGuard no_grad;
    const Tensor xc = contiguous(x);
    PoolArgs a = base;
    a.x = xc.data_ptr(), a.y = y.data_ptr();
    forward(a);
  }
  if (autograd::needs_grad({&x})) {
    const Shape shape = x.shape();
    autograd::record(name, {&x}, {&y}, [=](const autograd::Node&, autograd::TensorList& grads) {
      refuse_double_backward(name);
      const Tensor gy = contiguous(grads[0]);
      Tensor gx = Tensor::empty(shape, gy.dtype(), gy.device());
      PoolArgs a = base;
      a.grad_y = gy.data_ptr(), a.grad_x = gx.data_ptr();
      if (gx.numel()) backward(a);
      return autograd::TensorList{gx};
    });
  }
  return y;
}

}  // namespace

namespace {

// Max pooling; the indices are computed when asked for or needed by backward (else undefined).
std::pair<Tensor, Tensor> max_pool(const Tensor& x0, const Pool2dOptions& o, bool want_indices) {
  check_input(x0, "max_pool2d");
  if (via_float32(x0)) {
    const auto [y, idx] = max_pool(with_dtype(x0, DType::Float32), o, want_indices);
    return {with_dtype(y, x0.dtype()), idx};
  }
  auto [y, idx] = batched(x0, [&](const Tensor& x) {
    const PoolGeometry g = window_geometry(x, o, "max_pool2d");
    const PoolKernels* k = pool_kernel(x, "max_pool2d");
    const bool grad = autograd::needs_grad({&x});
    Tensor y = Tensor::empty({x.size(0), x.size(1), g.oh, g.ow}, x.dtype(), x.device());
    Tensor idx = want_indices || grad ? Tensor::empty(y.shape(), DType::Int64, x.device()) : Tensor();
    if (y.numel()) {
      autograd::NoGradGuard no_grad;
      const Tensor xc = contiguous(x);
      PoolArgs a;
      a.g = g, a.x = xc.data_ptr(), a.y = y.data_ptr(), a.indices = idx.defined() ? idx.data<int64_t>() : nullptr;
      k->max_forward(a);
    }
    if (grad) {
      const autograd::SavedTensor si(idx, false);
      const Shape shape = x.shape();
      autograd::record("max_pool2d_backward", {&x}, {&y}, [=](const autograd::Node& self, autograd::TensorList& grads) {
        refuse_double_backward("max_pool2d");
        const Tensor gy = contiguous(grads[0]), indices = si.unpack(self);
        Tensor gx = Tensor::empty(shape, gy.dtype(), gy.device());
        PoolArgs a;
        a.g = g, a.grad_y = gy.data_ptr(), a.grad_x = gx.data_ptr(), a.indices = indices.data<int64_t>();
        if (gx.numel()) k->max_backward(a);
        return autograd::TensorList{gx};
      });
    }
    return std::pair<Tensor, Tensor>{y, idx};
  });
  return {unbatch(y, x0), idx.defined() ? unbatch(idx, x0) : idx};
}

}  // namespace

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, const Pool2dOptions& o) {
  return max_pool(x, o, true);
}

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& o) { return max_pool(x, o, false).first; }

Tensor avg_pool2d(const Tensor& x0, const Pool2dOptions& o) {
  check_input(x0, "avg_pool2d");
  LEPTON_CHECK(o.dilation[0] == 1 && o.dilation[1] == 1, Value, "avg_pool2d: dilation is not supported");
  if (via_float32(x0)) return with_dtype(avg_pool2d(with_dtype(x0, DType::Float32), o), x0.dtype());
  return unbatch(batched(x0, [&](const Tensor& x) {
    PoolArgs a;
    a.g = window_geometry(x, o, "avg_pool2d");
    a.count_include_pad = o.count_include_pad, a.divisor_override = o.divisor_override;
    const PoolKernels* k = pool_kernel(x, "avg_pool2d");
    return mean_pool(x, a, k->avg_forward, k->avg_backward, "avg_pool2d_backward");
  }), x0);
}

Tensor adaptive_avg_pool2d(const Tensor& x0, int64_t out_h, int64_t out_w) {
  check_input(x0, "adaptive_avg_pool2d");
  LEPTON_CHECK(out_h >= 0 && out_w >= 0, Value, "adaptive_avg_pool2d: output_size must be non-negative, got (", out_h,
               ", ", out_w, ")");
  if (via_float32(x0)) return with_dtype(adaptive_avg_pool2d(with_dtype(x0, DType::Float32), out_h, out_w), x0.dtype());
  return unbatch(batched(x0, [&](const Tensor& x) {
    PoolArgs a;
    a.g.planes = x.size(0) * x.size(1), a.g.h = x.size(2), a.g.w = x.size(3), a.g.oh = out_h, a.g.ow = out_w;
    const PoolKernels* k = pool_kernel(x, "adaptive_avg_pool2d");
    return mean_pool(x, a, k->adaptive_avg_forward, k->adaptive_avg_backward, "adaptive_avg_pool2d_backward");
  }), x0);
}

}  // namespace lepton::ops
