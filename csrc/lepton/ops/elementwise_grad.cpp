// Backward formulas of the elementwise ops, written with the ops themselves (so they are
// differentiable again when create_graph is set).
#include <cmath>

#include "lepton/core/error.h"
#include "lepton/ops/grad.h"

namespace lepton::ops {

namespace {

using autograd::Node;
using autograd::SavedTensor;
using autograd::TensorList;

Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor mul(const Tensor& a, double s) { return binary(BinaryOp::Mul, a, Scalar::from_float(s)); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
Tensor add(const Tensor& a, double s) { return binary(BinaryOp::Add, a, Scalar::from_float(s)); }
Tensor rsub(double s, const Tensor& a) { return binary(BinaryOp::Sub, a, Scalar::from_float(s), true); }
Tensor mask(CompareOp op, const Tensor& a, const Tensor& b, DType dtype) {
  return to(compare(op, a, b), std::nullopt, dtype, false);
}
Tensor mask(CompareOp op, const Tensor& a, double s, DType dtype) {
  return to(compare(op, a, Scalar::from_float(s)), std::nullopt, dtype, false);
}

// What a unary backward reads: like torch, ops whose derivative is a function of the result
// keep only the result, so an in-place change of the input afterwards is no error.
enum class Needs { Nothing, Input, Output };
Needs unary_needs(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: case UnaryOp::Sign: case UnaryOp::Floor: case UnaryOp::Ceil: case UnaryOp::Round:
      return Needs::Nothing;
    case UnaryOp::Relu: case UnaryOp::Exp: case UnaryOp::Sqrt: case UnaryOp::Rsqrt: case UnaryOp::Tanh:
    case UnaryOp::Sigmoid: case UnaryOp::Reciprocal: case UnaryOp::Expm1:
      return Needs::Output;
    default:
      return Needs::Input;
  }
}

// d out / d x for out = op(x), times g (x or out undefined when unary_needs says so).
Tensor unary_grad(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& out, double p0, double p1) {
  const DType dt = g.dtype();
  switch (op) {
    case UnaryOp::Neg: return unary(UnaryOp::Neg, g);
    case UnaryOp::Abs: return mul(g, unary(UnaryOp::Sign, x));
    case UnaryOp::Square: return mul(g, mul(x, 2.0));
    case UnaryOp::Relu: return mul(g, mask(CompareOp::Gt, out, 0.0, dt));
    case UnaryOp::Exp: return mul(g, out);
    case UnaryOp::Log: return div(g, x);
    case UnaryOp::Sqrt: return div(g, mul(out, 2.0));
    case UnaryOp::Rsqrt: return mul(g, mul(unary(UnaryOp::Neg, mul(out, mul(out, out))), 0.5));
    case UnaryOp::Tanh: return mul(g, rsub(1.0, mul(out, out)));
    case UnaryOp::Sigmoid: return mul(g, mul(out, rsub(1.0, out)));
    case UnaryOp::Gelu: {  // Φ(x) + x φ(x)
      Tensor cdf = mul(add(unary(UnaryOp::Erf, mul(x, M_SQRT1_2)), 1.0), 0.5);
      Tensor pdf = mul(unary(UnaryOp::Exp, mul(mul(x, x), -0.5)), 0.3989422804014327);
      return mul(g, binary(BinaryOp::Add, cdf, mul(x, pdf)));
    }
    case UnaryOp::GeluTanh: {  // 0.5(1+t) + 0.5x(1-t²)·k(1+3·0.044715x²), t = tanh(k(x+0.044715x³))
      const double k = 0.7978845608028654;
      Tensor x2 = mul(x, x);
      Tensor t = unary(UnaryOp::Tanh, mul(mul(x, add(mul(x2, 0.044715), 1.0)), k));
      Tensor left = mul(add(t, 1.0), 0.5);
      Tensor right = mul(mul(mul(x, rsub(1.0, mul(t, t))), add(mul(x2, 3 * 0.044715), 1.0)), 0.5 * k);
      return mul(g, binary(BinaryOp::Add, left, right));
    }
    case UnaryOp::Silu: {  // s (1 + x (1 - s))
      Tensor s = unary(UnaryOp::Sigmoid, x);
      return mul(g, mul(s, add(mul(x, rsub(1.0, s)), 1.0)));
    }
    case UnaryOp::Sin: return mul(g, unary(UnaryOp::Cos, x));
    case UnaryOp::Cos: return mul(g, unary(UnaryOp::Neg, unary(UnaryOp::Sin, x)));
    case UnaryOp::Reciprocal: return mul(g, unary(UnaryOp::Neg, mul(out, out)));
    case UnaryOp::Erf: return mul(g, mul(unary(UnaryOp::Exp, unary(UnaryOp::Neg, mul(x, x))), 1.1283791670955126));
    case UnaryOp::Log1p: return div(g, add(x, 1.0));
    case UnaryOp::Expm1: return mul(g, add(out, 1.0));
    case UnaryOp::Log2: return div(g, mul(x, M_LN2));
    case UnaryOp::Clamp: {
      Tensor inside = mask(CompareOp::Ge, x, p0, DType::Bool);
      inside = binary(BinaryOp::LogicalAnd, inside, mask(CompareOp::Le, x, p1, DType::Bool));
      return mul(g, to(inside, std::nullopt, dt, false));
    }
    case UnaryOp::Sign: case UnaryOp::Floor: case UnaryOp::Ceil: case UnaryOp::Round:
      return full(g.shape(), Scalar::from_int(0), dt, g.device());
  }
  return Tensor();
}

}  // namespace

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int64_t lead = g.dim() - int64_t(shape.size());
  Dims dims;
  for (int64_t d = 0; d < g.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)) dims.push_back(d);
  Tensor s = dims.empty() ? g : reduce(ReduceOp::Sum, g, dims, true);
  return reshape(s, shape);
}

