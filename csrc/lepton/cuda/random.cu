// Random fills from the counter-based Philox generator: element i draws from counter
// (offset + i), exactly as the CPU kernels do, so a seed gives the same tensor on both devices.
// The arithmetic after the draw uses __dadd_rn/__dmul_rn: nvcc would otherwise fuse
// a + (b - a) * u into an FMA and round differently from the CPU.
#include "lepton/core/error.h"
#include "lepton/core/philox.h"
#include "lepton/cuda/common.cuh"

namespace lepton::cuda {
namespace {

// Writes a real-valued draw: computed in double, rounded through float for the float types.
template <class T>
__device__ T real_to(double v) {
  if constexpr (std::is_same_v<T, double>)
    return v;
  else
    return from_compute<T>(float(v));
}

template <class T>
__global__ void __launch_bounds__(kThreads) random_kernel(RandomArgs a) {
  T* out = reinterpret_cast<T*>(a.out);
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  const uint64_t range = uint64_t(int64_t(a.b)) - uint64_t(int64_t(a.a));  // as the CPU computes it
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += step) {
    const Philox4 r = philox(a.seed, a.offset + uint64_t(i));
    if (a.dist == RandomDist::Integer) {
      const uint64_t x = ((uint64_t(r.v[0]) << 32) | r.v[1]) % range;
      const int64_t v = int64_t(uint64_t(int64_t(a.a)) + x);
      if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
        out[i] = from_compute<T>(float(v));
      else
        out[i] = T(v);
    } else if constexpr (is_float_v<T>) {
      const double u = a.dist == RandomDist::Uniform ? __dmul_rn(__dadd_rn(a.b, -a.a), philox_unit(r.v[0], r.v[1]))
                                                     : __dmul_rn(a.b, philox_normal(r));
      out[i] = real_to<T>(__dadd_rn(a.a, u));
    }
  }
}

template <class T>
void random_cuda(const RandomArgs& a) {
  const DType dtype = dtype_of<T>::value;
  LEPTON_CHECK(is_float_v<T> || a.dist == RandomDist::Integer, NotImplemented,
               "uniform/normal random fill has no cuda kernel for ", dtype_name(dtype));
  if (a.n <= 0) return;
  LEPTON_CHECK(a.dist != RandomDist::Integer || int64_t(a.b) > int64_t(a.a), Value,
               "random integers need int(low) < int(high), got [", a.a, ", ", a.b, ")");
  random_kernel<T><<<grid_for(a.n), kThreads, 0, current_stream()>>>(a);
  check_launch("random kernel");
}

[[maybe_unused]] const bool kRegistered = [] {
  auto& t = random_kernels;
  t.set(DeviceType::CUDA, DType::UInt8, &random_cuda<uint8_t>);
  t.set(DeviceType::CUDA, DType::Int8, &random_cuda<int8_t>);
  t.set(DeviceType::CUDA, DType::Int32, &random_cuda<int32_t>);
  t.set(DeviceType::CUDA, DType::Int64, &random_cuda<int64_t>);
  t.set(DeviceType::CUDA, DType::Float16, &random_cuda<Half>);
  t.set(DeviceType::CUDA, DType::BFloat16, &random_cuda<BFloat16>);
  t.set(DeviceType::CUDA, DType::Float32, &random_cuda<float>);
  t.set(DeviceType::CUDA, DType::Float64, &random_cuda<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
