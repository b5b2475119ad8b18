// Layer_norm and batch_norm: checks, the fused forward kernel, and a backward node that calls
// the fused backward kernel with the statistics the forward saved (mean and 1/std).
#include <atomic>

#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/iter.h"
#include "lepton/ops/norm.h"

namespace lepton {

KernelTable<const NormKernels*> norm_kernels("norm");

namespace ops {

namespace {

std::atomic<bool> g_reference{false};

// weight, bias and running statistics: `shape`, x's dtype and device (contiguous, for the kernel).
Tensor checked_param(const char* op, const char* what, const std::optional<Tensor>& t, const Shape& shape,
                     const Tensor& x) {
  if (!t) return Tensor();
  LEPTON_CHECK(t->shape() == shape, Value, op, ": expected ", what, " of shape ", shape_str(shape),
               " for input of shape ", shape_str(x.shape()), ", got ", shape_str(t->shape()));
  LEPTON_CHECK(t->dtype() == x.dtype(), Type, op, ": ", what, " is ", dtype_name(t->dtype()), " but the input is ",
               dtype_name(x.dtype()));
  LEPTON_CHECK(t->device() == x.device(), Value, op, ": ", what, " is on ", t->device().str(), " but the input is on ",
               x.device().str());
  return *t;
}

Tensor contiguous_no_grad(const Tensor& t) {
  if (!t.defined()) return t;
  autograd::NoGradGuard no_grad;
  return contiguous(t);
}

bool wants_grad(const Tensor& t) { return t.defined() && autograd::requires_grad(t); }

}  // namespace

void set_norm_reference(bool on) { g_reference = on; }

const NormKernels* norm_kernel(const Tensor& t, const char* op) {
  use_device(t.device());
  const NormKernels* k = norm_kernels.get(t.device().type, t.dtype(), op);
  return g_reference && k->reference ? k->reference : k;
}

double element_at(const Tensor& t, int64_t i) {
  autograd::NoGradGuard no_grad;
  const Tensor one = slice(reshape(t, {-1}), 0, i, i + 1, 1);
  return to(one, Device{}, DType::Float64, false).data<double>()[0];
}

void check_no_double_backward(const char* op) {
  LEPTON_CHECK(!autograd::grad_enabled(), NotImplemented, op,
               ": double backward (create_graph=True) is not supported by the fused kernel");
}

// ---- layer_norm ----------------------------------------------------------------------------

Tensor layer_norm(const Tensor& x0, const Shape& shape, const std::optional<Tensor>& weight0,
                  const std::optional<Tensor>& bias0, double eps) {
  constexpr const char* name = "layer_norm";
  if (auto dt = autocast::target(name, {&x0, weight0 ? &*weight0 : nullptr, bias0 ? &*bias0 : nullptr})) {
    autocast::Suspend off;
    return layer_norm(autocast::cast(x0, *dt), shape, autocast::cast(weight0, *dt), autocast::cast(bias0, *dt), eps);
  }
  LEPTON_CHECK(is_floating(x0.dtype()), Type, name, ": input must be a floating-point tensor, got ",
               dtype_name(x0.dtype()));
  LEPTON_CHECK(!shape.empty(), Value, name, ": normalized_shape must have at least one dimension");
  const int64_t k = int64_t(shape.size());
  bool match = x0.dim() >= k;
  for (int64_t i = 0; match && i < k; ++i) match = x0.shape()[x0.dim() - k + i] == shape[i];
  LEPTON_CHECK(match, Value, name, ": given normalized_shape=", shape_str(shape), ", expected input with shape [*, ",
               shape_str(shape).substr(1), ", but got input of size ", shape_str(x0.shape()));
  LEPTON_CHECK(eps >= 0, Value, name, ": eps must be non-negative, got ", eps);
  const Tensor w0 = checked_param(name, "weight", weight0, shape, x0);
  const Tensor b0 = checked_param(name, "bias", bias0, shape, x0);
  const int64_t cols = shape_numel(shape), rows = cols ? x0.numel() / cols : 0;
  const Tensor x = contiguous_no_grad(x0), w = contiguous_no_grad(w0), b = contiguous_no_grad(b0);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({rows}, x.dtype(), x.device()), rstd = Tensor::empty({rows}, x.dtype(), x.device());
  LayerNormArgs a;
  a.x = in_ptr(x), a.weight = in_ptr(w), a.bias = in_ptr(b);
  a.y = out_ptr(y), a.mean = out_ptr(mean), a.rstd = out_ptr(rstd);
  a.rows = rows, a.cols = cols, a.eps = eps;
  if (y.numel()) norm_kernel(x, name)->layer_norm_forward(a);
  if (autograd::needs_grad({&x0, &w0, &b0})) {
    const autograd::SavedTensor sx = saved_input(x), sw = saved_input(w);
    const autograd::SavedTensor sm = saved_input(mean), sr = saved_input(rstd);
    const bool need_x = wants_grad(x0), need_w = wants_grad(w0), need_b = wants_grad(b0);
    autograd::record("layer_norm_backward", {&x0, &w0, &b0}, {&y},
                     [sx, sw, sm, sr, a, shape, need_x, need_w, need_b](const autograd::Node& self,
                                                                         autograd::TensorList& g) {
      check_no_double_backward("layer_norm");
      const Tensor x = sx.unpack(self), w = sw.unpack(self), mean = sm.unpack(self), rstd = sr.unpack(self);
      const Tensor gy = contiguous(g[0]);
      Tensor gx, gw, gb;
      if (need_x) gx = Tensor::empty(x.shape(), x.dtype(), x.device());
      if (need_w) gw = Tensor::empty(shape, x.dtype(), x.device());
      if (need_b) gb = Tensor::empty(shape, x.dtype(), x.device());
      LayerNormArgs b = a;
      b.x = in_ptr(x), b.weight = in_ptr(w), b.mean = out_ptr(mean), b.rstd = out_ptr(rstd);
      b.y = nullptr, b.bias = nullptr;
      b.grad_y = in_ptr(gy), b.grad_x = out_ptr(gx), b.grad_weight = out_ptr(gw), b.grad_bias = out_ptr(gb);
      if (a.cols) norm_kernel(x, "layer_norm")->layer_norm_backward(b);
      return autograd::TensorList{gx, gw, gb};
    });
  }
  return y;
}

// ---- batch_norm ----------------------------------------------------------------------------

Tensor batch_norm(const Tensor& x0, const std::optional<Tensor>& running_mean0,
                  const std::optional<Tensor>& running_var0, const std::optional<Tensor>& weight0,
                  const std::optional<Tensor>& bias0, bool training, double momentum, double eps) {
  constexpr const char* name = "batch_norm";
  LEPTON_CHECK(is_floating(x0.dtype()), Type, name, ": input must be a floating-point tensor, got ",
               dtype_name(x0.dtype()));
  LEPTON_CHECK(x0.dim() >= 2, Value, name, ": expected input of shape [N, C, ...], got ", shape_str(x0.shape()));
  const int64_t N = x0.size(0), C = x0.size(1);
  int64_t L = 1;
  for (int64_t d = 2; d < x0.dim(); ++d) L *= x0.size(d);
  const Shape channels{C};
  const Tensor w0 = checked_param(name, "weight", weight0, channels, x0);
  const Tensor b0 = checked_param(name, "bias", bias0, channels, x0);
  const Tensor rm = checked_param(name, "running_mean", running_mean0, channels, x0);
  const Tensor rv = checked_param(name, "running_var", running_var0, channels, x0);
  LEPTON_CHECK(rm.defined() == rv.defined(), Value, name, ": running_mean and running_var must be given together");
  LEPTON_CHECK(training || rm.defined(), Value, name,
               ": running_mean and running_var are required when training=False");
  LEPTON_CHECK(!training || N * L > 1, Value, "Expected more than 1 value per channel when training, got input size ",
               shape_str(x0.shape()));
  LEPTON_CHECK(!rm.defined() || (rm.is_contiguous() && rv.is_contiguous()), Value, name,
               ": running_mean and running_var must be contiguous");
  LEPTON_CHECK(eps >= 0, Value, name, ": eps must be non-negative, got ", eps);
  const Tensor x = contiguous_no_grad(x0), w = contiguous_no_grad(w0), b = contiguous_no_grad(b0);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty(channels, x.dtype(), x.device()), rstd = Tensor::empty(channels, x.dtype(), x.device());
  BatchNormArgs a;
  a.x = in_ptr(x), a.weight = in_ptr(w), a.bias = in_ptr(b);
  a.running_mean = out_ptr(rm), a.running_var = out_ptr(rv);
  a.mean = out_ptr(mean), a.rstd = out_ptr(rstd), a.y = out_ptr(y);
  a.n = N, a.c = C, a.l = L, a.eps = eps, a.momentum = momentum, a.training = training;
  if (C) {
    if (training && rm.defined()) {
      rm.bump_version();
      rv.bump_version();
    }
    norm_kernel(x, name)->batch_norm_forward(a);
  }
  if (autograd::needs_grad({&x0, &w0, &b0})) {
    const autograd::SavedTensor sx = saved_input(x), sw = saved_input(w);
    const autograd::SavedTensor sm = saved_input(mean), sr = saved_input(rstd);
    const bool need_x = wants_grad(x0), need_w = wants_grad(w0), need_b = wants_grad(b0);
    a.running_mean = a.running_var = nullptr;
    autograd::record("batch_norm_backward", {&x0, &w0, &b0}, {&y},
                     [sx, sw, sm, sr, a, channels, need_x, need_w, need_b](const autograd::Node& self,
                                                                            autograd::TensorList& g) {
      check_no_double_backward("batch_norm");
      const Tensor x = sx.unpack(self), w = sw.unpack(self), mean = sm.unpack(self), rstd = sr.unpack(self);
      const Tensor gy = contiguous(g[0]);
      Tensor gx, gw, gb;
      if (need_x) gx = Tensor::empty(x.shape(), x.dtype(), x.device());
      if (need_w) gw = Tensor::empty(channels, x.dtype(), x.device());
      if (need_b) gb = Tensor::empty(channels, x.dtype(), x.device());
      BatchNormArgs b = a;
      b.x = in_ptr(x), b.weight = in_ptr(w), b.mean = out_ptr(mean), b.rstd = out_ptr(rstd);
      b.y = nullptr, b.bias = nullptr;
      b.grad_y = in_ptr(gy), b.grad_x = out_ptr(gx), b.grad_weight = out_ptr(gw), b.grad_bias = out_ptr(gb);
      if (a.c) norm_kernel(x, "batch_norm")->batch_norm_backward(b);
      return autograd::TensorList{gx, gw, gb};
    });
  }
  return y;
}

}  // namespace ops
}  // namespace lepton
