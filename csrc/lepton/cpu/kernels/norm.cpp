// CPU kernels for layer_norm and batch_norm, forward and backward, each beside a serial
// reference loop; fill_norm also gathers the rest of the family (norm_family.h).
//
// Layer norm works row by row: both moments in one pass, then the output, with the row still in
// L1, so memory is read once (the row after next is prefetched); chunks of rows are shared among
// the threads. Batch norm works channel by channel when a channel's values come in runs
// (l >= kRun): the statistics and then the output for one channel while it is still in L2. With
// short runs (l = 1 for [N, C] input) it goes over whole rows of c·l values instead, summing
// columns per part of the rows. Sums over rows are kept per fixed part and added in order, so
// results do not depend on the thread count.
#include <cmath>
#include <vector>

#include "lepton/cpu/kernels/norm_family.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

// Σ (x - shift): the mean is summed relative to one of the values, so that a large common
// offset (1e4 ± 1e-2) does not swamp the float accumulator.
template <class T>
LEPTON_SIMD_INLINE T vsum_dev(const T* x, int64_t n, T shift) {
  return lane_sum<T>(0, n, [&](int64_t i) LEPTON_SIMD_INLINE_LAMBDA { return x[i] - shift; });
}

template <class T>
LEPTON_SIMD_INLINE T vsum_sq_dev(const T* x, int64_t n, T mean) {
  return lane_sum<T>(0, n, [&](int64_t i) LEPTON_SIMD_INLINE_LAMBDA { return (x[i] - mean) * (x[i] - mean); });
}

// ---- layer norm ----------------------------------------------------------------------------

template <class T>
void layer_norm_forward(const LayerNormArgs& a) {
  const int64_t C = a.cols;
  const T *X = in<T>(a.x), *W = in<T>(a.weight), *B = in<T>(a.bias);
  T *Y = out<T>(a.y), *M = out<T>(a.mean), *R = out<T>(a.rstd);
  with_optional(W, B, [&](auto has_w, auto has_b) {
    for_chunks(a.rows, C, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* x = X + r * C;
        T* y = Y + r * C;
        if (r + 2 < a.rows) prefetch(x + 2 * C, C);
        // One pass for both moments, taken about the row's first value: var = E[d²] - E[d]²
        // with d = x - x[0] loses only a few ulp unless x[0] lies many stds from the mean.
        const T shift = x[0];
        T s, q;
        lane_sum2<T>(0, C, s, q, [&](int64_t i, T& a_s, T& a_q) LEPTON_SIMD_INLINE_LAMBDA {
          const T d = x[i] - shift;
          a_s += d;
          a_q += d * d;
        });
        const T dm = s / T(C), var = std::max(q / T(C) - dm * dm, T(0));
        const T mean = shift + dm, rstd = T(1) / std::sqrt(var + T(a.eps));
        M[r] = mean;
        R[r] = rstd;
#pragma omp simd
        for (int64_t i = 0; i < C; ++i) {
          T v = (x[i] - mean) * rstd;
          if constexpr (decltype(has_w)::value) v *= W[i];
          if constexpr (decltype(has_b)::value) v += B[i];
          y[i] = v;
        }
      }
    });
  });
}

