// Backward formulas of the matrix products: each operand's gradient is another product with
// the output gradient, summed over the batch dims the operand was broadcast along.
#include "lepton/ops/grad.h"

namespace lepton::ops {

namespace {

using autograd::Node;
using autograd::SavedTensor;
using autograd::TensorList;

Tensor mT(const Tensor& t) { return transpose(t, -2, -1); }

}  // namespace

void record_matmul(const Tensor& a0, const Tensor& b0, const Tensor& out, const char* name) {
  SavedTensor sa(a0, false), sb(b0, false);
  const bool need_a = autograd::requires_grad(a0), need_b = autograd::requires_grad(b0);
  autograd::record(name, {&a0, &b0}, {&out}, [sa, sb, need_a, need_b](const Node& self, TensorList& g) -> TensorList {
    const Tensor a0 = sa.unpack(self), b0 = sb.unpack(self);
    // Work on the 2-D (or batched) forms; 1-D operands were a row / a column.
    const Tensor a = a0.dim() == 1 ? unsqueeze(a0, 0) : a0;
    const Tensor b = b0.dim() == 1 ? unsqueeze(b0, 1) : b0;
    Shape full(g[0].shape());
    if (a0.dim() == 1) full.insert(full.end() - (b0.dim() > 1 ? 1 : 0), 1);
    if (b0.dim() == 1) full.push_back(1);
    const Tensor gf = reshape(g[0], full);
    Tensor ga, gb;
    if (need_a) ga = reshape(sum_to(matmul(gf, mT(b)), a.shape()), a0.shape());
    if (need_b) gb = reshape(sum_to(matmul(mT(a), gf), b.shape()), b0.shape());
    return {ga, gb};
  });
}

// out = act(x · weightᵀ + bias) with act none or relu (gelu is recorded unfused by the caller).
void record_linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias, bool relu,
                   const Tensor& out) {
  SavedTensor sx(x, false), sw(weight, false), so(out, true);
  const bool need_x = autograd::requires_grad(x), need_w = autograd::requires_grad(weight);
  const bool has_bias = bias.has_value();
  const Tensor no_bias;
  autograd::record(relu ? "linear_relu_backward" : "linear_backward", {&x, &weight, has_bias ? &*bias : &no_bias},
                   {&out}, [sx, sw, so, need_x, need_w, has_bias, relu](const Node& self, TensorList& g) -> TensorList {
    Tensor gz = g[0];
    if (relu)
      gz = binary(BinaryOp::Mul, gz, to(compare(CompareOp::Gt, so.unpack(self), Scalar::from_int(0)), std::nullopt,
                                        gz.dtype(), false));
    const Tensor x = sx.unpack(self), w = sw.unpack(self);
    const int64_t in = w.size(1), outf = w.size(0);
    Tensor gx, gw, gb;
    if (need_x) gx = matmul(gz, w);
    // dW = Σ over all rows of gzᵀ · x: fold the batch dims into the rows
    if (need_w) gw = matmul(mT(reshape(gz, {-1, outf})), reshape(x, {-1, in}));
    if (has_bias) {
      Dims rows;
      for (int64_t d = 0; d + 1 < gz.dim(); ++d) rows.push_back(d);
      gb = rows.empty() ? gz : reduce(ReduceOp::Sum, gz, rows, false);
    }
    return {gx, gw, gb};
  });
}

void record_addmm(const Tensor& input, const Tensor& a, const Tensor& b, double beta, double alpha, const Tensor& out) {
  SavedTensor sa(a, false), sb(b, false);
  const Shape in_shape = input.shape();
  const bool need_in = autograd::requires_grad(input), need_a = autograd::requires_grad(a),
             need_b = autograd::requires_grad(b);
  autograd::record("addmm_backward", {&input, &a, &b}, {&out},
                   [sa, sb, in_shape, beta, alpha, need_in, need_a, need_b](const Node& self, TensorList& g) -> TensorList {
    const Tensor& go = g[0];
    Tensor gi, ga, gb;
    if (need_in) gi = sum_to(binary(BinaryOp::Mul, go, Scalar::from_float(beta)), in_shape);
    if (need_a) ga = binary(BinaryOp::Mul, matmul(go, mT(sb.unpack(self))), Scalar::from_float(alpha));
    if (need_b) gb = binary(BinaryOp::Mul, matmul(mT(sa.unpack(self)), go), Scalar::from_float(alpha));
    return {gi, ga, gb};
  });
}

}  // namespace lepton::ops
