// Reductions over the middle axis of a contiguous [outer, reduce, inner] block. Rows
// (inner == 1) reduce with SIMD lanes, in parallel across rows or, for a few long rows,
// across chunks of the row; columns (inner > 1) accumulate whole inner vectors at a time.
#include "lepton/cpu/kernels/common.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

constexpr int64_t kChunk = 32768;  // float partial sums stay short; chunks add up in double

template <class T> using sum_t = std::conditional_t<is_float_v<T>, double, int64_t>;
template <class T> using out_sum_t = std::conditional_t<is_float_v<T>, T, int64_t>;

template <class T>
sum_t<T> row_sum(const T* x, int64_t n, bool par) {
  sum_t<T> total = 0;
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for reduction(+ : total) if (par) schedule(static)
  for (int64_t c = 0; c < nchunks; ++c) {
    const T* p = x + c * kChunk;
    const int64_t m = c == nchunks - 1 ? n - c * kChunk : kChunk;
    // kLanes independent partial sums hide the add latency (one vector chain would not).
    constexpr int64_t kLanes = 64;
    using S = std::conditional_t<is_float_v<T>, acc_t<T>, int64_t>;
    S lanes[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= m; i += kLanes)
#pragma omp simd
      for (int64_t j = 0; j < kLanes; ++j) lanes[j] += load(p[i + j]);
    S s = 0;
    for (; i < m; ++i) s += load(p[i]);
    for (int64_t j = 0; j < kLanes; ++j) s += lanes[j];
    total += s;
  }
  return total;
}

template <class T>
sum_t<T> row_prod(const T* x, int64_t n, bool par) {
  sum_t<T> total = 1;
#pragma omp parallel for simd reduction(* : total) if (par) schedule(static)
  for (int64_t i = 0; i < n; ++i) total *= sum_t<T>(load(x[i]));
  return total;
}

// Max (is_max) or min, with NaN winning as in PyTorch.
template <class T>
acc_t<T> row_extreme(const T* x, int64_t n, bool is_max, bool par) {
  using A = acc_t<T>;
  A m = load(x[0]);
  bool nan = false;
  if (is_max) {
#pragma omp parallel for simd reduction(max : m) reduction(|| : nan) if (par) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      A v = load(x[i]);
      m = v > m ? v : m;
      nan = nan || v != v;
    }
  } else {
#pragma omp parallel for simd reduction(min : m) reduction(|| : nan) if (par) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      A v = load(x[i]);
      m = v < m ? v : m;
      nan = nan || v != v;
    }
  }
  if constexpr (std::is_floating_point_v<A>)
    if (nan) return A(NAN);
  return m;
}

// Value and position of the first extreme (a NaN counts as the extreme; the first NaN wins).
template <class T>
int64_t row_arg_extreme(const T* x, int64_t n, bool is_max, acc_t<T>& best) {
  using A = acc_t<T>;
  best = load(x[0]);
  int64_t pos = 0;
  if (best != best) return 0;
  for (int64_t i = 1; i < n; ++i) {
    A v = load(x[i]);
    if (v != v) {
      best = v;
      return i;
    }
    if (is_max ? v > best : v < best) {
      best = v;
      pos = i;
    }
  }
  return pos;
}

template <class T>
bool row_all_any(const T* x, int64_t n, bool is_all, bool par) {
  using A = acc_t<T>;
  if (is_all) {
    bool r = true;
#pragma omp parallel for simd reduction(&& : r) if (par) schedule(static)
    for (int64_t i = 0; i < n; ++i) r = r && load(x[i]) != A(0);
    return r;
  }
  bool r = false;
#pragma omp parallel for simd reduction(|| : r) if (par) schedule(static)
  for (int64_t i = 0; i < n; ++i) r = r || load(x[i]) != A(0);
  return r;
}

template <class T>
void reduce_rows(ReduceOp op, const ReduceArgs& a) {
  const T* in = reinterpret_cast<const T*>(a.in);
  const int64_t R = a.reduce;
  // Parallel across rows when there are enough of them, else inside each row.
  const bool within_row = a.outer < 2 * omp_get_max_threads() && R >= kParallelGrain;
  auto one_row = [&](int64_t o) {
    const T* x = in + o * R;
    switch (op) {
      case ReduceOp::Sum:
        reinterpret_cast<out_sum_t<T>*>(a.out)[o] = store<out_sum_t<T>>(row_sum(x, R, within_row));
        break;
      case ReduceOp::Prod:
        reinterpret_cast<out_sum_t<T>*>(a.out)[o] = store<out_sum_t<T>>(row_prod(x, R, within_row));
        break;
      case ReduceOp::Max:
      case ReduceOp::Min:
        if (a.index) {
          acc_t<T> best;
          a.index[o] = row_arg_extreme(x, R, op == ReduceOp::Max, best);
          reinterpret_cast<T*>(a.out)[o] = store<T>(best);
        } else {
          reinterpret_cast<T*>(a.out)[o] = store<T>(row_extreme(x, R, op == ReduceOp::Max, within_row));
        }
        break;
      case ReduceOp::All:
      case ReduceOp::Any:
        reinterpret_cast<bool*>(a.out)[o] = row_all_any(x, R, op == ReduceOp::All, within_row);
        break;
    }
  };
  if (within_row) {
    for (int64_t o = 0; o < a.outer; ++o) one_row(o);
  } else {
    parallel_range(a.outer, 1 + kParallelGrain / (R + 1), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) one_row(o);
    });
  }
}

