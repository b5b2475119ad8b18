// 16-bit floats in CPU kernels that compute in float: widen(v) to the arithmetic type (float for
// Half/BFloat16, the type itself otherwise), narrow<T>(v) back to storage.
#pragma once
#include <type_traits>

#include "lepton/core/half.h"

namespace lepton::cpu {

inline float widen(Half v) { return half_to_float(v); }
inline float widen(BFloat16 v) { return bf16_to_float(v); }
template <class T> inline T widen(T v) { return v; }
template <class T, class A> inline T narrow(A v) {
  if constexpr (std::is_same_v<T, Half>) return float_to_half(float(v));
  else if constexpr (std::is_same_v<T, BFloat16>) return float_to_bf16(float(v));
  else return T(v);
}

}  // namespace lepton::cpu
