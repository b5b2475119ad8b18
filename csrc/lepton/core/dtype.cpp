#include "lepton/core/dtype.h"

#include "lepton/core/error.h"

namespace lepton {

size_t itemsize(DType t) {
  static const size_t sizes[kNumDTypes] = {1, 1, 1, 4, 8, 2, 2, 4, 8};
  return sizes[int(t)];
}

const char* dtype_name(DType t) {
  static const char* names[kNumDTypes] = {"bool",    "uint8",    "int8",    "int32",  "int64",
                                          "float16", "bfloat16", "float32", "float64"};
  return names[int(t)];
}

DType dtype_from_name(const std::string& name) {
  for (int i = 0; i < kNumDTypes; ++i)
    if (name == dtype_name(DType(i))) return DType(i);
  if (name == "float" ) return DType::Float32;
  if (name == "double") return DType::Float64;
  if (name == "half") return DType::Float16;
  if (name == "long") return DType::Int64;
  if (name == "int") return DType::Int32;
  raise(ErrorKind::Type, "unknown dtype '", name,
        "' (expected one of bool, uint8, int8, int32, int64, float16, bfloat16, float32, float64)");
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // Mixed 16-bit floats have no common 16-bit type.
  if ((a == DType::Float16 && b == DType::BFloat16) || (a == DType::BFloat16 && b == DType::Float16))
    return DType::Float32;
  // Signed and unsigned bytes meet in the next signed type we have.
  if ((a == DType::UInt8 && b == DType::Int8) || (a == DType::Int8 && b == DType::UInt8))
    return DType::Int32;
  return a > b ? a : b;  // the enum is ordered bool < ints < floats, by width
}

}  // namespace lepton
