// Reductions: pick the [outer, reduce, inner] layout the kernels want (a view when the reduced
// dims are one contiguous block, else a permuted copy), then derive mean/var/logsumexp.
#include <algorithm>
#include <cmath>

#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/grad.h"
#include "lepton/ops/iter.h"

namespace lepton::ops {

namespace {

const char* reduce_name(ReduceOp op) {
  static const char* names[] = {"sum", "prod", "max", "min", "all", "any"};
  return names[int(op)];
}

struct Plan {
  Tensor input;  // contiguous, laid out as [outer, reduce, inner]
  int64_t outer = 1, reduce = 1, inner = 1;
  Shape out_shape;
};

std::vector<bool> reduced_mask(const Tensor& x, const Dims& dims, const char* op) {
  std::vector<bool> mask(x.dim(), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), op);
    if (x.dim() == 0) continue;
    LEPTON_CHECK(!mask[w] || dims.empty(), Value, op, ": dimension ", w, " appears multiple times in the list of dims");
    mask[w] = true;
  }
  return mask;
}

Plan make_plan(const Tensor& x, const Dims& dims, bool keepdim, const char* op) {
  Plan p;
  std::vector<bool> mask = reduced_mask(x, dims, op);
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!mask[d]) p.out_shape.push_back(x.shape()[d]);
    else if (keepdim) p.out_shape.push_back(1);
  }
  // Size-1 dims don't matter; if the reduced dims form one run among the others, the
  // contiguous input already is [outer, reduce, inner].
  enum { Before, Inside, After } state = Before;
  bool block = true;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const int64_t s = x.shape()[d];
    if (s == 1) continue;
    if (mask[d]) {
      if (state == After) block = false;
      state = Inside;
      p.reduce *= s;
    } else if (state == Before) {
      p.outer *= s;
    } else {
      state = After;
      p.inner *= s;
    }
  }
  if (block) {
    p.input = contiguous(x);
    return p;
  }
  p.outer = p.reduce = p.inner = 1;
  Dims order;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!mask[d]) order.push_back(d), p.outer *= x.shape()[d];
  for (int64_t d = 0; d < x.dim(); ++d)
    if (mask[d]) order.push_back(d), p.reduce *= x.shape()[d];
  p.input = contiguous(permute(x, order));
  return p;
}

DType reduce_out_dtype(ReduceOp op, DType in) {
  if (op == ReduceOp::All || op == ReduceOp::Any) return DType::Bool;
  if ((op == ReduceOp::Sum || op == ReduceOp::Prod) && !is_floating(in)) return DType::Int64;
  return in;
}

Tensor run_reduce(ReduceOp op, const Plan& p, DType out_dtype, Tensor* index) {
  Tensor out = Tensor::empty(p.out_shape, out_dtype, p.input.device());
  if (out.numel() == 0) return out;
  ReduceArgs args;
  args.in = static_cast<const char*>(p.input.data_ptr());
  args.out = static_cast<char*>(out.data_ptr());
  args.index = index ? index->data<int64_t>() : nullptr;
  args.outer = p.outer;
  args.reduce = p.reduce;
  args.inner = p.inner;
  use_device(out.device());
  reduce_kernels.get(p.input.device().type, p.input.dtype(), reduce_name(op))(op, args);
  return out;
}

}  // namespace

