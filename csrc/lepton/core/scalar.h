// A Python number carried into C++: bool, integer or floating point.
#pragma once
#include <cstdint>

#include "lepton/core/dtype.h"

namespace lepton {

struct Scalar {
  enum class Kind : uint8_t { Bool, Int, Float } kind = Kind::Float;
  double f = 0;
  int64_t i = 0;

  Scalar() = default;
  static Scalar from_bool(bool b) { Scalar s; s.kind = Kind::Bool; s.i = b; s.f = b; return s; }
  static Scalar from_int(int64_t v) { Scalar s; s.kind = Kind::Int; s.i = v; s.f = double(v); return s; }
  static Scalar from_float(double v) { Scalar s; s.kind = Kind::Float; s.f = v; s.i = int64_t(v); return s; }

  double to_double() const { return kind == Kind::Float ? f : double(i); }
  int64_t to_int() const { return kind == Kind::Float ? int64_t(f) : i; }
  // The dtype a tensor made from this number gets on its own (PyTorch's defaults).
  DType natural_dtype() const {
    return kind == Kind::Bool ? DType::Bool : kind == Kind::Int ? DType::Int64 : DType::Float32;
  }
};

}  // namespace lepton
