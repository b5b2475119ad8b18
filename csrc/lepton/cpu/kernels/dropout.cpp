// Dropout in one pass: the keep mask comes from Philox4x32-10 words made on the fly, so it never
// touches memory, and the backward makes the same mask again from the saved (seed, offset).
// Element i of block b = i / 64 reads word (i % 64) / 16 of counter offset + 16b + i % 16: the
// fast kernel runs 16 counters side by side in vector lanes and each of the four words then
// masks 16 consecutive elements. The reference computes each element's word by itself.
#include "lepton/core/philox.h"
#include "lepton/cpu/kernels/norm_family.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

constexpr int64_t kBlock = 64;
constexpr int kLanes = 16;

// Kept when word >= threshold; p = 1 drops everything (scale 0, every word passes).
struct Mask {
  uint32_t threshold;
  double scale;
};

Mask mask_of(double p) {
  if (p >= 1) return {0, 0.0};
  return {uint32_t(p * 4294967296.0), 1 / (1 - p)};
}

// The lanes hold 32-bit Philox words; with AVX-512DQ they sit in 64-bit lanes, where each
// 32x32->64 product is one vpmullq and no shuffles are needed (2x faster than 32-bit lanes,
// which the compiler widens and narrows around every multiply; those are faster elsewhere).
#if defined(__AVX512DQ__)
using PhiloxLane = uint64_t;
#else
using PhiloxLane = uint32_t;
#endif

// words[w][lane] = word w of Philox(seed, counter + lane), for 16 lanes at once.
LEPTON_SIMD_INLINE void philox_lanes(uint64_t seed, uint64_t counter, uint32_t words[4][kLanes]) {
  const PhiloxLane key0 = uint32_t(seed), key1 = uint32_t(seed >> 32);
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t c = counter + uint64_t(l);
    PhiloxLane c0 = uint32_t(c), c1 = uint32_t(c >> 32), c2 = 0, c3 = 0, k0 = key0, k1 = key1;
    for (int r = 0; r < 10; ++r) {
      const uint64_t p0 = uint64_t(c0) * 0xD2511F53u, p1 = uint64_t(c2) * 0xCD9E8D57u;
      const PhiloxLane n0 = PhiloxLane(p1 >> 32) ^ c1 ^ k0, n2 = PhiloxLane(p0 >> 32) ^ c3 ^ k1;
      c0 = n0;
      c1 = uint32_t(p1);
      c2 = n2;
      c3 = uint32_t(p0);
      k0 = uint32_t(k0 + 0x9E3779B9u);
      k1 = uint32_t(k1 + 0xBB67AE85u);
    }
    words[0][l] = uint32_t(c0);
    words[1][l] = uint32_t(c1);
    words[2][l] = uint32_t(c2);
    words[3][l] = uint32_t(c3);
  }
}

// o = x·(word >= threshold ? scale : 0) for one block. Kept out of line: inlined next to the
// 64-bit Philox lanes, GCC 12 fails to vectorise this float loop.
template <class T>
__attribute__((noinline)) void apply_block(const T* __restrict x, T* __restrict o, const uint32_t* __restrict word,
                                           uint32_t threshold, T scale) {
#pragma omp simd
  for (int k = 0; k < kBlock; ++k) o[k] = x[k] * (word[k] >= threshold ? scale : T(0));
}

template <class T>
void dropout_fast(const DropoutArgs& a) {
  const Mask m = mask_of(a.p);
  const T scale = T(m.scale);
  const T* X = in<T>(a.x);
  T* O = out<T>(a.out);
  const int64_t blocks = (a.n + kBlock - 1) / kBlock;
  for_chunks(blocks, kBlock, [&](int64_t b0, int64_t b1) {
    alignas(64) uint32_t words[4][kLanes];
    for (int64_t b = b0; b < b1; ++b) {
      philox_lanes(a.seed, a.offset + uint64_t(b) * kLanes, words);
      const int64_t base = b * kBlock;
      if (base + kBlock <= a.n) {  // words[w][l] is the word of element base + 16w + l
        apply_block(X + base, O + base, &words[0][0], m.threshold, scale);
      } else {
        for (int64_t i = base; i < a.n; ++i) {
          const int64_t r = i - base;
          O[i] = X[i] * (words[r / kLanes][r % kLanes] >= m.threshold ? scale : T(0));
        }
      }
    }
  });
}

template <class T>
void dropout_reference(const DropoutArgs& a) {
  const Mask m = mask_of(a.p);
  for (int64_t i = 0; i < a.n; ++i) {
    const Philox4 r = philox(a.seed, a.offset + uint64_t(i / kBlock) * kLanes + uint64_t(i % kLanes));
    const uint32_t word = r.v[(i % kBlock) / kLanes];
    out<T>(a.out)[i] = in<T>(a.x)[i] * (word >= m.threshold ? T(m.scale) : T(0));
  }
}

}  // namespace

template <class T, bool Fast>
void dropout(const DropoutArgs& a) {
  if constexpr (Fast)
    dropout_fast<T>(a);
  else
    dropout_reference<T>(a);
}

LEPTON_NORM_FAMILY_INSTANTIATE(dropout, void, const DropoutArgs&)

}  // namespace lepton::cpu::LEPTON_ISA