// Column reductions: each task owns a block of up to kCols inner positions of one outer slice.
template <class T>
void reduce_cols(ReduceOp op, const ReduceArgs& a) {
  constexpr int64_t kCols = 256;
  using A = acc_t<T>;
  using S = std::conditional_t<is_float_v<T>, A, int64_t>;
  const T* in = reinterpret_cast<const T*>(a.in);
  const int64_t R = a.reduce, I = a.inner, blocks = (I + kCols - 1) / kCols;
  parallel_range(a.outer * blocks, 1 + kParallelGrain / (R * kCols + 1), [&](int64_t b, int64_t e) {
    S acc[kCols];
    int64_t idx[kCols];
    for (int64_t task = b; task < e; ++task) {
      const int64_t o = task / blocks, i0 = (task % blocks) * kCols;
      const int64_t w = I - i0 < kCols ? I - i0 : kCols;
      const T* base = in + o * R * I + i0;
      const int64_t out_at = o * I + i0;
      switch (op) {
        case ReduceOp::Sum:
        case ReduceOp::Prod: {
          const bool sum = op == ReduceOp::Sum;
          for (int64_t i = 0; i < w; ++i) acc[i] = sum ? S(0) : S(1);
          for (int64_t r = 0; r < R; ++r) {
            const T* row = base + r * I;
            if (sum) {
#pragma omp simd
              for (int64_t i = 0; i < w; ++i) acc[i] += S(load(row[i]));
            } else {
#pragma omp simd
              for (int64_t i = 0; i < w; ++i) acc[i] *= S(load(row[i]));
            }
          }
          auto* out = reinterpret_cast<out_sum_t<T>*>(a.out) + out_at;
          for (int64_t i = 0; i < w; ++i) out[i] = store<out_sum_t<T>>(acc[i]);
          break;
        }
        case ReduceOp::Max:
        case ReduceOp::Min: {
          const bool is_max = op == ReduceOp::Max;
          A best[kCols];
          for (int64_t i = 0; i < w; ++i) {
            best[i] = load(base[i]);
            idx[i] = 0;
          }
          for (int64_t r = 1; r < R; ++r) {
            const T* row = base + r * I;
            for (int64_t i = 0; i < w; ++i) {
              A v = load(row[i]);
              bool take = best[i] == best[i] && (v != v || (is_max ? v > best[i] : v < best[i]));
              best[i] = take ? v : best[i];
              idx[i] = take ? r : idx[i];
            }
          }
          T* out = reinterpret_cast<T*>(a.out) + out_at;
          for (int64_t i = 0; i < w; ++i) out[i] = store<T>(best[i]);
          if (a.index)
            for (int64_t i = 0; i < w; ++i) a.index[out_at + i] = idx[i];
          break;
        }
        case ReduceOp::All:
        case ReduceOp::Any: {
          const bool is_all = op == ReduceOp::All;
          bool flags[kCols];
          for (int64_t i = 0; i < w; ++i) flags[i] = is_all;
          for (int64_t r = 0; r < R; ++r) {
            const T* row = base + r * I;
            for (int64_t i = 0; i < w; ++i) {
              bool nz = load(row[i]) != A(0);
              flags[i] = is_all ? (flags[i] && nz) : (flags[i] || nz);
            }
          }
          bool* out = reinterpret_cast<bool*>(a.out) + out_at;
          for (int64_t i = 0; i < w; ++i) out[i] = flags[i];
          break;
        }
      }
    }
  });
}

template <class T>
void reduce_kernel(ReduceOp op, const ReduceArgs& a) {
  if (a.outer == 0 || a.inner == 0) return;
  if (a.reduce == 0) {  // empty reductions give the identity
    const int64_t n = a.outer * a.inner;
    for (int64_t i = 0; i < n; ++i) {
      if (op == ReduceOp::Sum || op == ReduceOp::Prod)
        reinterpret_cast<out_sum_t<T>*>(a.out)[i] = store<out_sum_t<T>>(op == ReduceOp::Sum ? 0 : 1);
      else
        reinterpret_cast<bool*>(a.out)[i] = op == ReduceOp::All;
    }
    return;
  }
  if (a.inner == 1)
    reduce_rows<T>(op, a);
  else
    reduce_cols<T>(op, a);
}

}  // namespace

void fill_reduce(KernelSet& set) {
  set.reduce[int(DType::Bool)] = &reduce_kernel<bool>;
  set.reduce[int(DType::UInt8)] = &reduce_kernel<uint8_t>;
  set.reduce[int(DType::Int8)] = &reduce_kernel<int8_t>;
  set.reduce[int(DType::Int32)] = &reduce_kernel<int32_t>;
  set.reduce[int(DType::Int64)] = &reduce_kernel<int64_t>;
  set.reduce[int(DType::Float16)] = &reduce_kernel<Half>;
  set.reduce[int(DType::BFloat16)] = &reduce_kernel<BFloat16>;
  set.reduce[int(DType::Float32)] = &reduce_kernel<float>;
  set.reduce[int(DType::Float64)] = &reduce_kernel<double>;
}

}  // namespace lepton::cpu::LEPTON_ISA
