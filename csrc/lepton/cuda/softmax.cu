// Softmax, log-softmax and softmax cross-entropy along the rows of a contiguous [rows, cols]
// block on the GPU, with the CPU kernels' formulas (cpu/kernels/softmax.cpp). One warp per row:
// each lane strides over the row and the row's max and sums meet in warp shuffles, so a row
// costs no shared memory and no block barrier.
#include <climits>

#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"

namespace lepton::cuda {
namespace {

constexpr int kRowsPerBlock = kThreads / 32;

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// NaN entries are skipped here and propagate through the exp pass instead, as on the CPU.
template <class T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o /= 2) {
    const T w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

template <class T>
__device__ __forceinline__ T row_max(const T* x, int64_t n, int lane) {
  T m = -INFINITY;
  for (int64_t i = lane; i < n; i += 32) m = x[i] > m ? x[i] : m;
  return warp_max(m);
}

// The warp's row, or -1 past the end (whole warps leave together, so shuffles stay converged).
__device__ __forceinline__ int64_t warp_row(int64_t rows) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  return r < rows ? r : -1;
}

template <class T>
__global__ void __launch_bounds__(kThreads) softmax_forward_kernel(SoftmaxOp op, SoftmaxArgs a) {
  const int64_t r = warp_row(a.rows);
  if (r < 0) return;
  const int lane = threadIdx.x % 32;
  const int64_t C = a.cols;
  const T* x = reinterpret_cast<const T*>(a.x) + r * C;
  T* y = reinterpret_cast<T*>(a.out) + r * C;
  const T m = row_max(x, C, lane);
  T s = 0;
  for (int64_t i = lane; i < C; i += 32) s += exp(x[i] - m);
  s = warp_sum(s);
  if (op == SoftmaxOp::LogSoftmax) {
    const T log_s = log(s);  // (x - m) - log s keeps the precision of x - m
    for (int64_t i = lane; i < C; i += 32) y[i] = (x[i] - m) - log_s;
  } else {
    const T inv = T(1) / s;
    for (int64_t i = lane; i < C; i += 32) y[i] = exp(x[i] - m) * inv;
  }
}

// softmax: dx = y·(g - Σ g·y); log_softmax: dx = g - exp(y)·Σ g.
template <class T>
__global__ void __launch_bounds__(kThreads) softmax_backward_kernel(SoftmaxOp op, SoftmaxArgs a) {
  const int64_t r = warp_row(a.rows);
  if (r < 0) return;
  const int lane = threadIdx.x % 32;
  const int64_t C = a.cols;
  const T* y = reinterpret_cast<const T*>(a.x) + r * C;
  const T* g = reinterpret_cast<const T*>(a.grad) + r * C;
  T* dx = reinterpret_cast<T*>(a.out) + r * C;
  T s = 0;
  if (op == SoftmaxOp::Softmax) {
    for (int64_t i = lane; i < C; i += 32) s += g[i] * y[i];
    s = warp_sum(s);
    for (int64_t i = lane; i < C; i += 32) dx[i] = y[i] * (g[i] - s);
  } else {
    for (int64_t i = lane; i < C; i += 32) s += g[i];
    s = warp_sum(s);
    for (int64_t i = lane; i < C; i += 32) dx[i] = g[i] - exp(y[i]) * s;
  }
}

// loss = log Σexp(x-m) - (1-ε)(x_t - m) - ε/C·Σ(x - m); *bad receives the smallest row whose
// (non-ignored) target is out of range.
template <class T>
__global__ void __launch_bounds__(kThreads) cross_entropy_kernel(CrossEntropyArgs a, long long* bad) {
  const int64_t r = warp_row(a.rows);
  if (r < 0) return;
  const int lane = threadIdx.x % 32;
  const int64_t C = a.cols, t = a.target[r];
  T* loss = reinterpret_cast<T*>(a.loss);
  T* lse = reinterpret_cast<T*>(a.lse);
  if (t == a.ignore_index || t < 0 || t >= C) {
    if (lane == 0) {
      if (t != a.ignore_index) atomicMin(bad, (long long)r);
      loss[r] = lse[r] = T(0);
    }
    return;
  }
  const T eps = T(a.label_smoothing);
  const T* x = reinterpret_cast<const T*>(a.logits) + r * C;
  const T m = row_max(x, C, lane);
  T s = 0, d = 0;
  for (int64_t i = lane; i < C; i += 32) {
    s += exp(x[i] - m);
    d += x[i] - m;
  }
  s = warp_sum(s);
  d = warp_sum(d);
  if (lane == 0) {
    const T log_s = log(s);
    loss[r] = log_s - (1 - eps) * (x[t] - m) - (eps != T(0) ? eps / T(C) * d : T(0));
    lse[r] = m + log_s;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) cross_entropy_backward_kernel(CrossEntropyArgs a) {
  const int64_t r = warp_row(a.rows);
  if (r < 0) return;
  const int lane = threadIdx.x % 32;
  const int64_t C = a.cols, t = a.target[r];
  T* dx = reinterpret_cast<T*>(a.grad) + r * C;
  if (t == a.ignore_index) {
    for (int64_t i = lane; i < C; i += 32) dx[i] = T(0);
    return;
  }
  const T eps = T(a.label_smoothing), off = eps / T(C);
  const T* x = reinterpret_cast<const T*>(a.logits) + r * C;
  const T g = reinterpret_cast<const T*>(a.grad_loss)[r], shift = reinterpret_cast<const T*>(a.lse)[r];
  for (int64_t i = lane; i < C; i += 32) dx[i] = (exp(x[i] - shift) - off) * g - (i == t ? (1 - eps) * g : T(0));
}

unsigned row_blocks(int64_t rows) { return unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

template <class T>
void softmax_forward_cuda(SoftmaxOp op, const SoftmaxArgs& a) {
  if (a.rows == 0) return;
  softmax_forward_kernel<T><<<row_blocks(a.rows), kThreads, 0, current_stream()>>>(op, a);
  check_launch("softmax kernel");
}

template <class T>
void softmax_backward_cuda(SoftmaxOp op, const SoftmaxArgs& a) {
  if (a.rows == 0) return;
  softmax_backward_kernel<T><<<row_blocks(a.rows), kThreads, 0, current_stream()>>>(op, a);
  check_launch("softmax backward kernel");
}

template <class T>
int64_t cross_entropy_cuda(const CrossEntropyArgs& a) {
  if (a.rows == 0) return -1;
  Workspace flag(sizeof(long long));
  const long long none = LLONG_MAX;
  copy_and_wait(flag.get(), &none, sizeof none, cudaMemcpyHostToDevice, "cross_entropy flag");
  cross_entropy_kernel<T><<<row_blocks(a.rows), kThreads, 0, current_stream()>>>(a, static_cast<long long*>(flag.get()));
  check_launch("cross_entropy kernel");
  long long bad = 0;
  copy_and_wait(&bad, flag.get(), sizeof bad, cudaMemcpyDeviceToHost, "cross_entropy flag");
  return bad == LLONG_MAX ? -1 : int64_t(bad);
}

template <class T>
void cross_entropy_backward_cuda(const CrossEntropyArgs& a) {
  if (a.rows == 0) return;
  cross_entropy_backward_kernel<T><<<row_blocks(a.rows), kThreads, 0, current_stream()>>>(a);
  check_launch("cross_entropy backward kernel");
}

template <class T>
constexpr SoftmaxKernels kKernels = {&softmax_forward_cuda<T>, &softmax_backward_cuda<T>, &cross_entropy_cuda<T>,
                                     &cross_entropy_backward_cuda<T>};

[[maybe_unused]] const bool kRegistered = [] {
  softmax_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  softmax_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
