// Unary elementwise kernels: one instantiation per dtype, the op chosen by a (warp-uniform)
// switch inside the functor, which keeps compile time to 8 kernel pairs instead of 8 x 26.
#include <cmath>

#include "lepton/cuda/elementwise.cuh"

namespace lepton::cuda {
namespace {

bool is_float_only(UnaryOp op) { return op >= UnaryOp::Exp && op <= UnaryOp::Log2; }

template <class T>
struct UnaryFunctor {
  using C = compute_t<T>;
  UnaryOp op;
  C lo, hi;  // Clamp bounds

  LEPTON_HD T operator()(T in) const { return from_compute<T>(eval(to_compute(in))); }

  LEPTON_HD C eval(C x) const {
    switch (op) {
      case UnaryOp::Neg:
        if constexpr (is_float_v<T>) return -x;  // -0.0 for 0.0, like torch
        else return wrap_sub(C(0), x);
      case UnaryOp::Abs:
        if constexpr (is_float_v<T>) return fabs(x);
        else return is_negative(x) ? wrap_sub(C(0), x) : x;
      case UnaryOp::Square: return wrap_mul(x, x);
      case UnaryOp::Sign: return x != x ? x : C(int(x > C(0)) - int(is_negative(x)));
      case UnaryOp::Relu: return is_negative(x) ? C(0) : x;  // NaN < 0 is false: NaN stays
      case UnaryOp::Clamp: {
        const C y = x < lo ? lo : x;
        return y > hi ? hi : y;
      }
      default: break;
    }
    if constexpr (is_float_v<T>) {
      switch (op) {
        case UnaryOp::Exp: return exp(x);
        case UnaryOp::Log: return log(x);
        case UnaryOp::Sqrt: return sqrt(x);
        case UnaryOp::Rsqrt: return C(1) / sqrt(x);
        case UnaryOp::Tanh: return tanh(x);
        case UnaryOp::Sigmoid: return C(1) / (C(1) + exp(-x));
        case UnaryOp::Gelu: return C(0.5) * x * (C(1) + erf(x * C(0.70710678118654752)));
        case UnaryOp::GeluTanh:
          return C(0.5) * x * (C(1) + tanh(C(0.79788456080286536) * (x + C(0.044715) * x * x * x)));
        case UnaryOp::Silu: return x / (C(1) + exp(-x));
        case UnaryOp::Sin: return sin(x);
        case UnaryOp::Cos: return cos(x);
        case UnaryOp::Floor: return floor(x);
        case UnaryOp::Ceil: return ceil(x);
        case UnaryOp::Round: return rint(x);  // half to even
        case UnaryOp::Reciprocal: return C(1) / x;
        case UnaryOp::Erf: return erf(x);
        case UnaryOp::Log1p: return log1p(x);
        case UnaryOp::Expm1: return expm1(x);
        case UnaryOp::Log2: return log2(x);
        default: break;
      }
    }
    return x;  // unreachable: the host rejects ops this dtype does not have
  }
};

// Clamp bounds in the compute type. Integers keep the integers inside [p0, p1], saturating
// at the type's range (so +-inf work as "no bound").
template <class C>
C clamp_bound(double v, bool lower) {
  if constexpr (std::is_floating_point_v<C>) {
    return C(v);
  } else {
    if (v != v) return lower ? std::numeric_limits<C>::lowest() : std::numeric_limits<C>::max();
    v = lower ? std::ceil(v) : std::floor(v);
    if (v <= double(std::numeric_limits<C>::lowest())) return std::numeric_limits<C>::lowest();
    if (v >= double(std::numeric_limits<C>::max())) return std::numeric_limits<C>::max();
    return C(v);
  }
}

template <class T, DType dtype>
void unary_cuda(UnaryOp op, const StridedIter& it, double p0, double p1) {
  const bool ok = is_float_v<T> || !is_float_only(op);
  LEPTON_CHECK(ok, NotImplemented, "unary op #", int(op), " has no cuda kernel for ", dtype_name(dtype));
  using C = compute_t<T>;
  const UnaryFunctor<T> fn{op, clamp_bound<C>(p0, true), clamp_bound<C>(p1, false)};
  launch_elementwise<T, T>(it, fn, "unary kernel");
}

[[maybe_unused]] const bool kRegistered = [] {
  auto& t = unary_kernels;
  t.set(DeviceType::CUDA, DType::UInt8, &unary_cuda<uint8_t, DType::UInt8>);
  t.set(DeviceType::CUDA, DType::Int8, &unary_cuda<int8_t, DType::Int8>);
  t.set(DeviceType::CUDA, DType::Int32, &unary_cuda<int32_t, DType::Int32>);
  t.set(DeviceType::CUDA, DType::Int64, &unary_cuda<int64_t, DType::Int64>);
  t.set(DeviceType::CUDA, DType::Float16, &unary_cuda<Half, DType::Float16>);
  t.set(DeviceType::CUDA, DType::BFloat16, &unary_cuda<BFloat16, DType::BFloat16>);
  t.set(DeviceType::CUDA, DType::Float32, &unary_cuda<float, DType::Float32>);
  t.set(DeviceType::CUDA, DType::Float64, &unary_cuda<double, DType::Float64>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
