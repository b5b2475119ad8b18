// The per-element rules of the fused optimizer steps and of the gradient norm, shared by the
// CPU kernels (inlined into their vectorised loops) and the CUDA kernels. They follow torch's
// single-tensor formulas op for op.
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define LEPTON_RULE_INLINE __host__ __device__ __forceinline__
#else
#define LEPTON_RULE_INLINE inline __attribute__((always_inline))
#endif

namespace lepton::optim_rules {

enum class Decay { None, L2, Decoupled };

// torch.lerp's formula: exact at both ends of the weight range.
template <class A>
LEPTON_RULE_INLINE A lerp(A self, A end, A w) {
  return w < A(0.5) ? self + w * (end - self) : end - (end - self) * (A(1) - w);
}

template <class A>
struct SgdScalars {
  A lr, wd, mom, keep, sign;  // keep = 1 - dampening; sign = -1 when maximizing
};

// One SGD step of parameter p with gradient g; buf is the momentum buffer (unused without momentum).
template <class A, bool Momentum, bool Nesterov, bool FirstStep, Decay D>
LEPTON_RULE_INLINE A sgd_step(A p, A g, A& buf, const SgdScalars<A>& s) {
  A d = s.sign * g;
  if constexpr (D == Decay::L2) d = d + s.wd * p;
  if constexpr (Momentum) {
    buf = FirstStep ? d : buf * s.mom + s.keep * d;
    d = Nesterov ? d + s.mom * buf : buf;
  }
  return p + -s.lr * d;
}

template <class A>
struct AdamScalars {
  A wd, decay, eps, w1, beta2, w2, sign;  // decay = 1 - lr·wd, w1 = 1 - beta1, w2 = 1 - beta2
};

// One Adam/AdamW step: updates m, v (and vmax with amsgrad) and returns the new parameter.
// neg_step = -lr / (1 - beta1^t), bc2 = sqrt(1 - beta2^t).
template <class A, bool Amsgrad, Decay D>
LEPTON_RULE_INLINE A adam_step(A p, A g, A& m, A& v, A& vmax, A neg_step, A bc2, const AdamScalars<A>& s) {
  g = s.sign * g;
  if constexpr (D == Decay::Decoupled) p = p * s.decay;
  if constexpr (D == Decay::L2) g = g + s.wd * p;
  m = lerp(m, g, s.w1);
  v = v * s.beta2;
  v = v + s.w2 * g * g;
  A vi = v;
  if constexpr (Amsgrad) {
    vi = vmax > vi || vmax != vmax ? vmax : vi;  // torch.maximum: NaN propagates
    vmax = vi;
  }
  using std::sqrt;
  const A denom = sqrt(vi) / bc2 + s.eps;
  return p + neg_step * (m / denom);
}

// Per-element |x|^p accumulation: sums for finite p, a max (NaN-propagating) for p = inf.
enum class NormKind { One, Two, Inf, General };

template <NormKind K>
LEPTON_RULE_INLINE double norm_term(double x, double p) {
  using std::fabs;
  using std::pow;
  if constexpr (K == NormKind::One) return fabs(x);
  if constexpr (K == NormKind::Two) return x * x;
  if constexpr (K == NormKind::Inf) return fabs(x);
  return pow(fabs(x), p);
}

template <NormKind K>
LEPTON_RULE_INLINE double norm_combine(double acc, double term) {
  if constexpr (K == NormKind::Inf) return acc > term || acc != acc ? acc : term;
  return acc + term;
}

}  // namespace lepton::optim_rules
