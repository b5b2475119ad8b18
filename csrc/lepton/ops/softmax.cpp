// Softmax, log-softmax and softmax cross-entropy as single fused kernels over rows (the last
// dim; another dim is moved last with a transposed copy), with hand-written backward nodes.
#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/grad.h"
#include "lepton/ops/iter.h"

namespace lepton::ops {

namespace {

const char* softmax_name(SoftmaxOp op) { return op == SoftmaxOp::Softmax ? "softmax" : "log_softmax"; }

// The fused backward kernels are not differentiable themselves.
void refuse_double_backward(const char* op) {
  LEPTON_CHECK(!autograd::grad_enabled(), NotImplemented, op,
               ": double backward (create_graph=True) is not supported by the fused kernel");
}

// t with dim d moved last, contiguous (a view of t when d already is last and t is contiguous).
Tensor rows_last(const Tensor& t, int64_t d) { return contiguous(transpose(t, d, -1)); }

const SoftmaxKernels* softmax_kernel(const Tensor& t, const char* op) {
  use_device(t.device());
  return softmax_kernels.get(t.device().type, t.dtype(), op);
}

SoftmaxArgs row_args(const Tensor& x, const Tensor& out) {
  SoftmaxArgs a;
  a.x = static_cast<const char*>(x.data_ptr());
  a.out = static_cast<char*>(out.data_ptr());
  a.cols = x.dim() == 0 ? 1 : x.shape().back();
  a.rows = a.cols ? x.numel() / a.cols : 0;
  return a;
}

Tensor softmax_op(SoftmaxOp op, const Tensor& x0, int64_t dim) {
  const char* name = softmax_name(op);
  LEPTON_CHECK(is_floating(x0.dtype()), Type, name, "(): input must be a floating-point tensor, got ",
               dtype_name(x0.dtype()));
  // A 0-d tensor is one row of one element.
  const Tensor x = x0.dim() == 0 ? reshape(x0, {1}) : x0;
  const int64_t d = wrap_dim(dim, x.dim(), name);
  Tensor out;
  {
    autograd::NoGradGuard no_grad;  // the layout copies are not part of the graph
    const Tensor xr = rows_last(x, d);
    Tensor yr = Tensor::empty(xr.shape(), xr.dtype(), xr.device());
    if (yr.numel()) softmax_kernel(xr, name)->forward(op, row_args(xr, yr));
    out = reshape(transpose(yr, d, -1), x0.shape());
  }
  if (autograd::needs_grad({&x0})) {
    autograd::SavedTensor so(out, true);
    const Shape shape = x.shape(), shape0 = x0.shape();
    autograd::record((std::string(name) + "_backward").c_str(), {&x0}, {&out},
                     [so, op, d, shape, shape0, name](const autograd::Node& self, autograd::TensorList& g) {
      refuse_double_backward(name);
      const Tensor y = rows_last(reshape(so.unpack(self), shape), d);
      const Tensor gy = rows_last(reshape(g[0], shape), d);
      Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
      if (gx.numel()) {
        SoftmaxArgs a = row_args(y, gx);
        a.grad = static_cast<const char*>(gy.data_ptr());
        softmax_kernel(y, name)->backward(op, a);
      }
      return autograd::TensorList{reshape(transpose(gx, d, -1), shape0)};
    });
  }
  return out;
}

}  // namespace

// Under CUDA autocast both run in float32 (torch's fp32_set_opt_dtype list); not on the CPU.
Tensor softmax(const Tensor& x, int64_t dim) {
  if (auto dt = autocast::target("softmax", {&x})) {
    autocast::Suspend off;
    return softmax(autocast::cast(x, *dt), dim);
  }
  return softmax_op(SoftmaxOp::Softmax, x, dim);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  if (auto dt = autocast::target("log_softmax", {&x})) {
    autocast::Suspend off;
    return log_softmax(autocast::cast(x, *dt), dim);
  }
  return softmax_op(SoftmaxOp::LogSoftmax, x, dim);
}

Tensor cross_entropy_rows(const Tensor& logits, const Tensor& target, int64_t ignore_index, double label_smoothing) {
  constexpr const char* name = "cross_entropy";
  if (auto dt = autocast::target(name, {&logits})) {
    autocast::Suspend off;
    return cross_entropy_rows(autocast::cast(logits, *dt), target, ignore_index, label_smoothing);
  }
  LEPTON_CHECK(is_floating(logits.dtype()), Type, name, ": logits must be a floating-point tensor, got ",
               dtype_name(logits.dtype()));
  LEPTON_CHECK(logits.dim() == 2, Value, name, ": expected logits of shape [N, C], got ", shape_str(logits.shape()));
  LEPTON_CHECK(target.dtype() == DType::Int64, Type, name, ": target must be an int64 tensor of class indices, got ",
               dtype_name(target.dtype()));
  LEPTON_CHECK(target.dim() == 1 && target.size(0) == logits.size(0), Value, name, ": expected target of shape [",
               logits.size(0), "] for logits of shape ", shape_str(logits.shape()), ", got ", shape_str(target.shape()));
  LEPTON_CHECK(target.device() == logits.device(), Value, name, ": target is on ", target.device().str(),
               " but logits are on ", logits.device().str());
  LEPTON_CHECK(label_smoothing >= 0 && label_smoothing <= 1, Value, name,
               ": label_smoothing must be between 0.0 and 1.0, got ", label_smoothing);
  // 16-bit logits without a 16-bit kernel: computed in float32, the loss rounded once (as torch).
  if (autocast::is_16bit(logits.dtype()) && !softmax_kernels.has(logits.device().type, logits.dtype()))
    return to(cross_entropy_rows(to(logits, std::nullopt, DType::Float32, false), target, ignore_index, label_smoothing),
              std::nullopt, logits.dtype(), false);
  Tensor x, t, loss, lse;
  const int64_t n = logits.size(0), c = logits.size(1);
  {
    autograd::NoGradGuard no_grad;
    x = contiguous(logits);
    t = contiguous(target);
    loss = Tensor::empty({n}, x.dtype(), x.device());
    lse = Tensor::empty({n}, x.dtype(), x.device());
  }
  CrossEntropyArgs a;
  a.logits = static_cast<const char*>(x.data_ptr());
  a.target = t.data<int64_t>();
  a.loss = static_cast<char*>(loss.data_ptr());
  a.lse = static_cast<char*>(lse.data_ptr());
  a.rows = n;
  a.cols = c;
  a.ignore_index = ignore_index;
  a.label_smoothing = label_smoothing;
  if (n) {
    const int64_t bad = softmax_kernel(x, name)->cross_entropy(a);
    if (bad >= 0) {  // the targets may live on the GPU: fetch the offending one
      const Tensor value = to(select(t, 0, bad), Device{}, std::nullopt, false);
      LEPTON_CHECK(false, Index, name, ": target ", value.data<int64_t>()[0], " is out of bounds for ", c, " classes");
    }
  }
  if (autograd::needs_grad({&logits})) {
    autograd::SavedTensor sx(x, false), st(t, false), sl(lse, false);
    autograd::record("cross_entropy_backward", {&logits}, {&loss},
                     [sx, st, sl, a](const autograd::Node& self, autograd::TensorList& g) {
      refuse_double_backward("cross_entropy");
      const Tensor x = sx.unpack(self), t = st.unpack(self), lse = sl.unpack(self), gl = contiguous(g[0]);
      Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device());
      CrossEntropyArgs b = a;
      b.logits = static_cast<const char*>(x.data_ptr());
      b.target = t.data<int64_t>();
      b.lse = static_cast<char*>(lse.data_ptr());
      b.grad_loss = static_cast<const char*>(gl.data_ptr());
      b.grad = static_cast<char*>(gx.data_ptr());
      b.loss = nullptr;
      if (gx.numel()) softmax_kernel(x, "cross_entropy")->cross_entropy_backward(b);
      return autograd::TensorList{gx};
    });
  }
  return loss;
}

}  // namespace lepton::ops
