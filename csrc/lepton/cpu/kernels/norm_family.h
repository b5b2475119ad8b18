// The norm family's kernels live in several files (norm.cpp: layer and batch norm;
// embedding.cpp, dropout.cpp, pointwise_loss.cpp); fill_norm in norm.cpp gathers them into one
// NormKernels per dtype. Each file instantiates its templates for float and double.
#pragma once
#include <algorithm>
#include <type_traits>

#include "lepton/cpu/kernels/common.h"
#include "lepton/ops/norm_kernels.h"

namespace lepton::cpu::LEPTON_ISA {

template <class T> const T* in(const char* p) { return reinterpret_cast<const T*>(p); }
template <class T> T* out(char* p) { return reinterpret_cast<T*>(p); }

// Calls f(has_a, has_b) with both as compile-time constants, so the loops carry no branch on
// optional operands (weight and bias, weight and pos_weight).
template <class F>
void with_optional(const void* a, const void* b, F&& f) {
  if (a && b) f(std::true_type{}, std::true_type{});
  else if (a) f(std::true_type{}, std::false_type{});
  else if (b) f(std::false_type{}, std::true_type{});
  else f(std::false_type{}, std::false_type{});
}

// Calls f(begin, end) over [0, n) in chunks of `chunk` items that the threads take as they come
// free (one call on this thread when `serial`): on a busy machine a thread the OS holds back
// delays one chunk, not half the op.
template <class F>
void parallel_chunks(int64_t n, int64_t chunk, bool serial, F&& f) {
  if (n <= 0) return;
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int nt = int(std::min<int64_t>(omp_get_max_threads(), chunks));
  if (serial || nt <= 1) return f(int64_t(0), n);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t c = 0; c < chunks; ++c) f(c * chunk, std::min(n, (c + 1) * chunk));
}

// The same with chunks of about 32K elements, for items of `cost` elements each; serial below
// kParallelGrain elements in all.
template <class F>
void for_chunks(int64_t n, int64_t cost, F&& f) {
  cost = std::max<int64_t>(cost, 1);
  parallel_chunks(n, std::max<int64_t>(1, (int64_t(1) << 15) / cost), n * cost < kParallelGrain, f);
}

// For sums that each chunk keeps apart and that are added up in chunk order afterwards: calls
// f(part, begin, end) for kParts equal chunks of [0, n), dynamically scheduled, so the result
// depends neither on which thread ran what nor on the thread count.
constexpr int64_t kParts = 16;

template <class F>
void for_parts(int64_t n, int64_t cost, F&& f) {
  if (n <= 0) return;
  const int64_t chunk = (n + kParts - 1) / kParts, parts = (n + chunk - 1) / chunk;
  const int nt = int(std::min<int64_t>(omp_get_max_threads(), parts));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && n * cost >= kParallelGrain)
  for (int64_t p = 0; p < parts; ++p) f(p, p * chunk, std::min(n, (p + 1) * chunk));
}

// Σ f(i) over [b, e) in kSumLanes independent partial sums. An explicit lane array rather than
// `omp simd reduction`, which GCC 12 silently leaves scalar once the loop is inlined into the
// kernels' lambdas (a serial chain of adds, 4 cycles per element).
// 64 lanes: four float vectors of AVX-512 (eight of AVX2) whose add chains overlap.
constexpr int kSumLanes = 64;

template <class T, class F>
LEPTON_SIMD_INLINE T lane_sum(int64_t b, int64_t e, F&& f) {
  T acc[kSumLanes] = {};
  int64_t i = b;
  for (; i + kSumLanes <= e; i += kSumLanes) {
#pragma omp simd
    for (int l = 0; l < kSumLanes; ++l) acc[l] += f(i + l);
  }
  const int rem = int(e - i);
#pragma omp simd
  for (int l = 0; l < rem; ++l) acc[l] += f(i + l);
  T s = 0;
  for (int l = 0; l < kSumLanes; ++l) s += acc[l];
  return s;
}

// Two sums at once: f(i, s0, s1) adds element i's terms to s0 and s1.
template <class T, class F>
LEPTON_SIMD_INLINE void lane_sum2(int64_t b, int64_t e, T& s0, T& s1, F&& f) {
  T a0[kSumLanes] = {}, a1[kSumLanes] = {};
  int64_t i = b;
  for (; i + kSumLanes <= e; i += kSumLanes) {
#pragma omp simd
    for (int l = 0; l < kSumLanes; ++l) f(i + l, a0[l], a1[l]);
  }
  const int rem = int(e - i);
#pragma omp simd
  for (int l = 0; l < rem; ++l) f(i + l, a0[l], a1[l]);
  s0 = s1 = 0;
  for (int l = 0; l < kSumLanes; ++l) {
    s0 += a0[l];
    s1 += a1[l];
  }
}

// Software prefetch of [p, p + n), a cache line at a time. Kernels that go row by row read a
// few KiB from one place and then jump; the hardware prefetcher does not run ahead across those
// jumps, and asking for the row after next halves the time of layer_norm's forward.
template <class T>
LEPTON_SIMD_INLINE void prefetch(const T* p, int64_t n) {
  for (int64_t i = 0; i < n; i += int64_t(64 / sizeof(T))) __builtin_prefetch(p + i);
}

// Fast (parallel, vectorised) when Fast, else the serial reference loop.
template <class T, bool Fast> int64_t embedding_forward(const EmbeddingArgs& a);
template <class T, bool Fast> int64_t embedding_renorm(const EmbeddingArgs& a);
template <class T, bool Fast> void embedding_backward(const EmbeddingArgs& a);
template <class T, bool Fast> void dropout(const DropoutArgs& a);
template <class T, bool Fast> int64_t loss_forward(PointwiseLoss op, const PointwiseLossArgs& a);
template <class T, bool Fast> void loss_backward(PointwiseLoss op, const PointwiseLossArgs& a);

#define LEPTON_NORM_FAMILY_INSTANTIATE(NAME, RET, ...)     \
  template RET NAME<float, true>(__VA_ARGS__);             \
  template RET NAME<float, false>(__VA_ARGS__);            \
  template RET NAME<double, true>(__VA_ARGS__);            \
  template RET NAME<double, false>(__VA_ARGS__);

}  // namespace lepton::cpu::LEPTON_ISA
