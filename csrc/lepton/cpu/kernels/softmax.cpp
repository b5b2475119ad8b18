// Softmax, log-softmax and softmax cross-entropy along the rows of a contiguous [rows, cols]
// block: each row is a max pass, a sum-of-exp pass and a write pass, vectorised within the row
// and parallel across rows.
#include "lepton/cpu/kernels/vecmath.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

// Runs f(row) for every row, on one thread when the whole block is small.
template <class F>
void for_rows(int64_t rows, int64_t cols, F&& f) {
  parallel_range(rows, 1 + kParallelGrain / (cols + 1), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) f(r);
  });
}

// NaN entries are skipped here and propagate through the exp pass instead.
template <class T>
T row_max(const T* x, int64_t n) {
  T m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

template <class T>
T row_sum_exp(const T* x, int64_t n, T m) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += m_exp(x[i] - m);
  return s;
}

template <class T>
T row_dot(const T* a, const T* b, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class T>
void softmax_forward(SoftmaxOp op, const SoftmaxArgs& a) {
  const int64_t C = a.cols;
  for_rows(a.rows, C, [&](int64_t r) {
    const T* x = reinterpret_cast<const T*>(a.x) + r * C;
    T* y = reinterpret_cast<T*>(a.out) + r * C;
    const T m = row_max(x, C);
    if (op == SoftmaxOp::LogSoftmax) {
      // (x - m) - log s, not x - (m + log s): the latter rounds log s to the scale of m.
      const T log_s = m_log(row_sum_exp(x, C, m));
#pragma omp simd
      for (int64_t i = 0; i < C; ++i) y[i] = (x[i] - m) - log_s;
      return;
    }
    // Softmax keeps the exponentials in y, so the write pass is a scale instead of a second exp.
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < C; ++i) {
      y[i] = m_exp(x[i] - m);
      s += y[i];
    }
    const T inv = T(1) / s;
#pragma omp simd
    for (int64_t i = 0; i < C; ++i) y[i] *= inv;
  });
}

// softmax: dx = y·(g - Σ g·y); log_softmax: dx = g - exp(y)·Σ g.
template <class T>
void softmax_backward(SoftmaxOp op, const SoftmaxArgs& a) {
  const int64_t C = a.cols;
  for_rows(a.rows, C, [&](int64_t r) {
    const T* y = reinterpret_cast<const T*>(a.x) + r * C;
    const T* g = reinterpret_cast<const T*>(a.grad) + r * C;
    T* dx = reinterpret_cast<T*>(a.out) + r * C;
    if (op == SoftmaxOp::Softmax) {
      const T dot = row_dot(g, y, C);
#pragma omp simd
      for (int64_t i = 0; i < C; ++i) dx[i] = y[i] * (g[i] - dot);
    } else {
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < C; ++i) sum += g[i];
#pragma omp simd
      for (int64_t i = 0; i < C; ++i) dx[i] = g[i] - m_exp(y[i]) * sum;
    }
  });
}

// loss = log Σexp(x-m) - (1-ε)(x_t - m) - ε/C·Σ(x - m): shifted by the max so that large logits
// don't cancel.
template <class T>
int64_t cross_entropy_forward(const CrossEntropyArgs& a) {
  const int64_t C = a.cols;
  const T eps = T(a.label_smoothing);
  T* loss = reinterpret_cast<T*>(a.loss);
  T* lse = reinterpret_cast<T*>(a.lse);
  int64_t bad = -1;
  for_rows(a.rows, C, [&](int64_t r) {
    const int64_t t = a.target[r];
    if (t == a.ignore_index || t < 0 || t >= C) {
      if (t != a.ignore_index) {
#pragma omp atomic write
        bad = r;
      }
      loss[r] = lse[r] = 0;
      return;
    }
    const T* x = reinterpret_cast<const T*>(a.logits) + r * C;
    const T m = row_max(x, C);
    T s = 0, d = 0;
    if (eps != 0) {
#pragma omp simd reduction(+ : s, d)
      for (int64_t i = 0; i < C; ++i) {
        s += m_exp(x[i] - m);
        d += x[i] - m;
      }
    } else {
      s = row_sum_exp(x, C, m);
    }
    const T log_s = m_log(s);
    loss[r] = log_s - (1 - eps) * (x[t] - m) - (eps != 0 ? eps / T(C) * d : T(0));
    lse[r] = m + log_s;
  });
  return bad;
}

template <class T>
void cross_entropy_backward(const CrossEntropyArgs& a) {
  const int64_t C = a.cols;
  const T eps = T(a.label_smoothing), off = eps / T(C);
  for_rows(a.rows, C, [&](int64_t r) {
    T* dx = reinterpret_cast<T*>(a.grad) + r * C;
    const int64_t t = a.target[r];
    if (t == a.ignore_index) {
      std::memset(dx, 0, size_t(C) * sizeof(T));
      return;
    }
    const T* x = reinterpret_cast<const T*>(a.logits) + r * C;
    const T g = reinterpret_cast<const T*>(a.grad_loss)[r], shift = reinterpret_cast<const T*>(a.lse)[r];
#pragma omp simd
    for (int64_t i = 0; i < C; ++i) dx[i] = (m_exp(x[i] - shift) - off) * g;
    dx[t] -= (1 - eps) * g;
  });
}

template <class T>
const SoftmaxKernels* softmax_set() {
  static const SoftmaxKernels k = {&softmax_forward<T>, &softmax_backward<T>, &cross_entropy_forward<T>,
                                   &cross_entropy_backward<T>};
  return &k;
}

}  // namespace

void fill_softmax(KernelSet& set) {
  set.softmax[int(DType::Float32)] = softmax_set<float>();
  set.softmax[int(DType::Float64)] = softmax_set<double>();
}

}  // namespace lepton::cpu::LEPTON_ISA
