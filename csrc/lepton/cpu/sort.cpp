// CPU kernels of the sort family (ops/sort_kernels.h): a stable sort of each line's indices and
// running sums/products, each line on its own, lines in parallel. Compiled once (comparison
// sorts and sequential scans do not vectorise).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>
#include <vector>

#include "lepton/cpu/widen.h"
#include "lepton/ops/sort_kernels.h"

namespace lepton::cpu {
namespace {

template <class V>
inline bool is_nan(V v) {
  if constexpr (std::is_floating_point_v<V>) return std::isnan(v);
  else return false;
}

template <class T>
void sort(const SortArgs& a) {
  const T* x = reinterpret_cast<const T*>(a.x);
  const int64_t lines = a.outer * a.inner;
#pragma omp parallel if (lines > 1 && a.n * lines > 16384)
  {
    std::vector<int64_t> perm(a.n);
#pragma omp for schedule(static)
    for (int64_t l = 0; l < lines; ++l) {
      const int64_t o = l / a.inner, i = l % a.inner;
      const T* line = x + o * a.n * a.inner + i;
      auto at = [&](int64_t k) { return widen(line[k * a.inner]); };
      // NaN is above every number: ascending puts it last, descending first.
      auto less = [&](int64_t p, int64_t q) {
        const auto u = at(p), v = at(q);
        if (is_nan(u)) return false;
        return is_nan(v) || u < v;
      };
      auto greater = [&](int64_t p, int64_t q) {
        const auto u = at(p), v = at(q);
        if (is_nan(v)) return false;
        return is_nan(u) || u > v;
      };
      std::iota(perm.begin(), perm.end(), int64_t(0));
      if (a.k < a.n) {  // topk: select the first k only; ties broken by position, as the stable sort would
        auto first = perm.begin() + a.k;
        if (a.descending)
          std::partial_sort(perm.begin(), first, perm.end(),
                            [&](int64_t p, int64_t q) { return greater(p, q) || (!greater(q, p) && p < q); });
        else
          std::partial_sort(perm.begin(), first, perm.end(),
                            [&](int64_t p, int64_t q) { return less(p, q) || (!less(q, p) && p < q); });
      } else if (a.descending) {
        std::stable_sort(perm.begin(), perm.end(), greater);
      } else {
        std::stable_sort(perm.begin(), perm.end(), less);
      }
      int64_t* out = a.index + o * a.k * a.inner + i;
      for (int64_t k = 0; k < a.k; ++k) out[k * a.inner] = perm[k];
    }
  }
}

template <class T>
void scan(const ScanArgs& a) {
  using Acc = std::conditional_t<std::is_same_v<T, double> || std::is_same_v<T, float> || std::is_same_v<T, Half> ||
                                     std::is_same_v<T, BFloat16>,
                                 double, int64_t>;
  using Out = std::conditional_t<std::is_same_v<Acc, double>, T, int64_t>;
  const T* x = reinterpret_cast<const T*>(a.x);
  Out* out = reinterpret_cast<Out*>(a.out);
  const int64_t lines = a.outer * a.inner;
#pragma omp parallel for schedule(static) if (lines > 1 && a.n * lines > 16384)
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t o = l / a.inner, i = l % a.inner, base = o * a.n * a.inner + i;
    Acc acc = a.product ? Acc(1) : Acc(0);
    for (int64_t j = 0; j < a.n; ++j) {
      const int64_t k = base + (a.reverse ? a.n - 1 - j : j) * a.inner;
      const Acc v = Acc(widen(x[k]));
      acc = a.product ? acc * v : acc + v;
      if constexpr (std::is_same_v<Out, Half>) out[k] = float_to_half(float(acc));
      else if constexpr (std::is_same_v<Out, BFloat16>) out[k] = float_to_bf16(float(acc));
      else out[k] = Out(acc);
    }
  }
}

template <class T>
constexpr SortKernels kKernels = {&sort<T>, &scan<T>};

[[maybe_unused]] const bool kRegistered = [] {
  sort_kernels.set(DeviceType::CPU, DType::Bool, &kKernels<bool>);
  sort_kernels.set(DeviceType::CPU, DType::UInt8, &kKernels<uint8_t>);
  sort_kernels.set(DeviceType::CPU, DType::Int8, &kKernels<int8_t>);
  sort_kernels.set(DeviceType::CPU, DType::Int32, &kKernels<int32_t>);
  sort_kernels.set(DeviceType::CPU, DType::Int64, &kKernels<int64_t>);
  sort_kernels.set(DeviceType::CPU, DType::Float16, &kKernels<Half>);
  sort_kernels.set(DeviceType::CPU, DType::BFloat16, &kKernels<BFloat16>);
  sort_kernels.set(DeviceType::CPU, DType::Float32, &kKernels<float>);
  sort_kernels.set(DeviceType::CPU, DType::Float64, &kKernels<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cpu