namespace {

// A reduced gradient (or result) brought back to the input's shape.
Tensor expand_back(const Tensor& g, const Shape& in, const std::vector<bool>& mask, bool keepdim) {
  Tensor r = g;
  if (!keepdim)
    for (size_t d = 0; d < mask.size(); ++d)
      if (mask[d]) r = unsqueeze(r, int64_t(d));
  return expand(r, in);
}

void record_reduce(ReduceOp op, const Tensor& x, const Tensor& out, const Dims& dims, bool keepdim) {
  std::vector<bool> mask = reduced_mask(x, dims, reduce_name(op));
  // sum reads nothing, prod its input, max/min input and result
  autograd::SavedTensor sx, so;
  if (op != ReduceOp::Sum) sx = autograd::SavedTensor(x, false);
  if (op == ReduceOp::Max || op == ReduceOp::Min) so = autograd::SavedTensor(out, true);
  const Shape in = x.shape();
  autograd::record((std::string(reduce_name(op)) + "_backward").c_str(), {&x}, {&out},
                   [op, sx, so, in, mask, keepdim](const autograd::Node& self, autograd::TensorList& g) {
    Tensor ge = expand_back(g[0], in, mask, keepdim);
    if (op == ReduceOp::Sum) return autograd::TensorList{ge};
    const Tensor xs = sx.unpack(self);
    Dims reduced;
    for (size_t d = 0; d < mask.size(); ++d)
      if (mask[d]) reduced.push_back(int64_t(d));
    if (op == ReduceOp::Prod) {
      // The product of the other elements, without dividing by x (which may be 0): the product
      // of the nonzero elements, divided by x_i only where x_i != 0, and 0 where another
      // element of the group is 0.
      Tensor zero = compare(CompareOp::Eq, xs, Scalar::from_int(0));
      Tensor nonzero = where(zero, scalar_tensor(Scalar::from_int(1), xs.dtype(), xs.device()), xs);
      Tensor p = expand(reduce(ReduceOp::Prod, nonzero, reduced, true), in);
      Tensor zf = to(zero, std::nullopt, xs.dtype(), false);
      Tensor other_zeros = binary(BinaryOp::Sub, expand(reduce(ReduceOp::Sum, zf, reduced, true), in), zf);
      Tensor others = where(zero, p, binary(BinaryOp::Div, p, nonzero));
      others = where(compare(CompareOp::Eq, other_zeros, Scalar::from_int(0)), others,
                     scalar_tensor(Scalar::from_int(0), xs.dtype(), xs.device()));
      return autograd::TensorList{binary(BinaryOp::Mul, ge, others)};
    }
    // max/min: the gradient is shared evenly by the elements that attain the extreme
    const Tensor out = expand_back(so.unpack(self), in, mask, keepdim);
    Tensor hit = to(compare(CompareOp::Eq, xs, out), std::nullopt, xs.dtype(), false);
    Tensor count = expand(reduce(ReduceOp::Sum, hit, reduced, true), in);
    return autograd::TensorList{binary(BinaryOp::Div, binary(BinaryOp::Mul, ge, hit), count)};
  });
}

}  // namespace

Tensor reduce(ReduceOp op, const Tensor& x, const Dims& dims, bool keepdim) {
  const char* name = reduce_name(op);
  if (auto dt = autocast::target(name, {&x})) {
    autocast::Suspend off;
    return reduce(op, autocast::cast(x, *dt), dims, keepdim);
  }
  Tensor out;
  {
    autograd::NoGradGuard no_grad;  // the layout copies below are not part of the graph
    Plan p = make_plan(x, dims, keepdim, name);
    if (op == ReduceOp::Max || op == ReduceOp::Min)
      LEPTON_CHECK(p.reduce > 0, Value, name, "(): cannot reduce over an empty dimension (input shape ",
                   shape_str(x.shape()), "); specify a non-empty dim");
    out = run_reduce(op, p, reduce_out_dtype(op, x.dtype()), nullptr);
  }
  if (op != ReduceOp::All && op != ReduceOp::Any && is_floating(x.dtype()) && autograd::needs_grad({&x}))
    record_reduce(op, x, out, dims, keepdim);
  return out;
}

namespace {
bool is_half(DType t) { return t == DType::Float16 || t == DType::BFloat16; }
// Half-precision mean/var are computed in float32 and rounded once, as in torch: a float16 sum
// (or even the element count) can overflow where the mean does not.
Tensor widen(const Tensor& x) { return is_half(x.dtype()) ? to(x, std::nullopt, DType::Float32, false) : x; }
Tensor narrow_to(const Tensor& r, DType dtype) { return r.dtype() == dtype ? r : to(r, std::nullopt, dtype, false); }
}  // namespace

Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  LEPTON_CHECK(is_floating(x.dtype()), Type, "mean(): could not infer output dtype: input dtype must be floating point, got ",
               dtype_name(x.dtype()));
  if (is_half(x.dtype())) return narrow_to(mean(widen(x), dims, keepdim), x.dtype());
  Tensor s = reduce(ReduceOp::Sum, x, dims, keepdim);
  const int64_t count = s.numel() == 0 ? 0 : x.numel() / s.numel();
  return binary(BinaryOp::Div, s, Scalar::from_float(count ? double(count) : NAN));
}