// dx = rstd·(gw - mean(gw) - x̂·mean(gw·x̂)) with gw = g·weight; dweight = Σ g·x̂, dbias = Σ g
// over rows, summed per part of the rows and then across the parts.
template <class T>
void layer_norm_backward(const LayerNormArgs& a) {
  const int64_t C = a.cols;
  const T *X = in<T>(a.x), *W = in<T>(a.weight), *M = in<T>(a.mean), *R = in<T>(a.rstd), *G = in<T>(a.grad_y);
  T *DX = out<T>(a.grad_x), *DW = out<T>(a.grad_weight), *DB = out<T>(a.grad_bias);
  const bool columns = DW || DB;
  std::vector<T> part(columns ? size_t(kParts) * 2 * C : 0, T(0));
  with_optional(W, columns ? part.data() : nullptr, [&](auto has_w, auto has_columns) {
    for_parts(a.rows, C, [&](int64_t p, int64_t r0, int64_t r1) {
      T* pw = has_columns ? part.data() + size_t(p) * 2 * C : nullptr;
      T* pb = has_columns ? pw + C : nullptr;
      for (int64_t r = r0; r < r1; ++r) {
        const T *x = X + r * C, *g = G + r * C;
        const T mean = M[r], rstd = R[r];
        if (r + 2 < a.rows) {
          prefetch(x + 2 * C, C);
          prefetch(g + 2 * C, C);
        }
        // one pass for the row sums and this part's column sums, one for dx
        T s_gx, s_g;
        lane_sum2<T>(0, C, s_gx, s_g, [&](int64_t i, T& a_gx, T& a_g) LEPTON_SIMD_INLINE_LAMBDA {
          const T xh = (x[i] - mean) * rstd;
          T gw = g[i];
          if constexpr (decltype(has_w)::value) gw *= W[i];
          a_gx += gw * xh;
          a_g += gw;
          if constexpr (decltype(has_columns)::value) {
            pw[i] += g[i] * xh;
            pb[i] += g[i];
          }
        });
        if (!DX) continue;
        const T c_gx = s_gx / T(C), c_g = s_g / T(C);
        T* dx = DX + r * C;
#pragma omp simd
        for (int64_t i = 0; i < C; ++i) {
          T gw = g[i];
          if constexpr (decltype(has_w)::value) gw *= W[i];
          dx[i] = rstd * (gw - c_g - (x[i] - mean) * rstd * c_gx);
        }
      }
    });
  });
  if (!columns) return;
  for (int64_t i = 0; i < C; ++i) {
    T sw = 0, sb = 0;
    for (int64_t p = 0; p < kParts; ++p) {
      sw += part[size_t(p) * 2 * C + i];
      sb += part[size_t(p) * 2 * C + C + i];
    }
    if (DW) DW[i] = sw;
    if (DB) DB[i] = sb;
  }
}

template <class T>
void layer_norm_forward_reference(const LayerNormArgs& a) {
  const int64_t C = a.cols;
  const T *X = in<T>(a.x), *W = in<T>(a.weight), *B = in<T>(a.bias);
  for (int64_t r = 0; r < a.rows; ++r) {
    const T* x = X + r * C;
    double s = 0, q = 0;
    for (int64_t i = 0; i < C; ++i) s += x[i];
    const double mean = s / double(C);
    for (int64_t i = 0; i < C; ++i) q += (x[i] - mean) * (x[i] - mean);
    const double rstd = 1 / std::sqrt(q / double(C) + a.eps);
    out<T>(a.mean)[r] = T(mean);
    out<T>(a.rstd)[r] = T(rstd);
    for (int64_t i = 0; i < C; ++i)
      out<T>(a.y)[r * C + i] = T((x[i] - mean) * rstd * (W ? W[i] : 1.0) + (B ? B[i] : 0.0));
  }
}

template <class T>
void layer_norm_backward_reference(const LayerNormArgs& a) {
  const int64_t C = a.cols;
  const T *X = in<T>(a.x), *W = in<T>(a.weight), *G = in<T>(a.grad_y);
  std::vector<double> dw(C, 0.0), db(C, 0.0);
  for (int64_t r = 0; r < a.rows; ++r) {
    const double mean = in<T>(a.mean)[r], rstd = in<T>(a.rstd)[r];
    double s_gx = 0, s_g = 0;
    for (int64_t i = 0; i < C; ++i) {
      const double xh = (X[r * C + i] - mean) * rstd, g = G[r * C + i], gw = g * (W ? W[i] : 1.0);
      s_gx += gw * xh;
      s_g += gw;
      dw[i] += g * xh;
      db[i] += g;
    }
    for (int64_t i = 0; i < C && a.grad_x; ++i) {
      const double xh = (X[r * C + i] - mean) * rstd, gw = G[r * C + i] * (W ? W[i] : 1.0);
      out<T>(a.grad_x)[r * C + i] = T(rstd * (gw - s_g / double(C) - xh * s_gx / double(C)));
    }
  }
  for (int64_t i = 0; i < C; ++i) {
    if (a.grad_weight) out<T>(a.grad_weight)[i] = T(dw[i]);
    if (a.grad_bias) out<T>(a.grad_bias)[i] = T(db[i]);
  }
}

// ---- batch norm ----------------------------------------------------------------------------

constexpr int64_t kRun = 16;  // shorter runs per channel take the row path

