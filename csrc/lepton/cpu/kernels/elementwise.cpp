// Elementwise kernels: unary, binary, comparison and where, over strided iterators with fast
// paths for contiguous operands and broadcast scalars.
#include "lepton/cpu/kernels/vecmath.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

LEPTON_SIMD_INLINE float m_tanh(float x) { return vtanh(x); }
LEPTON_SIMD_INLINE double m_tanh(double x) { return std::tanh(x); }
LEPTON_SIMD_INLINE float m_sigmoid(float x) { return vsigmoid(x); }
LEPTON_SIMD_INLINE double m_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
LEPTON_SIMD_INLINE float m_erf(float x) { return verf(x); }
LEPTON_SIMD_INLINE double m_erf(double x) { return std::erf(x); }
LEPTON_SIMD_INLINE float m_gelu(float x) { return vgelu(x); }
LEPTON_SIMD_INLINE double m_gelu(double x) { return 0.5 * x * std::erfc(-x * 0.70710678118654752440); }

template <class T, class F>
void map_unary(const StridedIter& it, F f) {
  for_each_segment(it, [&](int64_t n, char* const* p, const int64_t* s) {
    T* o = reinterpret_cast<T*>(p[0]);
    const T* a = reinterpret_cast<const T*>(p[1]);
    if (s[0] == sizeof(T) && s[1] == sizeof(T)) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = store<T>(f(load(a[i])));
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<T*>(p[0] + i * s[0]) = store<T>(f(load(*reinterpret_cast<const T*>(p[1] + i * s[1]))));
    }
  });
}

template <class T, class Out, class F>
void map_binary(const StridedIter& it, F f) {
  for_each_segment(it, [&](int64_t n, char* const* p, const int64_t* s) {
    Out* o = reinterpret_cast<Out*>(p[0]);
    const T* a = reinterpret_cast<const T*>(p[1]);
    const T* b = reinterpret_cast<const T*>(p[2]);
    constexpr int64_t sz = sizeof(T);
    if (s[0] == sizeof(Out) && s[1] == sz && s[2] == sz) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = store<Out>(f(load(a[i]), load(b[i])));
    } else if (s[0] == sizeof(Out) && s[1] == sz && s[2] == 0) {
      const auto bv = load(*b);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = store<Out>(f(load(a[i]), bv));
    } else if (s[0] == sizeof(Out) && s[1] == 0 && s[2] == sz) {
      const auto av = load(*a);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = store<Out>(f(av, load(b[i])));
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<Out*>(p[0] + i * s[0]) = store<Out>(f(load(*reinterpret_cast<const T*>(p[1] + i * s[1])),
                                                               load(*reinterpret_cast<const T*>(p[2] + i * s[2]))));
    }
  });
}

template <class T>
void unary_kernel(UnaryOp op, const StridedIter& it, double p0, double p1) {
  using A = acc_t<T>;
  switch (op) {
    case UnaryOp::Neg: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return A(-x); });
    case UnaryOp::Abs: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return x < A(0) ? A(-x) : x; });
    case UnaryOp::Square: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return A(x * x); });
    case UnaryOp::Sign:
      return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return x > A(0) ? A(1) : x < A(0) ? A(-1) : x; });
    case UnaryOp::Relu: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return x < A(0) ? A(0) : x; });
    case UnaryOp::Clamp: {
      const A lo = A(p0), hi = A(p1);
      if constexpr (is_float_v<T>) {
        const bool has_lo = !std::isinf(p0), has_hi = !std::isinf(p1);
        return map_unary<T>(it, [=](A x) LEPTON_SIMD_INLINE_LAMBDA {
          A y = has_lo && x < lo ? lo : x;
          return has_hi && y > hi ? hi : y;
        });
      } else {
        // Integer bounds saturate to the type's range in the op layer; min(max(x, lo), hi) as in
        // torch, so lo > hi gives hi.
        return map_unary<T>(it, [=](A x) LEPTON_SIMD_INLINE_LAMBDA { A y = x < lo ? lo : x; return y > hi ? hi : y; });
      }
    }
    default: break;
  }
  if constexpr (is_float_v<T>) {
    switch (op) {
      case UnaryOp::Exp: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return m_exp(x); });
      case UnaryOp::Log: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return m_log(x); });
      case UnaryOp::Sqrt: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::sqrt(x); });
      case UnaryOp::Rsqrt: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return A(1) / std::sqrt(x); });
      case UnaryOp::Tanh: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return m_tanh(x); });
      case UnaryOp::Sigmoid: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return m_sigmoid(x); });
      case UnaryOp::Gelu: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return m_gelu(x); });
      case UnaryOp::GeluTanh:
        return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA {
          return A(0.5) * x * (A(1) + m_tanh(A(0.7978845608028654) * (x + A(0.044715) * x * x * x)));
        });
      case UnaryOp::Silu: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return x * m_sigmoid(x); });
      case UnaryOp::Sin: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::sin(x); });
      case UnaryOp::Cos: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::cos(x); });
      case UnaryOp::Floor: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::floor(x); });
      case UnaryOp::Ceil: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::ceil(x); });
      case UnaryOp::Round: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::nearbyint(x); });
      case UnaryOp::Reciprocal: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return A(1) / x; });
      case UnaryOp::Erf: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return m_erf(x); });
      case UnaryOp::Log1p: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::log1p(x); });
      case UnaryOp::Expm1: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::expm1(x); });
      case UnaryOp::Log2: return map_unary<T>(it, [](A x) LEPTON_SIMD_INLINE_LAMBDA { return std::log2(x); });
      default: break;
    }
  }
}

