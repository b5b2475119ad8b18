// CPU kernels of the gradient-scaling ops (ops/amp_kernels.h). Memory-bound single passes, so
// they are compiled once rather than per instruction set. The arithmetic is torch's: 16-bit
// values scale in float, float64 in double.
#include <omp.h>

#include <cmath>
#include <type_traits>

#include "lepton/cpu/widen.h"
#include "lepton/ops/amp_kernels.h"

namespace lepton::cpu {
namespace {

template <class T>
void unscale(const AmpUnscaleArgs& a) {
  const float inv = *a.inv_scale;
  bool bad = false;
  for (int64_t t = 0; t < a.count; ++t) {
    T* x = static_cast<T*>(a.data[t]);
    const int64_t n = a.numel[t];
#pragma omp parallel for reduction(|| : bad) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const auto v = widen(x[i]);
      bad = bad || !std::isfinite(v);
      if (inv != 1.f) x[i] = narrow<T>(v * inv);
    }
  }
  if (bad) *a.found_inf = 1.f;
}

void update_scale(const AmpUpdateArgs& a) {
  if (*a.found_inf != 0.f) {
    *a.scale = float(double(*a.scale) * a.backoff_factor);
    *a.growth_tracker = 0;
    return;
  }
  const int32_t successful = *a.growth_tracker + 1;
  if (successful == a.growth_interval) {
    const float grown = float(double(*a.scale) * a.growth_factor);
    if (std::isfinite(grown)) *a.scale = grown;
    *a.growth_tracker = 0;
  } else {
    *a.growth_tracker = successful;
  }
}

template <class T>
constexpr AmpKernels kKernels = {&unscale<T>, &update_scale};

[[maybe_unused]] const bool kRegistered = [] {
  amp_kernels.set(DeviceType::CPU, DType::Float16, &kKernels<Half>);
  amp_kernels.set(DeviceType::CPU, DType::BFloat16, &kKernels<BFloat16>);
  amp_kernels.set(DeviceType::CPU, DType::Float32, &kKernels<float>);
  amp_kernels.set(DeviceType::CPU, DType::Float64, &kKernels<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cpu
