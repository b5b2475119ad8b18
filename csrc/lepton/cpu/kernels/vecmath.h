// Branch-free float32 exp, log, tanh and erf that the compiler vectorises (libm's scalar calls
// would not be). Polynomials after Cephes and Abramowitz & Stegun 7.1.26; accuracy is a few
// ulp for exp/log/tanh and about 2e-7 absolute for erf. float64 uses libm.
#pragma once
#include "lepton/cpu/kernels/common.h"

namespace lepton::cpu::LEPTON_ISA {

LEPTON_SIMD_INLINE float bitcast_f(int32_t i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
LEPTON_SIMD_INLINE int32_t bitcast_i(float f) {
  int32_t i;
  memcpy(&i, &f, 4);
  return i;
}
// Round to nearest integer (valid for |x| < 2^22) without SSE4.1's roundps.
LEPTON_SIMD_INLINE float round_small(float x) { return (x + 12582912.0f) - 12582912.0f; }

LEPTON_SIMD_INLINE float vexp(float x) {
  float xc = x > 88.7f ? 88.7f : x;
  xc = xc < -86.6f ? -86.6f : xc;  // keeps 2^(n-1) a normal float
  float n = round_small(xc * 1.44269504088896341f);
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  float scale = bitcast_f((int32_t(n) + 126) << 23);  // 2^(n-1): no overflow at n = 128
  float y = p * scale * 2.0f;
  y = x > 88.7228f ? INFINITY : y;
  y = x < -87.3365f ? 0.0f : y;
  return x != x ? x : y;
}

LEPTON_SIMD_INLINE float vlog(float x) {
  bool sub = x < 1.17549435e-38f;
  float xs = sub ? x * 8388608.0f : x;  // lift subnormals into the normal range
  int32_t bits = bitcast_i(xs);
  float e = float(((bits >> 23) & 0xff) - 126) - (sub ? 23.0f : 0.0f);
  float m = bitcast_f((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  bool small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += e * -2.12194440e-4f;
  y += -0.5f * z;
  float r = m + y + e * 0.693359375f;
  r = x == INFINITY ? x : r;
  r = x == 0.0f ? -INFINITY : r;
  r = x < 0.0f ? NAN : r;
  return x != x ? x : r;
}

// exp and log for either float type: the polynomials above for float32, libm for float64.
LEPTON_SIMD_INLINE float m_exp(float x) { return vexp(x); }
LEPTON_SIMD_INLINE double m_exp(double x) { return std::exp(x); }
LEPTON_SIMD_INLINE float m_log(float x) { return vlog(x); }
LEPTON_SIMD_INLINE double m_log(double x) { return std::log(x); }

LEPTON_SIMD_INLINE float vtanh(float x) {
  float ax = x < 0 ? -x : x;
  float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = p * z * x + x;
  float t = vexp(2.0f * (ax > 20.0f ? 20.0f : ax));
  float big = 1.0f - 2.0f / (t + 1.0f);
  big = x < 0 ? -big : big;
  return ax < 0.625f ? small : big;
}

LEPTON_SIMD_INLINE float vsigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }

// erfc(|x|) with relative (not just absolute) error ~1e-7 (Numerical Recipes' erfcc): gelu's
// negative side is 0.5 x erfc(|u|), so an absolute-error fit loses digits in the tail.
LEPTON_SIMD_INLINE float verfc_abs(float ax) {
  float t = 1.0f / (1.0f + 0.5f * ax);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * vexp(p - ax * ax);
}

LEPTON_SIMD_INLINE float verf(float x) {
  float ax = x < 0 ? -x : x;
  float z = x * x;
  float p = 7.853861353153693e-5f;  // erf(x) = x P(x^2) for |x| < 1
  p = p * z - 8.010193625184903e-4f;
  p = p * z + 5.188327685732524e-3f;
  p = p * z - 2.685381193529856e-2f;
  p = p * z + 1.128358514861418e-1f;
  p = p * z - 3.761262582423300e-1f;
  p = p * z + 1.128379165726710e0f;
  float tail = 1.0f - verfc_abs(ax);
  tail = x < 0 ? -tail : tail;
  return ax < 1.0f ? x * p : tail;
}

// 0.5 x (1 + erf(x / sqrt 2)), using erfc on the negative side to avoid cancellation.
LEPTON_SIMD_INLINE float vgelu(float x) {
  float u = x * 0.70710678118654752f;
  float au = u < 0 ? -u : u;
  float one_plus_erf = au < 1.0f ? 1.0f + verf(u) : (u < 0 ? verfc_abs(au) : 2.0f - verfc_abs(au));
  return 0.5f * x * one_plus_erf;
}

}  // namespace lepton::cpu::LEPTON_ISA
