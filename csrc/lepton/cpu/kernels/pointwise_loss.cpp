// Pointwise losses (mse, l1, binary cross-entropy on probabilities and on logits) in one pass
// each way: the forward sums the losses without writing them out when the result is reduced,
// the backward writes ∂loss/∂input times the incoming gradient directly. The fast kernels sum
// chunks in vector lanes, then in double per fixed part of the elements, the parts in order (the
// same result on any thread count); the reference loops element by element in double.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>
#include <vector>

#include "lepton/cpu/kernels/norm_family.h"
#include "lepton/cpu/kernels/vecmath.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

constexpr int64_t kChunk = 4096;

// log(1 + u) for u >= -1 with full relative accuracy near 0 (Goldberg: the rounding error of
// 1 + u cancels in u / ((1 + u) - 1)).
template <class T>
LEPTON_SIMD_INLINE T log1p_of(T u) {
  const T w = T(1) + u;
  return w == T(1) ? u : m_log(w) * (u / (w - T(1)));
}

// σ(x) without overflow for any x.
template <class T>
LEPTON_SIMD_INLINE T sigmoid_of(T x) {
  const T e = m_exp(-(x < 0 ? -x : x));
  return x >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// The loss of one element (unweighted); pw is pos_weight (1 when absent).
template <PointwiseLoss Op, class T>
LEPTON_SIMD_INLINE T loss_of(T x, T y, T pw) {
  if constexpr (Op == PointwiseLoss::MSE) {
    return (x - y) * (x - y);
  } else if constexpr (Op == PointwiseLoss::L1) {
    return x > y ? x - y : y - x;
  } else if constexpr (Op == PointwiseLoss::BCE) {  // torch's form, logs clamped at -100
    const T log_x = std::max(m_log(x), T(-100)), log_1mx = std::max(log1p_of(-x), T(-100));
    return (y - T(1)) * log_1mx - y * log_x;
  } else {  // (1 - y)·x + (1 + (pw - 1)·y)·(log1p(e^-|x|) + max(-x, 0))
    const T ax = x < 0 ? -x : x;
    return (T(1) - y) * x + (T(1) + (pw - T(1)) * y) * (log1p_of(m_exp(-ax)) + (x < 0 ? -x : T(0)));
  }
}

// ∂loss/∂x of one element (unweighted).
template <PointwiseLoss Op, class T>
LEPTON_SIMD_INLINE T grad_of(T x, T y, T pw) {
  if constexpr (Op == PointwiseLoss::MSE) return T(2) * (x - y);
  else if constexpr (Op == PointwiseLoss::L1) return x > y ? T(1) : (x < y ? T(-1) : T(0));
  else if constexpr (Op == PointwiseLoss::BCE) return (x - y) / std::max((T(1) - x) * x, T(1e-12));
  else return (T(1) + (pw - T(1)) * y) * sigmoid_of(x) - pw * y;  // torch's form
}

// Calls f(op) with the op as a compile-time constant.
template <class F>
void with_op(PointwiseLoss op, F&& f) {
  using P = PointwiseLoss;
  switch (op) {
    case P::MSE: return f(std::integral_constant<P, P::MSE>{});
    case P::L1: return f(std::integral_constant<P, P::L1>{});
    case P::BCE: return f(std::integral_constant<P, P::BCE>{});
    case P::BCEWithLogits: return f(std::integral_constant<P, P::BCEWithLogits>{});
  }
}

bool out_of_unit(double x) { return !(x >= 0 && x <= 1); }  // NaN too, as in torch

// Calls f(i0, len, j0) over [b, e) in pieces within one period of pos_weight (j0: where the
// piece starts in it); one piece when there is no pos_weight.
template <class F>
void by_period(const PointwiseLossArgs& a, int64_t b, int64_t e, F&& f) {
  if (!a.pos_weight) return f(b, e - b, int64_t(0));
  const int64_t P = a.pos_weight_period;
  while (b < e) {
    const int64_t j0 = b % P, len = std::min(e - b, P - j0);
    f(b, len, j0);
    b += len;
  }
}

// Position of the first input outside [0, 1] in x[0, m), or -1.
template <class T>
int64_t first_out_of_unit(const T* x, int64_t m) {
  auto outside = [&](int64_t i) LEPTON_SIMD_INLINE_LAMBDA { return x[i] >= 0 && x[i] <= 1 ? T(0) : T(1); };
  if (lane_sum<T>(0, m, outside) == 0) return -1;
  int64_t i = 0;
  while (!out_of_unit(x[i])) ++i;
  return i;
}

// The weighted loss and gradient of element i (j: its place in pos_weight), with the op and the
// optional operands fixed at compile time.
template <PointwiseLoss Op, bool HasW, bool HasPW, class T>
struct Terms {
  const T *X, *Y, *W, *PW;
  LEPTON_SIMD_INLINE T loss(int64_t i, int64_t j) const {
    const T v = loss_of<Op, T>(X[i], Y[i], HasPW ? PW[j] : T(1));
    return HasW ? v * W[i] : v;
  }
  LEPTON_SIMD_INLINE T grad(int64_t i, int64_t j) const {
    const T v = grad_of<Op, T>(X[i], Y[i], HasPW ? PW[j] : T(1));
    return HasW ? v * W[i] : v;
  }
};

// Calls f(terms) with the Terms for op and the operands that are present.
template <class T, class F>
void with_terms(PointwiseLoss op, const PointwiseLossArgs& a, F&& f) {
  const T *X = in<T>(a.input), *Y = in<T>(a.target), *W = in<T>(a.weight), *PW = in<T>(a.pos_weight);
  with_op(op, [&](auto op_c) {
    with_optional(W, PW, [&](auto has_w, auto has_pw) {
      f(Terms<decltype(op_c)::value, decltype(has_w)::value, decltype(has_pw)::value, T>{X, Y, W, PW});
    });
  });
}

template <class T>
int64_t forward_fast(PointwiseLoss op, const PointwiseLossArgs& a) {
  T* L = out<T>(a.loss);
  std::vector<double> part(size_t(kParts) * 8, 0.0);  // per part, a cache line apart
  std::atomic<int64_t> bad{a.n};
  with_terms<T>(op, a, [&](const auto& t) {
    const int64_t chunks = (a.n + kChunk - 1) / kChunk;
    for_parts(chunks, kChunk, [&](int64_t p, int64_t c0, int64_t c1) {
      double& total = part[size_t(p) * 8];
      by_period(a, c0 * kChunk, std::min(a.n, c1 * kChunk), [&](int64_t i0, int64_t len, int64_t j0) {
        for (int64_t s = 0; s < len; s += kChunk) {
          const int64_t b = i0 + s, m = std::min(kChunk, len - s), jb = j0 + s - b;
          if (op == PointwiseLoss::BCE) {
            const int64_t first = first_out_of_unit(t.X + b, m);
            if (first >= 0) {
              for (int64_t cur = bad.load(); b + first < cur && !bad.compare_exchange_weak(cur, b + first);) {}
              return;
            }
          }
          if (a.reduce) {
            auto loss = [&](int64_t i) LEPTON_SIMD_INLINE_LAMBDA { return t.loss(i, jb + i); };
            total += double(lane_sum<T>(b, b + m, loss));
          } else {
#pragma omp simd
            for (int64_t i = b; i < b + m; ++i) L[i] = t.loss(i, jb + i);
          }
        }
      });
    });
  });
  if (bad.load() < a.n) return bad.load();
  if (a.reduce) {
    double total = 0;
    for (int64_t p = 0; p < kParts; ++p) total += part[size_t(p) * 8];
    L[0] = T(total * a.scale);
  }
  return -1;
}

template <class T>
void backward_fast(PointwiseLoss op, const PointwiseLossArgs& a) {
  const T* G = in<T>(a.grad_loss);
  T *DX = out<T>(a.grad_input), *DY = out<T>(a.grad_target);
  const T scale = T(a.scale), g0 = a.grad_stride ? T(0) : G[0] * scale;
  with_terms<T>(op, a, [&](const auto& t) {
    for_chunks(a.n, 1, [&](int64_t b, int64_t e) {
      by_period(a, b, e, [&](int64_t i0, int64_t len, int64_t j0) {
        const int64_t jb = j0 - i0;
        if (a.grad_stride) {
#pragma omp simd
          for (int64_t i = i0; i < i0 + len; ++i) DX[i] = t.grad(i, jb + i) * (G[i] * scale);
        } else {
#pragma omp simd
          for (int64_t i = i0; i < i0 + len; ++i) DX[i] = t.grad(i, jb + i) * g0;
        }
        if (DY) {
#pragma omp simd
          for (int64_t i = i0; i < i0 + len; ++i) DY[i] = -DX[i];
        }
      });
    });
  });
}

template <class T>
int64_t forward_reference(PointwiseLoss op, const PointwiseLossArgs& a) {
  const T *X = in<T>(a.input), *Y = in<T>(a.target), *W = in<T>(a.weight), *PW = in<T>(a.pos_weight);
  double total = 0;
  for (int64_t i = 0; i < a.n; ++i) {
    if (op == PointwiseLoss::BCE && out_of_unit(X[i])) return i;
    T v = 0;
    with_op(op, [&](auto op_c) {
      v = loss_of<decltype(op_c)::value, T>(X[i], Y[i], PW ? PW[i % a.pos_weight_period] : T(1)) * (W ? W[i] : T(1));
    });
    if (!a.reduce) out<T>(a.loss)[i] = v;
    total += v;
  }
  if (a.reduce) out<T>(a.loss)[0] = T(total * a.scale);
  return -1;
}

template <class T>
void backward_reference(PointwiseLoss op, const PointwiseLossArgs& a) {
  const T *X = in<T>(a.input), *Y = in<T>(a.target), *W = in<T>(a.weight), *PW = in<T>(a.pos_weight);
  for (int64_t i = 0; i < a.n; ++i) {
    T v = 0;
    with_op(op, [&](auto op_c) {
      v = grad_of<decltype(op_c)::value, T>(X[i], Y[i], PW ? PW[i % a.pos_weight_period] : T(1)) *
          (in<T>(a.grad_loss)[i * a.grad_stride] * T(a.scale)) * (W ? W[i] : T(1));
    });
    out<T>(a.grad_input)[i] = v;
    if (a.grad_target) out<T>(a.grad_target)[i] = -v;
  }
}

}  // namespace

template <class T, bool Fast>
int64_t loss_forward(PointwiseLoss op, const PointwiseLossArgs& a) {
  return Fast ? forward_fast<T>(op, a) : forward_reference<T>(op, a);
}

template <class T, bool Fast>
void loss_backward(PointwiseLoss op, const PointwiseLossArgs& a) {
  Fast ? backward_fast<T>(op, a) : backward_reference<T>(op, a);
}

LEPTON_NORM_FAMILY_INSTANTIATE(loss_forward, int64_t, PointwiseLoss, const PointwiseLossArgs&)
LEPTON_NORM_FAMILY_INSTANTIATE(loss_backward, void, PointwiseLoss, const PointwiseLossArgs&)

}  // namespace lepton::cpu::LEPTON_ISA