// The statistics of channel c given the sum of its values and of their squared deviations.
template <class T>
void set_stats(const BatchNormArgs& a, int64_t c, double mean, double sq_dev) {
  const double count = double(a.n * a.l), var = sq_dev / count;
  out<T>(a.mean)[c] = T(mean);
  out<T>(a.rstd)[c] = T(1 / std::sqrt(var + a.eps));
  if (a.running_mean) {
    T& rm = out<T>(a.running_mean)[c];
    T& rv = out<T>(a.running_var)[c];
    rm = T(a.momentum * mean + (1 - a.momentum) * double(rm));
    rv = T(a.momentum * (count > 1 ? var * count / (count - 1) : var) + (1 - a.momentum) * double(rv));
  }
}

// Eval: the running statistics, as mean and rstd.
template <class T>
void running_stats(const BatchNormArgs& a) {
  for (int64_t c = 0; c < a.c; ++c) {
    out<T>(a.mean)[c] = in<T>(a.running_mean)[c];
    out<T>(a.rstd)[c] = T(1 / std::sqrt(double(in<T>(a.running_var)[c]) + a.eps));
  }
}

// y = (x - mean)·scale + bias per channel, scale = weight·rstd (x·scale + (bias - mean·scale)
// would cancel when the mean is large against the spread).
template <class T>
struct ChannelAffine {
  T mean, scale, bias;
};

template <class T>
ChannelAffine<T> affine_of(const BatchNormArgs& a, int64_t c) {
  const T rstd = in<T>(a.rstd)[c];
  return {in<T>(a.mean)[c], a.weight ? in<T>(a.weight)[c] * rstd : rstd, a.bias ? in<T>(a.bias)[c] : T(0)};
}

template <class T>
void batch_norm_forward_channels(const BatchNormArgs& a) {
  const int64_t N = a.n, C = a.c, L = a.l;
  const T* X = in<T>(a.x);
  T* Y = out<T>(a.y);
  for_chunks(C, N * L, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      if (a.training) {  // two passes over the channel: the second (and the output's) from L2
        double s = 0, q = 0;
        const T shift = X[c * L];
        for (int64_t n = 0; n < N; ++n) s += vsum_dev(X + (n * C + c) * L, L, shift);
        const double mean = shift + s / double(N * L);
        for (int64_t n = 0; n < N; ++n) q += vsum_sq_dev(X + (n * C + c) * L, L, T(mean));
        set_stats<T>(a, c, mean, q);
      }
      const ChannelAffine<T> f = affine_of<T>(a, c);
      for (int64_t n = 0; n < N; ++n) {
        const T* x = X + (n * C + c) * L;
        T* y = Y + (n * C + c) * L;
#pragma omp simd
        for (int64_t i = 0; i < L; ++i) y[i] = (x[i] - f.mean) * f.scale + f.bias;
      }
    }
  });
}

// Column sums of rows [N, J] by f(row, acc_row) into per-part double buffers, added in order.
template <class T, class F>
std::vector<double> column_sums(int64_t N, int64_t J, int64_t width, F&& f) {
  std::vector<double> part(size_t(kParts) * J * width, 0.0);
  for_parts(N, J, [&](int64_t p, int64_t n0, int64_t n1) {
    double* acc = part.data() + size_t(p) * J * width;
    for (int64_t n = n0; n < n1; ++n) f(n, acc);
  });
  for (int64_t p = 1; p < kParts; ++p)
    for (int64_t j = 0; j < J * width; ++j) part[j] += part[size_t(p) * J * width + j];
  return part;
}

template <class T>
void batch_norm_forward_rows(const BatchNormArgs& a) {
  const int64_t N = a.n, C = a.c, L = a.l, J = C * L;
  const T* X = in<T>(a.x);
  if (a.training) {
    std::vector<double> s = column_sums<T>(N, J, 1, [&](int64_t n, double* acc) {
      const T* x = X + n * J;
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) acc[j] += x[j];
    });
    std::vector<double> mean(C, 0.0);
    std::vector<T> mean_j(J);
    for (int64_t j = 0; j < J; ++j) mean[j / L] += s[j];
    for (int64_t c = 0; c < C; ++c) mean[c] /= double(N * L);
    for (int64_t j = 0; j < J; ++j) mean_j[j] = T(mean[j / L]);
    std::vector<double> q = column_sums<T>(N, J, 1, [&](int64_t n, double* acc) {
      const T* x = X + n * J;
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) acc[j] += double(x[j] - mean_j[j]) * double(x[j] - mean_j[j]);
    });
    for (int64_t c = 0; c < C; ++c) {
      double sq = 0;
      for (int64_t l = 0; l < L; ++l) sq += q[c * L + l];
      set_stats<T>(a, c, mean[c], sq);
    }
  }
  std::vector<T> center(J), scale(J), bias(J);  // per column
  for (int64_t j = 0; j < J; ++j) {
    const ChannelAffine<T> f = affine_of<T>(a, j / L);
    center[j] = f.mean, scale[j] = f.scale, bias[j] = f.bias;
  }
  for_chunks(N, J, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* x = X + n * J;
      T* y = out<T>(a.y) + n * J;
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) y[j] = (x[j] - center[j]) * scale[j] + bias[j];
    }
  });
}