void record_unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
  const Needs needs = unary_needs(op);
  SavedTensor sx, so;
  if (needs == Needs::Input) sx = SavedTensor(x, false);
  if (needs == Needs::Output) so = SavedTensor(out, true);
  autograd::record((std::string(unary_name(op)) + "_backward").c_str(), {&x}, {&out},
                   [op, sx, so, p0, p1](const Node& self, TensorList& g) -> TensorList {
                     return {unary_grad(op, g[0], sx.unpack(self), so.unpack(self), p0, p1)};
                   });
}

void record_binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const bool need_a = autograd::requires_grad(a), need_b = autograd::requires_grad(b);
  // Save only what the formulas below read (add/sub nothing, mul the other operand...), as torch
  // does, so that in-place changes to the rest are no error.
  const bool linear = op == BinaryOp::Add || op == BinaryOp::Sub;
  const bool by_b = op == BinaryOp::Mul || op == BinaryOp::Remainder;  // a is read only for b's gradient
  const bool keep_a = by_b ? need_b : !linear && op != BinaryOp::Div;
  const bool keep_b = op == BinaryOp::Mul ? need_a : op == BinaryOp::Remainder ? need_b : !linear;
  SavedTensor sa, sb, so;
  if (keep_a) sa = SavedTensor(a, false);
  if (keep_b) sb = SavedTensor(b, false);
  if ((op == BinaryOp::Div || op == BinaryOp::Pow) && need_b) so = SavedTensor(out, true);
  const Shape sha = a.shape(), shb = b.shape();
  autograd::record((std::string(binary_name(op)) + "_backward").c_str(), {&a, &b}, {&out},
                   [op, sa, sb, so, sha, shb, need_a, need_b](const Node& self, TensorList& grads) -> TensorList {
    const Tensor& g = grads[0];
    const Tensor a = sa.unpack(self), b = sb.unpack(self);
    Tensor ga, gb;
    switch (op) {
      case BinaryOp::Add: ga = g; gb = g; break;
      case BinaryOp::Sub: ga = g; gb = need_b ? unary(UnaryOp::Neg, g) : Tensor(); break;
      case BinaryOp::Mul: ga = need_a ? mul(g, b) : Tensor(); gb = need_b ? mul(g, a) : Tensor(); break;
      case BinaryOp::Div:
        ga = need_a ? div(g, b) : Tensor();
        gb = need_b ? unary(UnaryOp::Neg, div(mul(g, so.unpack(self)), b)) : Tensor();
        break;
      case BinaryOp::Pow:
        if (need_a) ga = mul(g, mul(b, binary(BinaryOp::Pow, a, binary(BinaryOp::Sub, b, Scalar::from_int(1)))));
        if (need_b) {  // out · log(a), taken as 0 where a == 0 (the limit for positive exponents)
          Tensor safe_log = unary(UnaryOp::Log, where(compare(CompareOp::Eq, a, Scalar::from_int(0)),
                                                      full({}, Scalar::from_int(1), a.dtype(), a.device()), a));
          gb = mul(g, mul(so.unpack(self), safe_log));
        }
        break;
      case BinaryOp::Maximum:
      case BinaryOp::Minimum: {  // ties split the gradient evenly, as in PyTorch
        const CompareOp wins = op == BinaryOp::Maximum ? CompareOp::Gt : CompareOp::Lt;
        Tensor tie = mul(mask(CompareOp::Eq, a, b, g.dtype()), 0.5);
        if (need_a) ga = mul(g, binary(BinaryOp::Add, mask(wins, a, b, g.dtype()), tie));
        if (need_b) gb = mul(g, binary(BinaryOp::Add, mask(wins, b, a, g.dtype()), tie));
        break;
      }
      case BinaryOp::Remainder:
        ga = g;
        if (need_b) gb = mul(unary(UnaryOp::Neg, g), binary(BinaryOp::FloorDivide, a, b));
        break;
      default:  // floor_divide and the logical ops are piecewise constant
        if (need_a) ga = full(sha, Scalar::from_int(0), a.dtype(), a.device());
        if (need_b) gb = full(shb, Scalar::from_int(0), b.dtype(), b.device());
    }
    return {ga.defined() && need_a ? sum_to(ga, sha) : Tensor(), gb.defined() && need_b ? sum_to(gb, shb) : Tensor()};
  });
}

void record_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  SavedTensor sc(cond, false);
  const Shape sha = a.shape(), shb = b.shape();
  autograd::record("where_backward", {&a, &b}, {&out}, [sc, sha, shb](const Node& self, TensorList& grads) -> TensorList {
    const Tensor& g = grads[0];
    const Tensor c = sc.unpack(self);
    Tensor zero = full({}, Scalar::from_int(0), g.dtype(), g.device());
    return {sum_to(where(c, g, zero), sha), sum_to(where(c, zero, g), shb)};
  });
}

}  // namespace lepton::ops