// Python-style floor division and remainder; integer division by zero gives 0, not a trap (the op
// raises before it gets here, as torch does: ops/elementwise.cpp check_divisor).
template <class A>
inline A floor_div(A a, A b) {
  if constexpr (std::is_floating_point_v<A>) {
    return std::floor(a / b);
  } else {
    if (b == 0) return 0;
    // min / -1 overflows and traps (SIGFPE): negate with unsigned wrap-around, as torch does
    if (b == A(-1)) return A(std::make_unsigned_t<A>(0) - std::make_unsigned_t<A>(a));
    A q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? A(q - 1) : q;
  }
}
template <class A>
inline A remainder(A a, A b) {
  if constexpr (std::is_floating_point_v<A>) {
    A r = std::fmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  } else {
    if (b == 0 || b == A(-1)) return 0;  // min % -1 traps like min / -1
    A r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? A(r + b) : r;
  }
}
template <class A>
inline A int_pow(A base, A exp) {
  if (exp < 0) return base == 1 ? A(1) : base == A(-1) ? A((exp & 1) ? -1 : 1) : A(0);
  A result = 1;
  while (exp) {
    if (exp & 1) result = A(result * base);
    base = A(base * base);
    exp >>= 1;
  }
  return result;
}

template <class T>
void binary_kernel(BinaryOp op, const StridedIter& it) {
  using A = acc_t<T>;
  if constexpr (std::is_same_v<T, bool>) {
    switch (op) {
      case BinaryOp::Add: case BinaryOp::Maximum: case BinaryOp::LogicalOr:
        return map_binary<T, T>(it, [](bool a, bool b) LEPTON_SIMD_INLINE_LAMBDA { return a || b; });
      case BinaryOp::Mul: case BinaryOp::Minimum: case BinaryOp::LogicalAnd:
        return map_binary<T, T>(it, [](bool a, bool b) LEPTON_SIMD_INLINE_LAMBDA { return a && b; });
      case BinaryOp::LogicalXor: return map_binary<T, T>(it, [](bool a, bool b) LEPTON_SIMD_INLINE_LAMBDA { return a != b; });
      default: return;
    }
  } else {
    switch (op) {
      case BinaryOp::Add: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return A(a + b); });
      case BinaryOp::Sub: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return A(a - b); });
      case BinaryOp::Mul: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return A(a * b); });
      case BinaryOp::Div: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return A(a / b); });
      case BinaryOp::Maximum:
        return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return (a != a || a > b) ? a : b; });
      case BinaryOp::Minimum:
        return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return (a != a || a < b) ? a : b; });
      case BinaryOp::Pow:
        if constexpr (std::is_floating_point_v<A>)
          return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return b == A(2) ? a * a : std::pow(a, b); });
        else
          return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return int_pow(a, b); });
      case BinaryOp::FloorDivide: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return floor_div(a, b); });
      case BinaryOp::Remainder: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return remainder(a, b); });
      case BinaryOp::LogicalAnd: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return A(a != A(0) && b != A(0)); });
      case BinaryOp::LogicalOr: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return A(a != A(0) || b != A(0)); });
      case BinaryOp::LogicalXor: return map_binary<T, T>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return A((a != A(0)) != (b != A(0))); });
    }
  }
}

template <class T>
void compare_kernel(CompareOp op, const StridedIter& it) {
  using A = acc_t<T>;
  switch (op) {
    case CompareOp::Eq: return map_binary<T, bool>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return a == b; });
    case CompareOp::Ne: return map_binary<T, bool>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return a != b; });
    case CompareOp::Lt: return map_binary<T, bool>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return a < b; });
    case CompareOp::Le: return map_binary<T, bool>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return a <= b; });
    case CompareOp::Gt: return map_binary<T, bool>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return a > b; });
    case CompareOp::Ge: return map_binary<T, bool>(it, [](A a, A b) LEPTON_SIMD_INLINE_LAMBDA { return a >= b; });
  }
}

template <class T>
void where_kernel(const StridedIter& it) {
  for_each_segment(it, [&](int64_t n, char* const* p, const int64_t* s) {
    if (s[0] == sizeof(T) && s[1] == 1 && s[2] == sizeof(T) && s[3] == sizeof(T)) {
      T* o = reinterpret_cast<T*>(p[0]);
      const bool* c = reinterpret_cast<const bool*>(p[1]);
      const T* a = reinterpret_cast<const T*>(p[2]);
      const T* b = reinterpret_cast<const T*>(p[3]);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = c[i] ? a[i] : b[i];
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const bool*>(p[1] + i * s[1])
                                                     ? *reinterpret_cast<const T*>(p[2] + i * s[2])
                                                     : *reinterpret_cast<const T*>(p[3] + i * s[3]);
    }
  });
}

}  // namespace

void fill_elementwise(KernelSet& set) {
#define LEPTON_FILL(ENUM, TYPE)                          \
  set.unary[int(DType::ENUM)] = &unary_kernel<TYPE>;     \
  set.binary[int(DType::ENUM)] = &binary_kernel<TYPE>;   \
  set.compare[int(DType::ENUM)] = &compare_kernel<TYPE>; \
  set.where[int(DType::ENUM)] = &where_kernel<TYPE>;
  LEPTON_FILL(UInt8, uint8_t)
  LEPTON_FILL(Int8, int8_t)
  LEPTON_FILL(Int32, int32_t)
  LEPTON_FILL(Int64, int64_t)
  LEPTON_FILL(Float16, Half)
  LEPTON_FILL(BFloat16, BFloat16)
  LEPTON_FILL(Float32, float)
  LEPTON_FILL(Float64, double)
#undef LEPTON_FILL
  set.binary[int(DType::Bool)] = &binary_kernel<bool>;
  set.compare[int(DType::Bool)] = &compare_kernel<bool>;
  set.where[int(DType::Bool)] = &where_kernel<bool>;
}

}  // namespace lepton::cpu::LEPTON_ISA
