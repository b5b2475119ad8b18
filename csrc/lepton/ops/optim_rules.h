// The per-element rules of the fused optimizer steps and of the list norm, shared by the CPU
// kernels (inlined into their vectorised loops) and the CUDA kernels, which differ only in how
// they walk the elements. The rules follow torch's single-tensor formulas op for op.
//
// An update (SgdUpdate, AdamUpdate, ScaleUpdate) is built from one tensor's Slot and the step's
// scalars and applied to element i by u(i).
#pragma once
#include <cmath>
#include <type_traits>

#include "lepton/core/half.h"
#include "lepton/ops/optim_kernels.h"

#ifdef __CUDACC__
#define LEPTON_RULE_INLINE __host__ __device__ __forceinline__
#else
#define LEPTON_RULE_INLINE inline __attribute__((always_inline))
#endif

namespace lepton::optim_rules {

enum class Decay { None, L2, Decoupled };

template <class T>
constexpr bool is_16bit_v = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// A stored value in its arithmetic type (float for the 16-bit formats), and back, rounded to
// nearest even: core/half.h's conversions, which both backends use.
LEPTON_RULE_INLINE float widen(Half v) { return half_to_float(v); }
LEPTON_RULE_INLINE float widen(BFloat16 v) { return bf16_to_float(v); }
template <class T>
LEPTON_RULE_INLINE T widen(T v) { return v; }

template <class T>
struct Narrow {
  template <class A>
  LEPTON_RULE_INLINE static T to(A v) { return T(v); }
};
template <>
struct Narrow<Half> {
  LEPTON_RULE_INLINE static Half to(float v) { return float_to_half(v); }
};
template <>
struct Narrow<BFloat16> {
  LEPTON_RULE_INLINE static BFloat16 to(float v) { return float_to_bf16(v); }
};
template <class T, class A>
LEPTON_RULE_INLINE T narrow(A v) { return Narrow<T>::to(v); }

template <class T>
using acc_of = decltype(widen(T{}));

// The dtype of the state buffers and master weights: float32 with master weights.
template <class P, bool Master>
using state_t = std::conditional_t<Master, float, P>;

// One tensor's buffers in a fused step (unused ones null).
struct Slot {
  void* param = nullptr;  // ScaleUpdate: the tensor scaled
  const void* grad = nullptr;
  void* state[3] = {};  // SGD: momentum buffer; Adam: exp_avg, exp_avg_sq, max_exp_avg_sq
  void* master = nullptr;
  double neg_step = 0, bc2 = 1;  // Adam: -lr / (1 - beta1^t) and sqrt(1 - beta2^t)
};

inline Slot slot_of(const SgdArgs& a, int64_t t) {
  Slot s;
  s.param = a.param[t];
  s.grad = a.grad[t];
  if (a.momentum_buffer) s.state[0] = a.momentum_buffer[t];
  if (a.master) s.master = a.master[t];
  return s;
}

inline Slot slot_of(const AdamArgs& a, int64_t t) {
  Slot s;
  s.param = a.param[t];
  s.grad = a.grad[t];
  s.state[0] = a.exp_avg[t];
  s.state[1] = a.exp_avg_sq[t];
  if (a.max_exp_avg_sq) s.state[2] = a.max_exp_avg_sq[t];
  if (a.master) s.master = a.master[t];
  s.neg_step = -a.step_size[t];
  s.bc2 = a.bias_correction2_sqrt[t];
  return s;
}

inline Slot slot_of(const ScaleArgs& a, int64_t t) {
  Slot s;
  s.param = a.data[t];
  return s;
}

inline Slot slot_of(const NormArgs& a, int64_t t) {  // read only
  Slot s;
  s.param = const_cast<void*>(a.data[t]);
  return s;
}

// torch.lerp's formula: exact at both ends of the weight range.
template <class A>
LEPTON_RULE_INLINE A lerp(A self, A end, A w) {
  return w < A(0.5) ? self + w * (end - self) : end - (end - self) * (A(1) - w);
}

// What every step reads: the weight being optimized, from the master when there is one (then
// written to both, the param getting the master rounded to its dtype), and the grad.
template <class P, bool Master>
struct StepBase {
  using A = acc_of<P>;
  using S = state_t<P, Master>;
  P* param;
  S* master;
  const P* g;
  LEPTON_RULE_INLINE explicit StepBase(const Slot& t)
      : param(static_cast<P*>(t.param)), master(static_cast<S*>(t.master)), g(static_cast<const P*>(t.grad)) {}
  LEPTON_RULE_INLINE A weight(int64_t i) const {
    if constexpr (Master) return master[i];
    else return widen(param[i]);
  }
  LEPTON_RULE_INLINE void set_weight(int64_t i, A w) const {
    if constexpr (Master) master[i] = w;
    param[i] = narrow<P>(w);
  }
  LEPTON_RULE_INLINE A grad(int64_t i) const { return widen(g[i]); }
  LEPTON_RULE_INLINE static S* state(const Slot& t, int k) { return static_cast<S*>(t.state[k]); }
};

template <class A>
struct SgdScalars {
  A lr, wd, mom, keep, sign;  // keep = 1 - dampening; sign = -1 when maximizing
};

template <class A>
SgdScalars<A> sgd_scalars(const SgdHyper& h) {
  return {A(h.lr), A(h.weight_decay), A(h.momentum), A(1 - h.dampening), h.maximize ? A(-1) : A(1)};
}

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

template <class P, bool Master, bool Momentum, bool Nesterov, bool FirstStep, Decay D>
struct SgdUpdate : StepBase<P, Master> {
  using Base = StepBase<P, Master>;
  using typename Base::A;
  using typename Base::S;
  using Scalars = SgdScalars<A>;
  S* buf;
  Scalars s;
  LEPTON_RULE_INLINE SgdUpdate(const Slot& t, const Scalars& scalars) : Base(t), buf(Base::state(t, 0)), s(scalars) {}
  LEPTON_RULE_INLINE void operator()(int64_t i) const {
    A m = Momentum && !FirstStep ? A(widen(buf[i])) : A(0);
    this->set_weight(i, sgd_step<A, Momentum, Nesterov, FirstStep, D>(this->weight(i), this->grad(i), m, s));
    if constexpr (Momentum) buf[i] = narrow<S>(m);
  }
};

template <class A>
struct AdamScalars {
  A wd, decay, eps, w1, beta2, w2, sign;  // decay = 1 - lr·wd, w1 = 1 - beta1, w2 = 1 - beta2
};

template <class A>
AdamScalars<A> adam_scalars(const AdamHyper& h) {
  return {A(h.weight_decay), A(1 - h.lr * h.weight_decay), A(h.eps), A(1 - h.beta1),
          A(h.beta2),        A(1 - h.beta2),               h.maximize ? A(-1) : A(1)};
}

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

template <class P, bool Master, bool Amsgrad, Decay D>
struct AdamUpdate : StepBase<P, Master> {
  using Base = StepBase<P, Master>;
  using typename Base::A;
  using typename Base::S;
  using Scalars = AdamScalars<A>;
  S *m, *v, *vmax;
  A neg_step, bc2;
  Scalars s;
  LEPTON_RULE_INLINE AdamUpdate(const Slot& t, const Scalars& scalars)
      : Base(t),
        m(Base::state(t, 0)),
        v(Base::state(t, 1)),
        vmax(Base::state(t, 2)),
        neg_step(A(t.neg_step)),
        bc2(A(t.bc2)),
        s(scalars) {}
  LEPTON_RULE_INLINE void operator()(int64_t i) const {
    A mi = widen(m[i]), vi = widen(v[i]), vmi = Amsgrad ? A(widen(vmax[i])) : A(0);
    this->set_weight(i, adam_step<A, Amsgrad, D>(this->weight(i), this->grad(i), mi, vi, vmi, neg_step, bc2, s));
    m[i] = narrow<S>(mi);
    v[i] = narrow<S>(vi);
    if constexpr (Amsgrad) vmax[i] = narrow<S>(vmi);
  }
};

// x *= scale, rounded once to x's dtype.
template <class T>
struct ScaleUpdate {
  using Scalars = acc_of<T>;
  T* x;
  Scalars scale;
  LEPTON_RULE_INLINE ScaleUpdate(const Slot& t, Scalars s) : x(static_cast<T*>(t.param)), scale(s) {}
  LEPTON_RULE_INLINE void operator()(int64_t i) const { x[i] = narrow<T>(widen(x[i]) * scale); }
};

// ---- choosing an update's compile-time options from the runtime ones

// f(std::true_type) when b (and Allowed), else f(std::false_type).
template <bool Allowed = true, class F>
void bool_switch(bool b, F&& f) {
  if constexpr (Allowed) {
    if (b) return f(std::true_type{});
  }
  f(std::false_type{});
}

template <Decay D>
using decay_c = std::integral_constant<Decay, D>;

template <class Update>
struct Tag {
  using type = Update;
};

// Calls f(Tag<SgdUpdate<P, ...>>) with the update these arguments need (master weights only
// for 16-bit params).
template <class P, class F>
void with_sgd_update(const SgdArgs& a, F&& f) {
  const bool momentum = a.h.momentum != 0;
  bool_switch<is_16bit_v<P>>(a.master != nullptr, [&](auto master) {
    bool_switch(momentum, [&](auto mom) {
      constexpr bool M = decltype(mom)::value;
      bool_switch<M>(a.h.nesterov, [&](auto nest) {
        bool_switch<M>(a.h.first_step, [&](auto first) {
          auto go = [&](auto decay) {
            f(Tag<SgdUpdate<P, decltype(master)::value, M, decltype(nest)::value, decltype(first)::value,
                            decltype(decay)::value>>{});
          };
          a.h.weight_decay != 0 ? go(decay_c<Decay::L2>{}) : go(decay_c<Decay::None>{});
        });
      });
    });
  });
}

// Calls f(Tag<AdamUpdate<P, ...>>) likewise.
template <class P, class F>
void with_adam_update(const AdamArgs& a, F&& f) {
  const Decay d = a.h.weight_decay == 0 ? Decay::None : a.h.decoupled_weight_decay ? Decay::Decoupled : Decay::L2;
  bool_switch<is_16bit_v<P>>(a.master != nullptr, [&](auto master) {
    bool_switch(a.h.amsgrad, [&](auto ams) {
      auto go = [&](auto decay) {
        f(Tag<AdamUpdate<P, decltype(master)::value, decltype(ams)::value, decltype(decay)::value>>{});
      };
      d == Decay::None ? go(decay_c<Decay::None>{}) : d == Decay::L2 ? go(decay_c<Decay::L2>{})
                                                                     : go(decay_c<Decay::Decoupled>{});
    });
  });
}

// ---- the list norm: per-element |x|^p accumulation, sums for finite p, a max (NaN-propagating) for p = inf
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

// Calls f(std::integral_constant<NormKind, K>) for the norm of order p.
template <class F>
auto with_norm_kind(double p, F&& f) {
  if (p == 2) return f(std::integral_constant<NormKind, NormKind::Two>{});
  if (p == 1) return f(std::integral_constant<NormKind, NormKind::One>{});
  if (std::isinf(p)) return f(std::integral_constant<NormKind, NormKind::Inf>{});
  return f(std::integral_constant<NormKind, NormKind::General>{});
}

}  // namespace lepton::optim_rules