template <class T>
void batch_norm_forward(const BatchNormArgs& a) {
  if (!a.training) running_stats<T>(a);
  if (a.l >= kRun)
    batch_norm_forward_channels<T>(a);
  else
    batch_norm_forward_rows<T>(a);
}

// Backward of channel c from s_g = Σ g and s_gx = Σ g·(x - mean):
//   dbias = s_g, dweight = s_gx·rstd,
//   dx = k·(g - mg - (x - mean)·c2) with k = weight·rstd and, when training, mg = s_g/count,
//   c2 = rstd²·s_gx/count (the statistics' dependence on x); mg = c2 = 0 in eval.
template <class T>
struct ChannelGrad {
  T mean, k, mg, c2;
};

template <class T>
ChannelGrad<T> channel_grad(const BatchNormArgs& a, int64_t c, double s_g, double s_gx) {
  const double count = double(a.n * a.l), rstd = in<T>(a.rstd)[c];
  if (a.grad_bias) out<T>(a.grad_bias)[c] = T(s_g);
  if (a.grad_weight) out<T>(a.grad_weight)[c] = T(s_gx * rstd);
  const double k = (a.weight ? double(in<T>(a.weight)[c]) : 1.0) * rstd;
  if (!a.training) return {in<T>(a.mean)[c], T(k), T(0), T(0)};
  return {in<T>(a.mean)[c], T(k), T(s_g / count), T(rstd * rstd * s_gx / count)};
}

template <class T>
void batch_norm_backward_channels(const BatchNormArgs& a) {
  const int64_t N = a.n, C = a.c, L = a.l;
  const T *X = in<T>(a.x), *G = in<T>(a.grad_y);
  const bool sums = a.training || a.grad_weight || a.grad_bias;
  for_chunks(C, N * L, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const T mean = in<T>(a.mean)[c];
      double s_g = 0, s_gx = 0;
      for (int64_t n = 0; sums && n < N; ++n) {
        const T *x = X + (n * C + c) * L, *g = G + (n * C + c) * L;
        if (n + 1 < N) {
          prefetch(x + C * L, L);
          prefetch(g + C * L, L);
        }
        T bg, bgx;
        lane_sum2<T>(0, L, bg, bgx, [&](int64_t i, T& a_g, T& a_gx) LEPTON_SIMD_INLINE_LAMBDA {
          a_g += g[i];
          a_gx += g[i] * (x[i] - mean);
        });
        s_g += bg;
        s_gx += bgx;
      }
      const ChannelGrad<T> k = channel_grad<T>(a, c, s_g, s_gx);
      if (!a.grad_x) continue;
      for (int64_t n = 0; n < N; ++n) {
        const T *x = X + (n * C + c) * L, *g = G + (n * C + c) * L;
        T* dx = out<T>(a.grad_x) + (n * C + c) * L;
#pragma omp simd
        for (int64_t i = 0; i < L; ++i) dx[i] = k.k * (g[i] - k.mg - (x[i] - k.mean) * k.c2);
      }
    }
  });
}

