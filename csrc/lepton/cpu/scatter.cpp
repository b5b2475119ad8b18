// CPU kernels of the gather/scatter family (ops/scatter_kernels.h). Compiled once: the work is
// address arithmetic and scattered loads, which no instruction set speeds up much. Gather runs
// in parallel; scatters run in index order on one thread, so duplicate indices add up (or the
// last write wins) the same way every time.
#include <omp.h>

#include <type_traits>

#include "lepton/cpu/widen.h"
#include "lepton/ops/scatter_kernels.h"

namespace lepton::cpu {
namespace {

// Element offsets of position p in self (without the dim term) and in other.
struct Offsets {
  int64_t self, other;
};

Offsets offsets_of(const ScatterArgs& a, int64_t p) {
  Offsets o{0, 0};
  for (int d = a.ndim - 1; d >= 0; --d) {
    const int64_t c = p % a.shape[d];
    p /= a.shape[d];
    if (d != a.dim) o.self += c * a.self_strides[d];
    o.other += c * a.other_strides[d];
  }
  return o;
}

template <class T>
int64_t scatter(ScatterMode mode, const ScatterArgs& a) {
  for (int64_t p = 0; p < a.numel; ++p)
    if (a.index[p] < 0 || a.index[p] >= a.dim_size) return p;
  T* self = reinterpret_cast<T*>(a.self);
  T* other = reinterpret_cast<T*>(a.other);
  const int64_t dim_stride = a.self_strides[a.dim];
  if (mode == ScatterMode::Gather) {
#pragma omp parallel for schedule(static) if (a.numel > 32768)
    for (int64_t p = 0; p < a.numel; ++p) other[p] = self[offsets_of(a, p).self + a.index[p] * dim_stride];
    return -1;
  }
  for (int64_t p = 0; p < a.numel; ++p) {
    const Offsets o = offsets_of(a, p);
    T& dst = self[o.self + a.index[p] * dim_stride];
    if (mode == ScatterMode::Scatter) dst = other[o.other];
    else if constexpr (std::is_same_v<T, bool>) dst = dst || other[o.other];
    else dst = narrow<T>(widen(dst) + widen(other[o.other]));
  }
  return -1;
}

[[maybe_unused]] const bool kRegistered = [] {
  scatter_kernels.set(DeviceType::CPU, DType::Bool, &scatter<bool>);
  scatter_kernels.set(DeviceType::CPU, DType::UInt8, &scatter<uint8_t>);
  scatter_kernels.set(DeviceType::CPU, DType::Int8, &scatter<int8_t>);
  scatter_kernels.set(DeviceType::CPU, DType::Int32, &scatter<int32_t>);
  scatter_kernels.set(DeviceType::CPU, DType::Int64, &scatter<int64_t>);
  scatter_kernels.set(DeviceType::CPU, DType::Float16, &scatter<Half>);
  scatter_kernels.set(DeviceType::CPU, DType::BFloat16, &scatter<BFloat16>);
  scatter_kernels.set(DeviceType::CPU, DType::Float32, &scatter<float>);
  scatter_kernels.set(DeviceType::CPU, DType::Float64, &scatter<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cpu
