// CUDA kernels of the gradient-scaling ops (ops/amp_kernels.h). Unscaling follows the fused
// optimizers' multi-tensor layout: the list is cut into packs of up to kPack tensors whose
// pointers travel in the kernel's parameters, one launch per pack (a single launch for up to
// kPack gradients), blockIdx.y picking the tensor. inv_scale is read and found_inf written in
// device memory, so nothing waits for the host; the scale update is a one-thread kernel.
#include <algorithm>

#include "lepton/cuda/common.cuh"
#include "lepton/ops/amp_kernels.h"

namespace lepton::cuda {
namespace {

constexpr int kPack = 64;  // 64 pointers + 64 sizes: 1 KB of the 4 KB of kernel parameters

struct Pack {
  void* x[kPack];
  int64_t numel[kPack];
  int count = 0;
  int64_t max_numel = 0;
};

template <class T>
__global__ void __launch_bounds__(kThreads) unscale_kernel(Pack p, float* found_inf, const float* inv_scale) {
  using A = compute_t<T>;
  T* x = static_cast<T*>(p.x[blockIdx.y]);
  const int64_t n = p.numel[blockIdx.y];
  const float inv = *inv_scale;
  bool bad = false;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const A v = to_compute(x[i]);
    bad |= !isfinite(v);
    if (inv != 1.f) x[i] = from_compute<T>(v * inv);  // A * float: float for 16-bit and float32, double for float64
  }
  // One store per block that saw a non-finite value (every writer stores the same 1).
  if (__syncthreads_or(bad) && threadIdx.x == 0) *found_inf = 1.f;
}

template <class T>
void unscale_cuda(const AmpUnscaleArgs& a) {
  for (int64_t first = 0; first < a.count; first += kPack) {
    Pack p;
    p.count = int(std::min<int64_t>(kPack, a.count - first));
    for (int k = 0; k < p.count; ++k) {
      p.x[k] = a.data[first + k];
      p.numel[k] = a.numel[first + k];
      p.max_numel = std::max(p.max_numel, p.numel[k]);
    }
    if (p.max_numel == 0) continue;
    unscale_kernel<T><<<dim3(grid_for(p.max_numel), unsigned(p.count)), kThreads, 0, current_stream()>>>(
        p, a.found_inf, a.inv_scale);
    check_launch("amp unscale kernel");
  }
}

__global__ void update_scale_kernel(AmpUpdateArgs a) {
  if (*a.found_inf != 0.f) {
    *a.scale = float(double(*a.scale) * a.backoff_factor);
    *a.growth_tracker = 0;
    return;
  }
  const int32_t successful = *a.growth_tracker + 1;
  if (successful == a.growth_interval) {
    const float grown = float(double(*a.scale) * a.growth_factor);
    if (isfinite(grown)) *a.scale = grown;
    *a.growth_tracker = 0;
  } else {
    *a.growth_tracker = successful;
  }
}

void update_scale_cuda(const AmpUpdateArgs& a) {
  update_scale_kernel<<<1, 1, 0, current_stream()>>>(a);
  check_launch("amp update_scale kernel");
}

template <class T>
constexpr AmpKernels kKernels = {&unscale_cuda<T>, &update_scale_cuda};

[[maybe_unused]] const bool kRegistered = [] {
  amp_kernels.set(DeviceType::CUDA, DType::Float16, &kKernels<Half>);
  amp_kernels.set(DeviceType::CUDA, DType::BFloat16, &kKernels<BFloat16>);
  amp_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  amp_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
