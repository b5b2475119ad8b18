// Elementwise ops: broadcasting, PyTorch's type promotion (with Python numbers and 0-d tensors
// taking part only when of a higher category), output allocation and in-place variants.
#include <cmath>
#include <limits>

#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/grad.h"
#include "lepton/ops/iter.h"

namespace lepton::ops {

namespace {

int category(DType t) { return t == DType::Bool ? 0 : is_floating(t) ? 2 : 1; }
int category(const Scalar& s) { return int(s.kind); }

DType result_type(const Tensor& a, const Tensor& b) {
  const bool za = a.dim() == 0, zb = b.dim() == 0;
  if (za == zb) return promote_types(a.dtype(), b.dtype());
  const Tensor& dimmed = za ? b : a;
  const Tensor& zero = za ? a : b;
  return category(zero.dtype()) > category(dimmed.dtype()) ? zero.dtype() : dimmed.dtype();
}

DType result_type(const Tensor& a, const Scalar& s) {
  return category(s) > category(a.dtype()) ? s.natural_dtype() : a.dtype();
}

bool float_only(UnaryOp op) { return op >= UnaryOp::Exp && op <= UnaryOp::Log2; }
bool rounding(UnaryOp op) { return op == UnaryOp::Floor || op == UnaryOp::Ceil || op == UnaryOp::Round; }

// Writing through a broadcast view would write one element several times.
void check_writable(const Tensor& t, const char* op) {
  for (int64_t d = 0; d < t.dim(); ++d)
    LEPTON_CHECK(t.strides()[d] != 0 || t.shape()[d] <= 1, Value, op,
                 ": unsupported operation: more than one element of the written-to tensor refers to a single "
                 "memory location (an expanded view); call .clone() first");
}

Tensor cast(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : to(t, std::nullopt, dtype, false); }

void check_binary_dtypes(BinaryOp op, DType compute) {
  const bool is_bool = compute == DType::Bool;
  LEPTON_CHECK(!(is_bool && (op == BinaryOp::Sub || op == BinaryOp::Pow || op == BinaryOp::FloorDivide ||
                             op == BinaryOp::Remainder)),
               Type, binary_name(op), ": not supported for bool tensors");
}

bool logical(BinaryOp op) { return op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr || op == BinaryOp::LogicalXor; }

DType binary_compute_dtype(BinaryOp op, DType promoted) {
  if (op == BinaryOp::Div && !is_floating(promoted)) return DType::Float32;  // true division
  if (logical(op)) return DType::Bool;  // logical_and(ints) is a bool mask, as in torch
  return promoted;
}

// Integer floor_divide and remainder by zero raise, as in torch. One reduction over the divisor,
// made for integer dtypes on the CPU only: on CUDA it would cost a device sync, and torch does
// not check there either.
void check_divisor(BinaryOp op, const Tensor& divisor) {
  if ((op != BinaryOp::FloorDivide && op != BinaryOp::Remainder) || is_floating(divisor.dtype()) ||
      divisor.device().is_cuda())
    return;
  LEPTON_CHECK(reduce(ReduceOp::All, divisor, {}, false).data<bool>()[0], Runtime, binary_name(op),
               ": integer division by zero (ZeroDivisionError)");
}

void run_binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  check_divisor(op, b);
  use_device(out.device());
  StridedIter it = make_iter(out, {&a, &b});
  binary_kernels.get(out.device().type, out.dtype(), binary_name(op))(op, it);
}

Tensor binary_impl(BinaryOp op, const Tensor& a, const Tensor& b, DType promoted) {
  check_same_device(binary_name(op), {&a, &b});
  const DType dt = binary_compute_dtype(op, promoted);
  check_binary_dtypes(op, dt);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), binary_name(op)), dt, a.device());
  Tensor ca = cast(a, dt), cb = cast(b, dt);
  if (out.numel() > 0) run_binary(op, out, ca, cb);
  if (autograd::needs_grad({&ca, &cb})) record_binary(op, ca, cb, out);
  return out;
}

// An in-place op that autograd must follow: computed out of place on a snapshot of `t` (the
// backward may need its old value), then written back, with `t` taking over the history.
template <class F>
void inplace_with_grad(const Tensor& t, const char* op, F compute) {
  autograd::check_inplace(t, op);
  Tensor result = compute(clone(t));
  {
    autograd::NoGradGuard no_grad;
    copy_(t, result);
  }
  autograd::take_history(t, result);
}