Tensor var(const Tensor& x, const Dims& dims, double correction, bool keepdim) {
  LEPTON_CHECK(is_floating(x.dtype()), Type, "var(): input dtype must be floating point, got ", dtype_name(x.dtype()));
  if (is_half(x.dtype())) return narrow_to(var(widen(x), dims, correction, keepdim), x.dtype());
  Tensor m = mean(x, dims, true);
  Tensor d = binary(BinaryOp::Sub, x, m);
  Tensor ss = reduce(ReduceOp::Sum, unary(UnaryOp::Square, d), dims, keepdim);
  const int64_t count = ss.numel() == 0 ? 0 : x.numel() / ss.numel();
  return binary(BinaryOp::Div, ss, Scalar::from_float(std::max(double(count) - correction, 0.0)));
}

Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim) {
  if (auto dt = autocast::target("logsumexp", {&x})) {
    autocast::Suspend off;
    return logsumexp(autocast::cast(x, *dt), dims, keepdim);
  }
  Tensor xf = is_floating(x.dtype()) ? x : to(x, std::nullopt, DType::Float32, false);
  if (xf.numel() == 0) {
    Tensor s = reduce(ReduceOp::Sum, xf, dims, keepdim);
    return unary(UnaryOp::Log, s);  // log(0) = -inf, as in PyTorch
  }
  Tensor shift;
  {
    // A constant shift (its gradient contributions cancel exactly); an infinite max would turn
    // x - m into NaN, so shift by 0 there instead.
    autograd::NoGradGuard no_grad;
    Tensor m = reduce(ReduceOp::Max, xf, dims, true);
    Tensor infinite = compare(CompareOp::Eq, unary(UnaryOp::Abs, m), Scalar::from_float(INFINITY));
    shift = where(infinite, scalar_tensor(Scalar::from_float(0), m.dtype(), m.device()), m);
  }
  Tensor s = reduce(ReduceOp::Sum, unary(UnaryOp::Exp, binary(BinaryOp::Sub, xf, shift)), dims, true);
  Tensor r = binary(BinaryOp::Add, unary(UnaryOp::Log, s), shift);
  if (keepdim) return r;
  std::vector<bool> mask = reduced_mask(x, dims, "logsumexp");
  Dims squeeze_dims;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (mask[d]) squeeze_dims.push_back(d);
  return squeeze(r, squeeze_dims);
}

std::pair<Tensor, Tensor> extreme_with_index(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  const int64_t d = wrap_dim(dim, x.dim(), name);
  LEPTON_CHECK(x.dim() == 0 || x.shape()[d] > 0, Index, name, "(): cannot reduce over dimension ", d,
               " of size 0 (input shape ", shape_str(x.shape()), ")");
  Tensor index, values;
  {
    autograd::NoGradGuard no_grad;
    Plan p = make_plan(x, {d}, keepdim, name);
    index = Tensor::empty(p.out_shape, DType::Int64, x.device());
    values = run_reduce(is_max ? ReduceOp::Max : ReduceOp::Min, p, x.dtype(), &index);
  }
  if (is_floating(x.dtype()) && autograd::needs_grad({&x})) {
    autograd::SavedTensor si(index, false);
    const Shape in = x.shape();
    const int64_t dd = x.dim() == 0 ? 0 : d;
    autograd::record(is_max ? "max_backward" : "min_backward", {&x}, {&values},
                     [si, in, dd, keepdim](const autograd::Node& self, autograd::TensorList& g) {
      if (in.empty()) return autograd::TensorList{g[0]};
      Tensor idx = si.unpack(self), gv = g[0];
      if (!keepdim) {
        idx = unsqueeze(idx, dd);
        gv = unsqueeze(gv, dd);
      }
      // one-hot of the chosen positions along dd
      Shape pos_shape(in.size(), 1);
      pos_shape[dd] = in[dd];
      Tensor pos = reshape(arange(0, double(in[dd]), 1, DType::Int64, gv.device()), pos_shape);
      Tensor onehot = to(compare(CompareOp::Eq, pos, idx), std::nullopt, gv.dtype(), false);
      return autograd::TensorList{binary(BinaryOp::Mul, gv, onehot)};
    });
  }
  return {values, index};
}

Tensor arg_extreme(const Tensor& x, std::optional<int64_t> dim, bool keepdim, bool is_max) {
  if (dim) return extreme_with_index(x, *dim, keepdim, is_max).second;
  LEPTON_CHECK(x.numel() > 0, Value, is_max ? "argmax" : "argmin", "(): expected a non-empty tensor");
  Tensor idx = extreme_with_index(reshape(x, {-1}), 0, false, is_max).second;
  if (keepdim) return reshape(idx, Shape(x.dim(), 1));
  return idx;
}

}  // namespace lepton::ops
