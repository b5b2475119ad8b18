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

}  // namespace lepton::cpu::LEPTON_ISA