void binary_inplace_impl(BinaryOp op, const Tensor& a, const Tensor& b, DType promoted) {
  const char* name = binary_name(op);
  check_same_device(name, {&a, &b});
  check_writable(a, name);
  const DType dt = binary_compute_dtype(op, promoted);
  LEPTON_CHECK(category(dt) <= category(a.dtype()), Type, name, "_: result type ", dtype_name(dt),
               " can't be cast to the desired output type ", dtype_name(a.dtype()));
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  LEPTON_CHECK(shape == a.shape(), Value, name, "_: output with shape ", shape_str(a.shape()),
               " doesn't match the broadcast shape ", shape_str(shape));
  check_binary_dtypes(op, dt);
  if (autograd::needs_grad({&a, &b}))
    return inplace_with_grad(a, name, [&](const Tensor& snapshot) { return binary_impl(op, snapshot, b, promoted); });
  a.bump_version();
  if (a.numel() == 0) return;
  if (dt == a.dtype()) {
    // A different view of a's memory is read from a snapshot; a itself may be read as it is written.
    run_binary(op, a, a, cast(b.same_storage(a) && b.impl() != a.impl() ? clone(b) : b, dt));
  } else {
    copy_(a, binary_impl(op, a, b, promoted));
  }
}

Tensor unary_input(UnaryOp op, const Tensor& x) {
  LEPTON_CHECK(x.dtype() != DType::Bool, Type, unary_name(op), ": not supported for bool tensors");
  if (float_only(op) && !is_floating(x.dtype()) && !rounding(op)) return cast(x, DType::Float32);
  return x;
}

void run_unary(UnaryOp op, const Tensor& out, const Tensor& x, double p0, double p1) {
  use_device(out.device());
  StridedIter it = make_iter(out, {&x});
  unary_kernels.get(out.device().type, out.dtype(), unary_name(op))(op, it, p0, p1);
}

// Clamp bounds as doubles; for integer tensors saturated to the dtype's range.
std::pair<double, double> clamp_bounds(DType dtype, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  LEPTON_CHECK(lo || hi, Value, "clamp: at least one of 'min' or 'max' must be given");
  double l = lo ? lo->to_double() : -INFINITY, h = hi ? hi->to_double() : INFINITY;
  LEPTON_CHECK(!std::isnan(l) && !std::isnan(h), Value, "clamp: bounds must not be NaN");
  if (!is_floating(dtype)) {
    double tmin = 0, tmax = 0;
    switch (dtype) {
      case DType::UInt8: tmin = 0; tmax = 255; break;
      case DType::Int8: tmin = -128; tmax = 127; break;
      case DType::Int32: tmin = std::numeric_limits<int32_t>::min(); tmax = std::numeric_limits<int32_t>::max(); break;
      default: tmin = -9.2e18; tmax = 9.2e18; break;
    }
    l = std::max(l, tmin);
    h = std::min(h, tmax);
  }
  return {l, h};
}

}  // namespace

const char* unary_name(UnaryOp op) {
  static const char* names[] = {"neg", "abs", "square", "sign", "relu", "exp", "log", "sqrt", "rsqrt", "tanh",
                                "sigmoid", "gelu", "gelu_tanh", "silu", "sin", "cos", "floor", "ceil", "round",
                                "reciprocal", "erf", "log1p", "expm1", "log2", "clamp"};
  return names[int(op)];
}

const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow", "floor_divide",
                                "remainder", "logical_and", "logical_or", "logical_xor"};
  return names[int(op)];
}

Tensor unary(UnaryOp op, const Tensor& x) {
  if (auto dt = autocast::target(unary_name(op), {&x})) {
    autocast::Suspend off;
    return unary(op, autocast::cast(x, *dt));
  }
  Tensor in = unary_input(op, x);
  if (rounding(op) && !is_floating(in.dtype())) return clone(in);
  Tensor out = Tensor::empty(in.shape(), in.dtype(), in.device());
  if (out.numel() > 0) run_unary(op, out, in, 0, 0);
  if (autograd::needs_grad({&in})) record_unary(op, in, out, 0, 0);
  return out;
}

