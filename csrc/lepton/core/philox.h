// Philox4x32-10 counter-based generator (Salmon et al., SC'11). The same (seed, counter) gives
// the same four words on the CPU and on CUDA, so random tensors match across devices.
#pragma once
#include <cmath>
#include <cstdint>

#include "lepton/core/half.h"

namespace lepton {

struct Philox4 {
  uint32_t v[4];
};

LEPTON_HD static inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

LEPTON_HD static inline Philox4 philox(uint64_t seed, uint64_t counter) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform double in [0, 1) with 53 random bits.
LEPTON_HD static inline double philox_unit(uint32_t hi, uint32_t lo) {
  uint64_t bits = (uint64_t(hi) << 21) ^ (uint64_t(lo) >> 11);
  return double(bits & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller, in double so both devices round to the same float.
LEPTON_HD static inline double philox_normal(const Philox4& r) {
  double u1 = 1.0 - philox_unit(r.v[0], r.v[1]);  // (0, 1]
  double u2 = philox_unit(r.v[2], r.v[3]);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

}  // namespace lepton
