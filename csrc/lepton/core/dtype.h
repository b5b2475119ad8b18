// Element types, their sizes and names, and NumPy/PyTorch-style type promotion.
#pragma once
#include <cstdint>
#include <string>

#include "lepton/core/half.h"

namespace lepton {

enum class DType : uint8_t { Bool, UInt8, Int8, Int32, Int64, Float16, BFloat16, Float32, Float64 };
constexpr int kNumDTypes = 9;

size_t itemsize(DType t);
const char* dtype_name(DType t);  // "float32", ...
DType dtype_from_name(const std::string& name);
inline bool is_floating(DType t) { return t >= DType::Float16; }
inline bool is_integral(DType t, bool include_bool) {
  return t == DType::Bool ? include_bool : !is_floating(t);
}
// The dtype both operands convert to in a binary op (PyTorch's rules without int16).
DType promote_types(DType a, DType b);

template <class T> struct dtype_of;
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::Int8; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::Float16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };

}  // namespace lepton

// Runs BODY with `scalar_t` bound to the C++ type of DTYPE (a runtime value).
#define LEPTON_DTYPE_CASE(ENUM, TYPE, ...) \
  case ::lepton::DType::ENUM: {            \
    using scalar_t = TYPE;                 \
    __VA_ARGS__;                           \
    break;                                 \
  }
#define LEPTON_DISPATCH_ALL(DTYPE, ...)                           \
  switch (DTYPE) {                                               \
    LEPTON_DTYPE_CASE(Bool, bool, __VA_ARGS__)                   \
    LEPTON_DTYPE_CASE(UInt8, uint8_t, __VA_ARGS__)               \
    LEPTON_DTYPE_CASE(Int8, int8_t, __VA_ARGS__)                 \
    LEPTON_DTYPE_CASE(Int32, int32_t, __VA_ARGS__)               \
    LEPTON_DTYPE_CASE(Int64, int64_t, __VA_ARGS__)               \
    LEPTON_DTYPE_CASE(Float16, ::lepton::Half, __VA_ARGS__)      \
    LEPTON_DTYPE_CASE(BFloat16, ::lepton::BFloat16, __VA_ARGS__) \
    LEPTON_DTYPE_CASE(Float32, float, __VA_ARGS__)               \
    LEPTON_DTYPE_CASE(Float64, double, __VA_ARGS__)              \
  }
