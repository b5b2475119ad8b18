// 2-d max/avg/adaptive-avg pooling on the GPU (the PoolKernels contract of
// ops/pool_kernels.h): a thread per output element forward; backward is a gather, a thread per
// input element summing the outputs whose window holds it, so overlapping windows need no
// atomics and sums come out in a fixed order.
#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"
#include "lepton/ops/pool_kernels.h"

namespace lepton::cuda {
namespace {

#define LEPTON_GRID_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// The outputs whose window (size k, stride s, padding p, dilation d) may read input row t:
// o·s - p + a·d = t for some a < k, i.e. o in [lo, hi].
__device__ __forceinline__ void windows_of(int64_t t, int64_t k, int64_t s, int64_t p, int64_t d, int64_t n_out,
                                           int64_t& lo, int64_t& hi) {
  const int64_t top = t + p;  // o·s = top - a·d
  hi = min(n_out - 1, top / s);
  const int64_t first = top - (k - 1) * d;
  lo = first <= 0 ? 0 : (first + s - 1) / s;
}

// Each pooling kind says what one output is (from its input plane x) and what one input's
// gradient is (from the plane's output gradients gy); two kernels run them over all elements.
struct MaxPool {
  template <class T>
  static __device__ compute_t<T> output(const PoolArgs& a, const T* x, int64_t i, int64_t j, int64_t e) {
    const PoolGeometry& g = a.g;
    compute_t<T> best = -INFINITY;
    int64_t where = -1;
    for (int64_t a_ = 0; a_ < g.kh; ++a_) {
      const int64_t ih = i * g.stride_h - g.pad_h + a_ * g.dilation_h;
      if (ih < 0 || ih >= g.h) continue;
      for (int64_t b = 0; b < g.kw; ++b) {
        const int64_t iw = j * g.stride_w - g.pad_w + b * g.dilation_w;
        if (iw < 0 || iw >= g.w) continue;
        const compute_t<T> v = to_compute(x[ih * g.w + iw]);
        if (where < 0 || v > best || (v != v && best == best)) {  // the first NaN wins, as in torch
          best = v;
          where = ih * g.w + iw;
        }
      }
    }
    if (a.indices) a.indices[e] = where;
    return best;
  }
  template <class T>
  static __device__ compute_t<T> input_grad(const PoolArgs& a, const T* gy, int64_t plane, int64_t ih, int64_t iw) {
    const PoolGeometry& g = a.g;
    int64_t i0, i1, j0, j1;
    windows_of(ih, g.kh, g.stride_h, g.pad_h, g.dilation_h, g.oh, i0, i1);
    windows_of(iw, g.kw, g.stride_w, g.pad_w, g.dilation_w, g.ow, j0, j1);
    const int64_t* where = a.indices + plane * g.oh * g.ow;
    compute_t<T> s = 0;
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j)
        if (where[i * g.ow + j] == ih * g.w + iw) s += to_compute(gy[i * g.ow + j]);
    return s;
  }
};

// The number an average window divides by.
__device__ __forceinline__ int64_t avg_divisor(const PoolArgs& a, int64_t i, int64_t j) {
  const PoolGeometry& g = a.g;
  if (a.divisor_override) return a.divisor_override;
  int64_t h0 = i * g.stride_h - g.pad_h, w0 = j * g.stride_w - g.pad_w;
  int64_t h1 = min(h0 + g.kh, g.h + g.pad_h), w1 = min(w0 + g.kw, g.w + g.pad_w);
  if (a.count_include_pad) return (h1 - h0) * (w1 - w0);
  h0 = max(h0, int64_t(0)), w0 = max(w0, int64_t(0)), h1 = min(h1, g.h), w1 = min(w1, g.w);
  return (h1 - h0) * (w1 - w0);
}

struct AvgPool {
  template <class T>
  static __device__ compute_t<T> output(const PoolArgs& a, const T* x, int64_t i, int64_t j, int64_t) {
    const PoolGeometry& g = a.g;
    compute_t<T> s = 0;
    for (int64_t ih = max(i * g.stride_h - g.pad_h, int64_t(0)); ih < min(i * g.stride_h - g.pad_h + g.kh, g.h); ++ih)
      for (int64_t iw = max(j * g.stride_w - g.pad_w, int64_t(0)); iw < min(j * g.stride_w - g.pad_w + g.kw, g.w); ++iw)
        s += to_compute(x[ih * g.w + iw]);
    return s / compute_t<T>(avg_divisor(a, i, j));
  }
  template <class T>
  static __device__ compute_t<T> input_grad(const PoolArgs& a, const T* gy, int64_t, int64_t ih, int64_t iw) {
    const PoolGeometry& g = a.g;
    int64_t i0, i1, j0, j1;
    windows_of(ih, g.kh, g.stride_h, g.pad_h, 1, g.oh, i0, i1);
    windows_of(iw, g.kw, g.stride_w, g.pad_w, 1, g.ow, j0, j1);
    compute_t<T> s = 0;
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j) s += to_compute(gy[i * g.ow + j]) / compute_t<T>(avg_divisor(a, i, j));
    return s;
  }
};

