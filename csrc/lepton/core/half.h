// 16-bit floating-point storage types. Arithmetic happens in float; these only convert.
// The conversion helpers are static inline so that kernels compiled for different
// instruction sets never share (and never swap) an out-of-line copy.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LEPTON_HD __host__ __device__
#else
#define LEPTON_HD
#endif

namespace lepton {

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

LEPTON_HD static inline float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
LEPTON_HD static inline uint32_t float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

LEPTON_HD static inline float bf16_to_float(BFloat16 h) { return bits_to_float(uint32_t(h.bits) << 16); }

// Round to nearest even; NaN stays a (quiet) NaN.
LEPTON_HD static inline BFloat16 float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return BFloat16{uint16_t(u >> 16)};
}

LEPTON_HD static inline float half_to_float(Half h) {
  uint32_t sign = uint32_t(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    // zero or subnormal: value = man * 2^-24
    float v = float(man) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

// Round to nearest even, with overflow to inf and correct subnormals.
LEPTON_HD static inline Half float_to_half(float f) {
  uint32_t u = float_to_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return Half{uint16_t(sign | 0x7e00u)};  // nan
  if (a >= 0x477ff000u) return Half{uint16_t(sign | 0x7c00u)};  // overflow (>= 65520) -> inf
  if (a < 0x38800000u) {                                        // below the smallest normal half
    // Adding 0.5 (2^-1) makes the FPU round the value at the 2^-24 position for us.
    float v = bits_to_float(a) + 0.5f;
    return Half{uint16_t(sign | uint16_t(float_to_bits(v) - 0x3f000000u))};
  }
  uint32_t mant_odd = (a >> 13) & 1u;
  a += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
  return Half{uint16_t(sign | uint16_t(a >> 13))};
}

}  // namespace lepton
