// The elementwise engine behind unary, binary, compare, where, copy and fill: a functor
// `Out f(In...)` applied over a StridedIter. Contiguous, aligned operands take a vectorised
// kernel (16-byte accesses for the widest operand); anything else the strided kernel.
#pragma once
#include <utility>

#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"

namespace lepton::cuda {

template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <int N>
struct Ptrs {
  char* p[N];
};

template <class... Ts>
constexpr int vec_width() {
  size_t widest = 1;
  ((widest = sizeof(Ts) > widest ? sizeof(Ts) : widest), ...);
  return int(16 / widest);
}

// The inputs come by value: copying each Vec out of global memory first is what makes the
// compiler issue one wide load per operand instead of V narrow ones.
template <int V, class Out, class F, class... In>
__device__ __forceinline__ void apply_vec(const F& f, Vec<Out, V>& out, const Vec<In, V>... in) {
#pragma unroll
  for (int k = 0; k < V; ++k) out.v[k] = f(in.v[k]...);
}

template <int V, class Out, class F, class... In>
__global__ void __launch_bounds__(kThreads) contiguous_kernel(F f, int64_t n, Out* out, const In*... in) {
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  const int64_t nvec = n / V;
  for (int64_t i = start; i < nvec; i += step) {
    Vec<Out, V> o;
    apply_vec<V>(f, o, reinterpret_cast<const Vec<In, V>*>(in)[i]...);
    reinterpret_cast<Vec<Out, V>*>(out)[i] = o;
  }
  const int64_t tail = nvec * V + start;  // the last n % V elements
  if (tail < n) out[tail] = f(in[tail]...);
}

template <class Out, class... In, class F, int N, size_t... K>
__device__ __forceinline__ void apply_at(const F& f, const Ptrs<N>& p, const int64_t* off,
                                         std::index_sequence<K...>) {
  *reinterpret_cast<Out*>(p.p[0] + off[0]) =
      f(*reinterpret_cast<const In*>(p.p[K + 1] + off[K + 1])...);
}

template <class Out, class F, class... In>
__global__ void __launch_bounds__(kThreads)
    strided_kernel(F f, OffsetCalc<1 + sizeof...(In)> calc, Ptrs<1 + sizeof...(In)> p, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const auto off = calc.get(i);
    apply_at<Out, In...>(f, p, off.v, std::index_sequence_for<In...>{});
  }
}

// True when operand k walks memory densely in row-major order (size-1 dims ignored).
inline bool operand_contiguous(const StridedIter& it, int k, size_t itemsize) {
  int64_t expected = int64_t(itemsize);
  for (int d = it.ndim - 1; d >= 0; --d) {
    if (it.shape[d] == 1) continue;
    if (it.strides[k][d] != expected) return false;
    expected *= it.shape[d];
  }
  return true;
}

inline void check_operands(const StridedIter& it, int n, const char* what) {
  LEPTON_CHECK(it.ntensors == n && it.ndim >= 0 && it.ndim <= kMaxDims, Runtime, what,
               ": internal error: expected ", n, " operands and at most ", kMaxDims, " dims, got ",
               it.ntensors, " operands and ", it.ndim, " dims");
}

template <class Out, class... In, class F>
void launch_strided(const StridedIter& it, const F& f, const char* what) {
  constexpr int N = 1 + sizeof...(In);
  check_operands(it, N, what);
  if (it.numel == 0) return;
  Ptrs<N> p;
  for (int k = 0; k < N; ++k) p.p[k] = it.data[k];
  OffsetCalc<N> calc(it.ndim, it.shape, it.strides, it.numel);
  strided_kernel<Out, F, In...><<<grid_for(it.numel), kThreads, 0, current_stream()>>>(f, calc, p, it.numel);
  check_launch(what);
}

template <class Out, class... In, class F, size_t... K>
void launch_contiguous(const StridedIter& it, const F& f, const char* what, std::index_sequence<K...>) {
  constexpr int V = vec_width<Out, In...>();
  contiguous_kernel<V, Out, F, In...><<<grid_for((it.numel + V - 1) / V), kThreads, 0, current_stream()>>>(
      f, it.numel, reinterpret_cast<Out*>(it.data[0]), reinterpret_cast<const In*>(it.data[K + 1])...);
  check_launch(what);
}

// Runs the vectorised kernel when every operand is contiguous and aligned to its vector;
// returns false (launching nothing) otherwise.
template <class Out, class... In, class F>
bool try_contiguous(const StridedIter& it, const F& f, const char* what) {
  constexpr int N = 1 + sizeof...(In);
  check_operands(it, N, what);
  constexpr size_t sizes[N] = {sizeof(Out), sizeof(In)...};
  constexpr int V = vec_width<Out, In...>();
  for (int k = 0; k < N; ++k)
    if (!operand_contiguous(it, k, sizes[k]) || reinterpret_cast<uintptr_t>(it.data[k]) % (sizes[k] * V) != 0)
      return false;
  if (it.numel > 0) launch_contiguous<Out, In...>(it, f, what, std::index_sequence_for<In...>{});
  return true;
}

template <class Out, class... In, class F>
void launch_elementwise(const StridedIter& it, const F& f, const char* what) {
  if (!try_contiguous<Out, In...>(it, f, what)) launch_strided<Out, In...>(it, f, what);
}

}  // namespace lepton::cuda