// Adaptive windows: output i covers input rows [⌊i·h/oh⌋, ⌈(i+1)·h/oh⌉).
__device__ __forceinline__ int64_t start_of(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
__device__ __forceinline__ int64_t end_of(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

struct AdaptiveAvgPool {
  template <class T>
  static __device__ compute_t<T> output(const PoolArgs& a, const T* x, int64_t i, int64_t j, int64_t) {
    const PoolGeometry& g = a.g;
    const int64_t h0 = start_of(i, g.h, g.oh), h1 = end_of(i, g.h, g.oh);
    const int64_t w0 = start_of(j, g.w, g.ow), w1 = end_of(j, g.w, g.ow);
    compute_t<T> s = 0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) s += to_compute(x[ih * g.w + iw]);
    return s / compute_t<T>((h1 - h0) * (w1 - w0));
  }
  template <class T>
  static __device__ compute_t<T> input_grad(const PoolArgs& a, const T* gy, int64_t, int64_t ih, int64_t iw) {
    const PoolGeometry& g = a.g;
    compute_t<T> s = 0;
    // the outputs whose adaptive window holds row ih: at most ⌈h/oh⌉ + 1 around ih·oh/h
    for (int64_t i = max(int64_t(0), (ih * g.oh) / g.h - 1); i < g.oh && start_of(i, g.h, g.oh) <= ih; ++i) {
      if (end_of(i, g.h, g.oh) <= ih) continue;
      const int64_t rows = end_of(i, g.h, g.oh) - start_of(i, g.h, g.oh);
      for (int64_t j = max(int64_t(0), (iw * g.ow) / g.w - 1); j < g.ow && start_of(j, g.w, g.ow) <= iw; ++j) {
        if (end_of(j, g.w, g.ow) <= iw) continue;
        const int64_t cols = end_of(j, g.w, g.ow) - start_of(j, g.w, g.ow);
        s += to_compute(gy[i * g.ow + j]) / compute_t<T>(rows * cols);
      }
    }
    return s;
  }
};

template <class T, class Pool>
__global__ void __launch_bounds__(kThreads) forward_kernel(PoolArgs a) {
  const PoolGeometry& g = a.g;
  LEPTON_GRID_LOOP(e, g.planes * g.oh * g.ow) {
    const int64_t j = e % g.ow, i = (e / g.ow) % g.oh, plane = e / (g.ow * g.oh);
    const T* x = static_cast<const T*>(a.x) + plane * g.h * g.w;
    static_cast<T*>(a.y)[e] = from_compute<T>(Pool::output(a, x, i, j, e));
  }
}

template <class T, class Pool>
__global__ void __launch_bounds__(kThreads) backward_kernel(PoolArgs a) {
  const PoolGeometry& g = a.g;
  LEPTON_GRID_LOOP(e, g.planes * g.h * g.w) {
    const int64_t iw = e % g.w, ih = (e / g.w) % g.h, plane = e / (g.w * g.h);
    const T* gy = static_cast<const T*>(a.grad_y) + plane * g.oh * g.ow;
    static_cast<T*>(a.grad_x)[e] = from_compute<T>(Pool::input_grad(a, gy, plane, ih, iw));
  }
}

#undef LEPTON_GRID_LOOP

template <class T, class Pool>
void forward(const PoolArgs& a) {
  if (a.g.planes * a.g.oh * a.g.ow == 0) return;
  forward_kernel<T, Pool><<<grid_for(a.g.planes * a.g.oh * a.g.ow), kThreads, 0, current_stream()>>>(a);
  check_launch("pooling kernel");
}

template <class T, class Pool>
void backward(const PoolArgs& a) {
  if (a.g.planes * a.g.h * a.g.w == 0) return;
  backward_kernel<T, Pool><<<grid_for(a.g.planes * a.g.h * a.g.w), kThreads, 0, current_stream()>>>(a);
  check_launch("pooling backward kernel");
}

template <class T>
constexpr PoolKernels kKernels = {&forward<T, MaxPool>, &backward<T, MaxPool>, &forward<T, AvgPool>,
                                  &backward<T, AvgPool>, &forward<T, AdaptiveAvgPool>, &backward<T, AdaptiveAvgPool>};

[[maybe_unused]] const bool kRegistered = [] {
  pool_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  pool_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  pool_kernels.set(DeviceType::CUDA, DType::Float16, &kKernels<Half>);
  pool_kernels.set(DeviceType::CUDA, DType::BFloat16, &kKernels<BFloat16>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
