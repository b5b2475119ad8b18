// Pointwise losses (mse, l1, binary cross-entropy on probabilities and on logits) as one fused
// kernel each way: the reduced forward never materialises the per-element losses, and the
// backward writes the input gradient in one pass.
#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/norm.h"

namespace lepton::ops {

namespace {

const char* loss_name(PointwiseLoss op) {
  switch (op) {
    case PointwiseLoss::MSE: return "mse_loss";
    case PointwiseLoss::L1: return "l1_loss";
    case PointwiseLoss::BCE: return "binary_cross_entropy";
    default: return "binary_cross_entropy_with_logits";
  }
}

// A constant operand (weight, pos_weight) checked and made contiguous.
Tensor constant_operand(const char* op, const char* what, const std::optional<Tensor>& t, const Tensor& input) {
  if (!t) return Tensor();
  LEPTON_CHECK(t->dtype() == input.dtype(), Type, op, ": ", what, " is ", dtype_name(t->dtype()), " but input is ",
               dtype_name(input.dtype()));
  LEPTON_CHECK(t->device() == input.device(), Value, op, ": ", what, " is on ", t->device().str(), " but input is on ",
               input.device().str());
  LEPTON_CHECK(!autograd::needs_grad({&*t}), NotImplemented, op, ": the fused kernel does not differentiate ", what);
  const Shape b = broadcast_shapes(t->shape(), input.shape(), op);
  LEPTON_CHECK(b == input.shape(), Value, op, ": ", what, " of shape ", shape_str(t->shape()),
               " does not broadcast to the input's shape ", shape_str(input.shape()));
  autograd::NoGradGuard no_grad;
  return contiguous(*t);
}

// pos_weight repeats with a period when it covers the input's trailing dims (leading 1s
// dropped): [C] against [N, C]. Anything else is expanded to the input's shape.
Tensor periodic(const Tensor& pw, const Tensor& input, int64_t& period) {
  Shape s = pw.shape();
  while (!s.empty() && s.front() == 1) s.erase(s.begin());
  bool trailing = int64_t(s.size()) <= input.dim();
  for (size_t i = 0; trailing && i < s.size(); ++i) trailing = s[i] == input.shape()[input.dim() - s.size() + i];
  period = shape_numel(s);
  if (trailing && period > 0) return pw;
  period = input.numel();
  autograd::NoGradGuard no_grad;
  return contiguous(expand(pw, input.shape()));
}

}  // namespace

Tensor pointwise_loss(PointwiseLoss op, const Tensor& input, const Tensor& target, const std::optional<Tensor>& weight0,
                      const std::optional<Tensor>& pos_weight0, Reduction reduction) {
  const char* name = loss_name(op);
  if (auto dt = autocast::target(name, {&input, &target, weight0 ? &*weight0 : nullptr, pos_weight0 ? &*pos_weight0 : nullptr})) {
    autocast::Suspend off;
    return pointwise_loss(op, autocast::cast(input, *dt), autocast::cast(target, *dt), autocast::cast(weight0, *dt),
                          autocast::cast(pos_weight0, *dt), reduction);
  }
  LEPTON_CHECK(is_floating(input.dtype()), Type, name, ": input must be a floating-point tensor, got ",
               dtype_name(input.dtype()));
  LEPTON_CHECK(target.dtype() == input.dtype(), Type, name, ": target is ", dtype_name(target.dtype()),
               " but input is ", dtype_name(input.dtype()));
  LEPTON_CHECK(target.shape() == input.shape(), Value, name, ": target size ", shape_str(target.shape()),
               " must be the same as input size ", shape_str(input.shape()));
  LEPTON_CHECK(target.device() == input.device(), Value, name, ": target is on ", target.device().str(),
               " but input is on ", input.device().str());
  const bool target_grad = op == PointwiseLoss::MSE || op == PointwiseLoss::L1;
  LEPTON_CHECK(target_grad || !autograd::needs_grad({&target}), NotImplemented, name,
               ": the fused kernel does not differentiate target");
  LEPTON_CHECK(!pos_weight0 || op == PointwiseLoss::BCEWithLogits, Value, name, ": pos_weight is for ",
               "binary_cross_entropy_with_logits only");
  Tensor w = constant_operand(name, "weight", weight0, input);
  if (w.defined() && w.shape() != input.shape()) {
    autograd::NoGradGuard no_grad;
    w = contiguous(expand(w, input.shape()));
  }
  int64_t period = 1;
  Tensor pw = constant_operand(name, "pos_weight", pos_weight0, input);
  if (pw.defined()) pw = periodic(pw, input, period);
  Tensor x, y;
  {
    autograd::NoGradGuard no_grad;
    x = contiguous(input);
    y = contiguous(target);
  }
  const int64_t n = x.numel();
  const bool reduce = reduction != Reduction::None;
  Tensor loss = Tensor::empty(reduce ? Shape{} : x.shape(), x.dtype(), x.device());
  PointwiseLossArgs a;
  a.input = in_ptr(x), a.target = in_ptr(y), a.weight = in_ptr(w), a.pos_weight = in_ptr(pw);
  a.pos_weight_period = period, a.n = n, a.loss = out_ptr(loss), a.reduce = reduce;
  a.scale = reduction == Reduction::Mean ? 1.0 / double(n) : 1.0;  // mean of nothing: NaN, as in torch
  if (n || reduce) {
    const int64_t bad = norm_kernel(x, name)->loss_forward(op, a);
    if (bad >= 0)
      raise(ErrorKind::Runtime, name, ": all elements of input should be between 0 and 1, got ", element_at(x, bad),
            " (use binary_cross_entropy_with_logits for logits)");
  }
  if (autograd::needs_grad({&input, &target})) {
    const autograd::SavedTensor sx = saved_input(x), sy = saved_input(y), sw = saved_input(w), spw = saved_input(pw);
    const bool need_x = autograd::requires_grad(input), need_y = target_grad && autograd::requires_grad(target);
    a.input = a.target = a.weight = a.pos_weight = nullptr, a.loss = nullptr;
    autograd::record((std::string(name) + "_backward").c_str(), {&input, &target}, {&loss},
                     [op, a, sx, sy, sw, spw, need_x, need_y, reduce](const autograd::Node& self,
                                                                      autograd::TensorList& g) {
      check_no_double_backward(loss_name(op));
      const Tensor x = sx.unpack(self), y = sy.unpack(self), w = sw.unpack(self), pw = spw.unpack(self);
      const Tensor gl = contiguous(g[0]);
      Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device()), gy;
      if (need_y) gy = Tensor::empty(x.shape(), x.dtype(), x.device());
      PointwiseLossArgs b = a;
      b.input = in_ptr(x), b.target = in_ptr(y), b.weight = in_ptr(w), b.pos_weight = in_ptr(pw);
      b.grad_loss = in_ptr(gl), b.grad_stride = reduce ? 0 : 1, b.grad_input = out_ptr(gx), b.grad_target = out_ptr(gy);
      if (b.n) norm_kernel(x, loss_name(op))->loss_backward(op, b);
      return autograd::TensorList{need_x ? gx : Tensor(), gy};
    });
  }
  return loss;
}

}  // namespace lepton::ops
