// GCC vector types of the ISA's widest register, for kernels written with vector extensions:
// Vec<T>::V holds W lanes of T, Vec<T>::M as many integer lanes of T's width (what comparing
// two V gives, and what selects and shuffles take).
#pragma once
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lepton/cpu/kernels/common.h"

namespace lepton::cpu::LEPTON_ISA {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX2__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <class T>
struct Vec {
  static constexpr int W = kVecBytes / int(sizeof(T));
  using S = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef T V __attribute__((vector_size(kVecBytes)));
  typedef S M __attribute__((vector_size(kVecBytes)));
};

template <class V, class T>
LEPTON_SIMD_INLINE V loadv(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V, class T>
LEPTON_SIMD_INLINE void storev(T* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// In-register transpose of W vectors of W lanes (v[i][l] <-> v[l][i]): round s swaps the
// off-diagonal s×s blocks of each pair of rows (i, i + s).
template <class T, int S = Vec<T>::W / 2>
LEPTON_SIMD_INLINE void transpose(typename Vec<T>::V* v) {
  using M = typename Vec<T>::M;
  constexpr int W = Vec<T>::W;
  struct Masks {  // lanes of the pair (a = v[i], b = v[i + S]) that make the new v[i] and v[i + S]
    static constexpr std::array<typename Vec<T>::S, 2 * W> make() {
      std::array<typename Vec<T>::S, 2 * W> m{};
      for (int l = 0; l < W; ++l) {
        m[size_t(l)] = (l & S) ? W + (l ^ S) : l;
        m[size_t(W + l)] = (l & S) ? W + l : (l ^ S);
      }
      return m;
    }
  };
  alignas(64) static constexpr std::array<typename Vec<T>::S, 2 * W> masks = Masks::make();
  const M lo = loadv<M>(masks.data()), hi = loadv<M>(masks.data() + W);
#pragma GCC unroll 16
  for (int i = 0; i < W; ++i)
    if (!(i & S)) {
      const typename Vec<T>::V a = __builtin_shuffle(v[i], v[i + S], lo), b = __builtin_shuffle(v[i], v[i + S], hi);
      v[i] = a;
      v[i + S] = b;
    }
  if constexpr (S > 1) transpose<T, S / 2>(v);
}

// dst[c·ld + r] = s·src[r·rs + c] for r < rows, c < cols, and 0 for rows <= r < rows_pad.
template <class T>
void transpose_into(const T* src, int64_t rs, int64_t rows, int64_t cols, T* dst, int64_t ld, T s = T(1),
                    int64_t rows_pad = 0) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  int64_t r0 = 0;
  for (; r0 + W <= rows; r0 += W) {
    int64_t c0 = 0;
    for (; c0 + W <= cols; c0 += W) {
      V v[W];
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) v[i] = loadv<V>(src + (r0 + i) * rs + c0) * s;
      transpose<T>(v);
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) storev(dst + (c0 + i) * ld + r0, v[i]);
    }
    for (; c0 < cols; ++c0)
      for (int i = 0; i < W; ++i) dst[c0 * ld + r0 + i] = s * src[(r0 + i) * rs + c0];
  }
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = r0; r < rows; ++r) dst[c * ld + r] = s * src[r * rs + c];
    for (int64_t r = rows; r < rows_pad; ++r) dst[c * ld + r] = T(0);
  }
}

}  // namespace lepton::cpu::LEPTON_ISA