void unary_(UnaryOp op, const Tensor& x) {
  check_writable(x, unary_name(op));
  LEPTON_CHECK(!float_only(op) || is_floating(x.dtype()) || rounding(op), Type, unary_name(op),
               "_: result type float32 can't be cast to the desired output type ", dtype_name(x.dtype()));
  unary_input(op, x);
  if (autograd::needs_grad({&x}))
    return inplace_with_grad(x, unary_name(op), [&](const Tensor& snapshot) { return unary(op, snapshot); });
  x.bump_version();
  if (x.numel() > 0 && !(rounding(op) && !is_floating(x.dtype()))) run_unary(op, x, x, 0, 0);
}

Tensor clamp(const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  LEPTON_CHECK(x.dtype() != DType::Bool, Type, "clamp: not supported for bool tensors");
  const bool float_bound = (lo && lo->kind == Scalar::Kind::Float) || (hi && hi->kind == Scalar::Kind::Float);
  Tensor in = float_bound && !is_floating(x.dtype()) ? cast(x, DType::Float32) : x;
  auto [l, h] = clamp_bounds(in.dtype(), lo, hi);
  Tensor out = Tensor::empty(in.shape(), in.dtype(), in.device());
  if (out.numel() > 0) run_unary(UnaryOp::Clamp, out, in, l, h);
  if (autograd::needs_grad({&in})) record_unary(UnaryOp::Clamp, in, out, l, h);
  return out;
}

void clamp_(const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  LEPTON_CHECK(x.dtype() != DType::Bool, Type, "clamp_: not supported for bool tensors");
  check_writable(x, "clamp_");
  if (autograd::needs_grad({&x}))
    return inplace_with_grad(x, "clamp_", [&](const Tensor& snapshot) { return clamp(snapshot, lo, hi); });
  auto [l, h] = clamp_bounds(x.dtype(), lo, hi);
  x.bump_version();
  if (x.numel() > 0) run_unary(UnaryOp::Clamp, x, x, l, h);
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  if (auto dt = op == BinaryOp::Pow ? autocast::target("pow", {&a, &b}) : std::nullopt) {
    autocast::Suspend off;
    return binary(op, autocast::cast(a, *dt), autocast::cast(b, *dt));
  }
  return binary_impl(op, a, b, result_type(a, b));
}

Tensor binary(BinaryOp op, const Tensor& a, Scalar b, bool reverse) {
  const DType dt = result_type(a, b);
  LEPTON_CHECK(!(op == BinaryOp::Pow && !reverse && !is_floating(dt) && b.to_int() < 0), Value,
               "pow: integers to negative integer powers are not allowed (exponent ", b.to_int(), ")");
  Tensor s = scalar_tensor(b, dt, a.device());
  return reverse ? binary_impl(op, s, a, dt) : binary_impl(op, a, s, dt);
}

void binary_(BinaryOp op, const Tensor& a, const Tensor& b) { binary_inplace_impl(op, a, b, result_type(a, b)); }

void binary_(BinaryOp op, const Tensor& a, Scalar b) {
  const DType dt = result_type(a, b);
  binary_inplace_impl(op, a, scalar_tensor(b, dt, a.device()), dt);
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same_device("comparison", {&a, &b});
  const DType dt = result_type(a, b);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), "comparison"), DType::Bool, a.device());
  if (out.numel() == 0) return out;
  Tensor ca = cast(a, dt), cb = cast(b, dt);
  use_device(out.device());
  StridedIter it = make_iter(out, {&ca, &cb});
  compare_kernels.get(out.device().type, dt, "comparison")(op, it);
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, Scalar b) {
  return compare(op, a, scalar_tensor(b, result_type(a, b), a.device()));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same_device("where", {&cond, &a, &b});
  LEPTON_CHECK(cond.dtype() == DType::Bool, Type, "where: condition must be a bool tensor, got ",
               dtype_name(cond.dtype()));
  const DType dt = result_type(a, b);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, dt, a.device());
  if (out.numel() == 0) return out;
  Tensor ca = cast(a, dt), cb = cast(b, dt);
  use_device(out.device());
  StridedIter it = make_iter(out, {&cond, &ca, &cb});
  where_kernels.get(out.device().type, dt, "where")(it);
  if (autograd::needs_grad({&ca, &cb})) record_where(cond, ca, cb, out);
  return out;
}

Tensor logical_not(const Tensor& x) { return compare(CompareOp::Eq, x, Scalar::from_int(0)); }

}  // namespace lepton::ops
