// Counter-based random fills: element i draws Philox counter (offset + i), so results do not
// depend on the thread count and match the CUDA kernels.
#include "lepton/core/philox.h"
#include "lepton/cpu/kernels/common.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

template <class T>
void random_kernel(const RandomArgs& a) {
  T* out = reinterpret_cast<T*>(a.out);
  parallel_range(a.n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      Philox4 r = philox(a.seed, a.offset + uint64_t(i));
      if (a.dist == RandomDist::Integer) {
        uint64_t range = uint64_t(int64_t(a.b) - int64_t(a.a));
        uint64_t x = ((uint64_t(r.v[0]) << 32) | r.v[1]) % range;
        out[i] = store<T>(int64_t(a.a) + int64_t(x));
      } else {
        double v = a.dist == RandomDist::Uniform ? a.a + (a.b - a.a) * philox_unit(r.v[0], r.v[1])
                                                 : a.a + a.b * philox_normal(r);
        if constexpr (std::is_same_v<T, double>)
          out[i] = v;
        else
          out[i] = store<T>(float(v));
      }
    }
  });
}

}  // namespace

void fill_random(KernelSet& set) {
  set.random[int(DType::UInt8)] = &random_kernel<uint8_t>;
  set.random[int(DType::Int8)] = &random_kernel<int8_t>;
  set.random[int(DType::Int32)] = &random_kernel<int32_t>;
  set.random[int(DType::Int64)] = &random_kernel<int64_t>;
  set.random[int(DType::Float16)] = &random_kernel<Half>;
  set.random[int(DType::BFloat16)] = &random_kernel<BFloat16>;
  set.random[int(DType::Float32)] = &random_kernel<float>;
  set.random[int(DType::Float64)] = &random_kernel<double>;
}

}  // namespace lepton::cpu::LEPTON_ISA
