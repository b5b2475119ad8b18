// Binary arithmetic kernels (all three operands one dtype); the op is a runtime switch inside
// one functor per dtype. Integer results wrap and never trap (division by zero gives 0).
#include <cmath>

#include "lepton/cuda/elementwise.cuh"

namespace lepton::cuda {
namespace {

template <class T>
LEPTON_HD T int_pow(T base, T exp) {
  if (is_negative(exp)) {
    if (base == T(1)) return T(1);
    if (base == T(-1)) return (exp & T(1)) ? T(-1) : T(1);
    return T(0);
  }
  T result = T(1);
  for (uint64_t e = uint64_t(exp); e; e >>= 1) {
    if (e & 1) result = wrap_mul(result, base);
    base = wrap_mul(base, base);
  }
  return result;
}

// Python semantics: the quotient rounds toward -inf, the remainder takes the divisor's sign.
// b == -1 is special-cased because INT_MIN / -1 overflows.
template <class T>
LEPTON_HD T int_floor_divide(T a, T b) {
  if (b == T(0)) return T(0);
  if (is_negative(b) && b == T(-1)) return wrap_sub(T(0), a);
  const T q = T(a / b);
  return (a % b != 0 && is_negative(a) != is_negative(b)) ? T(q - 1) : q;
}

template <class T>
LEPTON_HD T int_remainder(T a, T b) {
  if (b == T(0) || (is_negative(b) && b == T(-1))) return T(0);
  const T r = T(a % b);
  return (r != 0 && is_negative(r) != is_negative(b)) ? T(r + b) : r;
}

template <class T>
struct BinaryFunctor {
  using C = compute_t<T>;
  BinaryOp op;

  LEPTON_HD T operator()(T a, T b) const { return from_compute<T>(eval(to_compute(a), to_compute(b))); }

  LEPTON_HD C eval(C a, C b) const {
    switch (op) {
      case BinaryOp::Add: return wrap_add(a, b);
      case BinaryOp::Sub: return wrap_sub(a, b);
      case BinaryOp::Mul: return wrap_mul(a, b);
      case BinaryOp::Div: return a / b;  // floats only (checked on the host)
      case BinaryOp::Maximum: return a != a ? a : b != b ? b : a > b ? a : b;
      case BinaryOp::Minimum: return a != a ? a : b != b ? b : a < b ? a : b;
      case BinaryOp::LogicalAnd: return C(a != C(0) && b != C(0));
      case BinaryOp::LogicalOr: return C(a != C(0) || b != C(0));
      case BinaryOp::LogicalXor: return C((a != C(0)) != (b != C(0)));
      default: break;
    }
    if constexpr (is_float_v<T>) {
      switch (op) {
        case BinaryOp::Pow: return pow(a, b);
        case BinaryOp::FloorDivide: return floor(a / b);
        case BinaryOp::Remainder: {
          const C r = fmod(a, b);
          return (r != C(0) && (r < C(0)) != (b < C(0))) ? r + b : r;
        }
        default: return a;  // unreachable
      }
    } else {
      switch (op) {
        case BinaryOp::Pow: return int_pow(a, b);
        case BinaryOp::FloorDivide: return int_floor_divide(a, b);
        case BinaryOp::Remainder: return int_remainder(a, b);
        default: return a;  // unreachable
      }
    }
  }
};

// Bool (one byte, 0/1): Add and Maximum are or, Mul and Minimum are and.
struct BoolBinaryFunctor {
  BinaryOp op;
  LEPTON_HD uint8_t operator()(uint8_t a, uint8_t b) const {
    const bool x = a != 0, y = b != 0;
    switch (op) {
      case BinaryOp::Add:
      case BinaryOp::Maximum:
      case BinaryOp::LogicalOr: return x || y;
      case BinaryOp::LogicalXor: return x != y;
      default: return x && y;  // Mul, Minimum, LogicalAnd
    }
  }
};

void binary_bool(BinaryOp op, const StridedIter& it) {
  const bool ok = op == BinaryOp::Add || op == BinaryOp::Mul || op == BinaryOp::Maximum ||
                  op == BinaryOp::Minimum || op >= BinaryOp::LogicalAnd;
  LEPTON_CHECK(ok, NotImplemented, "binary op #", int(op), " has no cuda kernel for bool");
  launch_elementwise<uint8_t, uint8_t, uint8_t>(it, BoolBinaryFunctor{op}, "binary kernel (bool)");
}

template <class T>
void binary_cuda(BinaryOp op, const StridedIter& it) {
  LEPTON_CHECK(is_float_v<T> || op != BinaryOp::Div, NotImplemented,
               "binary op Div has no cuda kernel for ", dtype_name(dtype_of<T>::value));
  launch_elementwise<T, T, T>(it, BinaryFunctor<T>{op}, "binary kernel");
}

[[maybe_unused]] const bool kRegistered = [] {
  auto& t = binary_kernels;
  t.set(DeviceType::CUDA, DType::Bool, &binary_bool);
  t.set(DeviceType::CUDA, DType::UInt8, &binary_cuda<uint8_t>);
  t.set(DeviceType::CUDA, DType::Int8, &binary_cuda<int8_t>);
  t.set(DeviceType::CUDA, DType::Int32, &binary_cuda<int32_t>);
  t.set(DeviceType::CUDA, DType::Int64, &binary_cuda<int64_t>);
  t.set(DeviceType::CUDA, DType::Float16, &binary_cuda<Half>);
  t.set(DeviceType::CUDA, DType::BFloat16, &binary_cuda<BFloat16>);
  t.set(DeviceType::CUDA, DType::Float32, &binary_cuda<float>);
  t.set(DeviceType::CUDA, DType::Float64, &binary_cuda<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