template <class T>
void batch_norm_backward_rows(const BatchNormArgs& a) {
  const int64_t N = a.n, C = a.c, L = a.l, J = C * L;
  const T *X = in<T>(a.x), *G = in<T>(a.grad_y);
  std::vector<T> mean_j(J);
  for (int64_t j = 0; j < J; ++j) mean_j[j] = in<T>(a.mean)[j / L];
  std::vector<double> s(2 * J, 0.0);
  if (a.training || a.grad_weight || a.grad_bias)
    s = column_sums<T>(N, J, 2, [&](int64_t n, double* acc) {
      const T *x = X + n * J, *g = G + n * J;
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) {
        acc[j] += g[j];
        acc[J + j] += double(g[j]) * double(x[j] - mean_j[j]);
      }
    });
  std::vector<T> k(J), mg(J), c2(J);
  for (int64_t c = 0; c < C; ++c) {
    double s_g = 0, s_gx = 0;
    for (int64_t l = 0; l < L; ++l) {
      s_g += s[c * L + l];
      s_gx += s[J + c * L + l];
    }
    const ChannelGrad<T> cg = channel_grad<T>(a, c, s_g, s_gx);
    for (int64_t l = 0; l < L; ++l) {
      k[c * L + l] = cg.k;
      mg[c * L + l] = cg.mg;
      c2[c * L + l] = cg.c2;
    }
  }
  if (!a.grad_x) return;
  for_chunks(N, J, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T *x = X + n * J, *g = G + n * J;
      T* dx = out<T>(a.grad_x) + n * J;
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) dx[j] = k[j] * (g[j] - mg[j] - (x[j] - mean_j[j]) * c2[j]);
    }
  });
}

template <class T>
void batch_norm_backward(const BatchNormArgs& a) {
  if (a.l >= kRun)
    batch_norm_backward_channels<T>(a);
  else
    batch_norm_backward_rows<T>(a);
}

// The reference: one channel at a time, element by element, in double.
template <class T>
void batch_norm_forward_reference(const BatchNormArgs& a) {
  const int64_t N = a.n, C = a.c, L = a.l;
  const T* X = in<T>(a.x);
  auto at = [&](int64_t n, int64_t c, int64_t l) { return (n * C + c) * L + l; };
  if (!a.training) running_stats<T>(a);
  for (int64_t c = 0; c < C; ++c) {
    if (a.training) {
      double s = 0, q = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t l = 0; l < L; ++l) s += X[at(n, c, l)];
      const double mean = s / double(N * L);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t l = 0; l < L; ++l) q += (X[at(n, c, l)] - mean) * (X[at(n, c, l)] - mean);
      set_stats<T>(a, c, mean, q);
    }
    const double mean = in<T>(a.mean)[c], rstd = in<T>(a.rstd)[c];
    const double w = a.weight ? in<T>(a.weight)[c] : 1.0, b = a.bias ? in<T>(a.bias)[c] : 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) out<T>(a.y)[at(n, c, l)] = T((X[at(n, c, l)] - mean) * rstd * w + b);
  }
}

template <class T>
void batch_norm_backward_reference(const BatchNormArgs& a) {
  const int64_t N = a.n, C = a.c, L = a.l;
  const T *X = in<T>(a.x), *G = in<T>(a.grad_y);
  auto at = [&](int64_t n, int64_t c, int64_t l) { return (n * C + c) * L + l; };
  for (int64_t c = 0; c < C; ++c) {
    const double mean = in<T>(a.mean)[c];
    double s_g = 0, s_gx = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        s_g += G[at(n, c, l)];
        s_gx += G[at(n, c, l)] * (X[at(n, c, l)] - mean);
      }
    const ChannelGrad<T> k = channel_grad<T>(a, c, s_g, s_gx);
    for (int64_t n = 0; n < N && a.grad_x; ++n)
      for (int64_t l = 0; l < L; ++l)
        out<T>(a.grad_x)[at(n, c, l)] =
            T(double(k.k) * (G[at(n, c, l)] - double(k.mg) - (X[at(n, c, l)] - mean) * double(k.c2)));
  }
}

// ---- the family's tables ---------------------------------------------------------------------

template <class T, bool Fast>
const NormKernels* norm_set() {
  static const NormKernels k = {
      Fast ? &layer_norm_forward<T> : &layer_norm_forward_reference<T>,
      Fast ? &layer_norm_backward<T> : &layer_norm_backward_reference<T>,
      Fast ? &batch_norm_forward<T> : &batch_norm_forward_reference<T>,
      Fast ? &batch_norm_backward<T> : &batch_norm_backward_reference<T>,
      &embedding_forward<T, Fast>,
      &embedding_renorm<T, Fast>,
      &embedding_backward<T, Fast>,
      &dropout<T, Fast>,
      &loss_forward<T, Fast>,
      &loss_backward<T, Fast>,
      Fast ? norm_set<T, false>() : nullptr,
  };
  return &k;
}

}  // namespace

void fill_norm(KernelSet& set) {
  set.norm[int(DType::Float32)] = norm_set<float, true>();
  set.norm[int(DType::Float64)] = norm_set<double, true>();
}

}  // namespace lepton::cpu::LEPTON_ISA
