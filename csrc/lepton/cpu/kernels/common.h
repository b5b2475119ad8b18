// Shared by the ISA kernel files. Everything is defined inside lepton::cpu::LEPTON_ISA so that
// each instruction-set build has its own copies (a shared out-of-line copy compiled for
// AVX-512 could otherwise be picked by the linker for the scalar path).
#pragma once
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lepton/core/half.h"
#include "lepton/cpu/kernel_set.h"

#ifndef LEPTON_ISA
#error "LEPTON_ISA must name the instruction set this file is compiled for"
#endif

// Math helpers called inside `omp simd` loops must be inlined, or the loop calls a scalar
// function per element instead of vectorising.
#define LEPTON_SIMD_INLINE inline __attribute__((always_inline))
#define LEPTON_SIMD_INLINE_LAMBDA __attribute__((always_inline))

namespace lepton::cpu::LEPTON_ISA {

// Work below this many elements runs on one thread: a parallel region costs a few µs.
constexpr int64_t kParallelGrain = 32768;

// Arithmetic type of each storage type: 16-bit floats compute in float.
template <class T> struct Acc { using type = T; };
template <> struct Acc<Half> { using type = float; };
template <> struct Acc<BFloat16> { using type = float; };
template <class T> using acc_t = typename Acc<T>::type;

template <class T> inline acc_t<T> load(T v) { return v; }
inline float load(Half v) { return half_to_float(v); }
inline float load(BFloat16 v) { return bf16_to_float(v); }

template <class T> struct Store { template <class A> static T to(A v) { return T(v); } };
template <> struct Store<bool> { template <class A> static bool to(A v) { return v != A(0); } };
template <> struct Store<Half> { template <class A> static Half to(A v) { return float_to_half(float(v)); } };
template <> struct Store<BFloat16> { template <class A> static BFloat16 to(A v) { return float_to_bf16(float(v)); } };
template <class T, class A> inline T store(A v) { return Store<T>::to(v); }

template <class T> constexpr bool is_float_v =
    std::is_floating_point_v<T> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// Splits [0, n) over the OpenMP threads (one thread below `grain`) and calls f(begin, end).
template <class F>
inline void parallel_range(int64_t n, int64_t grain, F&& f) {
  int nt = omp_get_max_threads();
  if (n < grain || nt <= 1) {
    if (n > 0) f(int64_t(0), n);
    return;
  }
  int64_t max_chunks = (n + grain - 1) / grain;
  if (max_chunks < nt) nt = int(max_chunks);
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), k = omp_get_num_threads();
    int64_t begin = n * t / k, end = n * (t + 1) / k;
    if (begin < end) f(begin, end);
  }
}

// Calls f(count, ptrs, inner_strides) for every run of the innermost dimension, in parallel.
template <class F>
inline void for_each_segment(const StridedIter& it, F&& f) {
  const int nd = it.ndim, nt = it.ntensors;
  parallel_range(it.numel, kParallelGrain, [&](int64_t begin, int64_t end) {
    int64_t idx[kMaxDims];
    int64_t rem = begin;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = rem % it.shape[d];
      rem /= it.shape[d];
    }
    int64_t inner_strides[kMaxOperands];
    for (int k = 0; k < nt; ++k) inner_strides[k] = it.strides[k][nd - 1];
    char* ptrs[kMaxOperands];
    for (int64_t pos = begin; pos < end;) {
      for (int k = 0; k < nt; ++k) {
        int64_t off = 0;
        for (int d = 0; d < nd; ++d) off += idx[d] * it.strides[k][d];
        ptrs[k] = it.data[k] + off;
      }
      int64_t n = it.shape[nd - 1] - idx[nd - 1];
      if (n > end - pos) n = end - pos;
      f(n, ptrs, inner_strides);
      pos += n;
      idx[nd - 1] += n;
      for (int d = nd - 1; d > 0 && idx[d] >= it.shape[d]; --d) {
        idx[d] = 0;
        ++idx[d - 1];
      }
    }
  });
}

}  // namespace lepton::cpu::LEPTON_ISA
