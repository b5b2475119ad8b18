// CPU kernels for 2-d max/avg/adaptive-avg pooling (NCHW), forward and backward. Planes
// (image, channel) are independent, so threads take whole planes and backward kernels scatter
// into their own plane without races. Window bounds, divisors and tie/NaN rules follow torch's
// CPU kernels, so indices and values match it exactly.
#include <algorithm>
#include <limits>
#include <utility>

#include "lepton/cpu/kernels/common.h"
#include "lepton/cpu/kernels/vec.h"
#include "lepton/ops/pool_kernels.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

// Calls f(plane) for every plane, in parallel when the work is large enough.
template <class F>
void for_planes(const PoolGeometry& g, int64_t work_per_plane, F&& f) {
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, work_per_plane));
  parallel_range(g.planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) f(p);
  });
}

// The first in-window index along one axis for a window starting at `start` (possibly negative).
inline int64_t first_inside(int64_t start, int64_t dilation) {
  return start >= 0 ? start : start + (-start + dilation - 1) / dilation * dilation;
}

// One output of max pooling over the window rows [ih0, ih1) and columns [iw0, iw1) (steps of the
// dilations), by torch's rule: scanning in row-major order, a value takes over when it is greater
// than the running maximum or NaN (so the last NaN wins, else the first maximum).
template <class T, bool kIndex>
LEPTON_SIMD_INLINE void window_max(const PoolGeometry& g, const T* x, int64_t ih0, int64_t ih1, int64_t iw0,
                                   int64_t iw1, T& out, int64_t* idx) {
  int64_t best = ih0 * g.w + iw0;
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t ih = ih0; ih < ih1; ih += g.dilation_h)
    for (int64_t iw = iw0; iw < iw1; iw += g.dilation_w) {
      const T v = x[ih * g.w + iw];
      const bool take = (v > m) | (v != v);
      m = take ? v : m;
      if constexpr (kIndex) best = take ? ih * g.w + iw : best;
    }
  out = m;
  if constexpr (kIndex) *idx = best;
}

// The output columns [j0, j1) whose windows lie inside the input horizontally:
// j·stride_w - pad_w >= 0 and j·stride_w - pad_w + (kw - 1)·dilation_w < w.
inline std::pair<int64_t, int64_t> inner_columns(const PoolGeometry& g) {
  const int64_t j0 = std::min(g.ow, (g.pad_w + g.stride_w - 1) / g.stride_w);
  const int64_t last = g.w + g.pad_w - (g.kw - 1) * g.dilation_w - 1;  // the largest j·stride_w that fits
  return {j0, std::max(j0, std::min(g.ow, last >= 0 ? last / g.stride_w + 1 : 0))};
}

// Lanes l < n of p[l·stride] (the others unspecified). With unit or stride-2 lanes and `avail`
// readable elements from p, a whole vector (or two) is read with vector loads.
template <class T>
LEPTON_SIMD_INLINE typename Vec<T>::V load_strided(const T* p, int64_t stride, int n, int64_t avail) {
  using L = Vec<T>;
  if (stride <= 2 && avail >= stride * L::W) {
    const typename L::V v = loadv<typename L::V>(p);
    if (stride == 1) return v;
    typename L::M even;
    for (int l = 0; l < L::W; ++l) even[l] = 2 * l;
    return __builtin_shuffle(v, loadv<typename L::V>(p + L::W), even);
  }
  typename L::V v{};
  for (int l = 0; l < n; ++l) v[l] = p[l * stride];
  return v;
}

// Outputs j..j+n (n <= W) of one row, all with windows inside the input horizontally, one lane
// each: window_max's rule with vector selects instead of branches.
template <class T, bool kIndex>
void window_max_lanes(const PoolGeometry& g, const T* x, int64_t ih0, int64_t ih1, int64_t j, int n, T* y,
                      int64_t* idx) {
  using L = Vec<T>;
  using M = typename L::M;
  typename L::V m = typename L::V{} - std::numeric_limits<T>::infinity();
  M tap{};  // the winning tap of each lane, as a·kw + b
  int64_t t = 0;
  for (int64_t ih = ih0; ih < ih1; ih += g.dilation_h)
    for (int64_t b = 0; b < g.kw; ++b, ++t) {
      const int64_t iw = j * g.stride_w - g.pad_w + b * g.dilation_w;
      const typename L::V v = load_strided(x + ih * g.w + iw, g.stride_w, n, g.h * g.w - (ih * g.w + iw));
      const M take = (v > m) | (v != v);
      m = take ? v : m;
      if constexpr (kIndex) tap = take ? M{} + typename L::S(t) : tap;
    }
  for (int l = 0; l < n; ++l) y[l] = m[l];
  if constexpr (kIndex)
    for (int l = 0; l < n; ++l) {
      const int64_t a = tap[l] / g.kw, b = tap[l] % g.kw;
      idx[l] = (ih0 + a * g.dilation_h) * g.w + (j + l) * g.stride_w - g.pad_w + b * g.dilation_w;
    }
}

// One plane: the columns whose windows lie inside the input horizontally go W at a time through
// vector lanes, the edge columns one by one.
template <class T, bool kIndex>
void max_forward_plane(const PoolGeometry& g, const T* x, T* y, int64_t* idx) {
  constexpr int W = Vec<T>::W;
  const int64_t span_w = (g.kw - 1) * g.dilation_w;
  const auto [j0, j1] = inner_columns(g);
  for (int64_t i = 0; i < g.oh; ++i) {
    const int64_t h0 = i * g.stride_h - g.pad_h, ih0 = first_inside(h0, g.dilation_h);
    const int64_t ih1 = std::min(h0 + (g.kh - 1) * g.dilation_h + 1, g.h);
    T* yr = y + i * g.ow;
    int64_t* ir = kIndex ? idx + i * g.ow : nullptr;
    auto edge = [&](int64_t j) {
      const int64_t w0 = j * g.stride_w - g.pad_w;
      window_max<T, kIndex>(g, x, ih0, ih1, first_inside(w0, g.dilation_w), std::min(w0 + span_w + 1, g.w), yr[j],
                            kIndex ? ir + j : nullptr);
    };
    for (int64_t j = 0; j < j0; ++j) edge(j);
    for (int64_t j = j0; j < j1; j += W)
      window_max_lanes<T, kIndex>(g, x, ih0, ih1, j, int(std::min<int64_t>(W, j1 - j)), yr + j,
                                  kIndex ? ir + j : nullptr);
    for (int64_t j = j1; j < g.ow; ++j) edge(j);
  }
}

template <class T>
void max_forward(const PoolArgs& a) {
  const PoolGeometry& g = a.g;
  for_planes(g, g.oh * g.ow * g.kh * g.kw, [&](int64_t plane) {
    const T* x = static_cast<const T*>(a.x) + plane * g.h * g.w;
    T* y = static_cast<T*>(a.y) + plane * g.oh * g.ow;
    if (a.indices)
      max_forward_plane<T, true>(g, x, y, a.indices + plane * g.oh * g.ow);
    else
      max_forward_plane<T, false>(g, x, y, nullptr);
  });
}

template <class T>
void max_backward(const PoolArgs& a) {
  const PoolGeometry& g = a.g;
  for_planes(g, g.h * g.w + g.oh * g.ow, [&](int64_t plane) {
    const T* gy = static_cast<const T*>(a.grad_y) + plane * g.oh * g.ow;
    const int64_t* idx = a.indices + plane * g.oh * g.ow;
    T* gx = static_cast<T*>(a.grad_x) + plane * g.h * g.w;
    std::fill(gx, gx + g.h * g.w, T(0));
    for (int64_t k = 0; k < g.oh * g.ow; ++k) gx[idx[k]] += gy[k];
  });
}

// The clipped window [ih0, ih1) x [iw0, iw1) of output (i, j) and its divisor, as torch computes them.
struct AvgWindow {
  int64_t ih0, ih1, iw0, iw1, divisor;
  bool empty() const { return ih0 >= ih1 || iw0 >= iw1; }
};

inline AvgWindow avg_window(const PoolArgs& a, int64_t i, int64_t j) {
  const PoolGeometry& g = a.g;
  AvgWindow w;
  w.ih0 = i * g.stride_h - g.pad_h, w.iw0 = j * g.stride_w - g.pad_w;
  w.ih1 = std::min(w.ih0 + g.kh, g.h + g.pad_h), w.iw1 = std::min(w.iw0 + g.kw, g.w + g.pad_w);
  const int64_t padded = (w.ih1 - w.ih0) * (w.iw1 - w.iw0);
  w.ih0 = std::max<int64_t>(w.ih0, 0), w.iw0 = std::max<int64_t>(w.iw0, 0);
  w.ih1 = std::min(w.ih1, g.h), w.iw1 = std::min(w.iw1, g.w);
  w.divisor = a.divisor_override ? a.divisor_override
              : a.count_include_pad ? padded
                                    : (w.ih1 - w.ih0) * (w.iw1 - w.iw0);
  return w;
}

// Adaptive pooling's window along one axis: [⌊o·in/out⌋, ⌈(o+1)·in/out⌉).
inline int64_t adaptive_start(int64_t o, int64_t out, int64_t in) { return o * in / out; }
inline int64_t adaptive_end(int64_t o, int64_t out, int64_t in) { return ((o + 1) * in + out - 1) / out; }

inline AvgWindow adaptive_window(const PoolGeometry& g, int64_t i, int64_t j) {
  AvgWindow w;
  w.ih0 = adaptive_start(i, g.oh, g.h), w.ih1 = adaptive_end(i, g.oh, g.h);
  w.iw0 = adaptive_start(j, g.ow, g.w), w.iw1 = adaptive_end(j, g.ow, g.w);
  w.divisor = (w.ih1 - w.ih0) * (w.iw1 - w.iw0);
  return w;
}

// The window sum / divisor of plane x (width w), 0 for a window wholly in the padding.
template <class T>
LEPTON_SIMD_INLINE T window_mean(const T* x, int64_t width, const AvgWindow& w) {
  T s = 0;
  for (int64_t ih = w.ih0; ih < w.ih1; ++ih)
    for (int64_t iw = w.iw0; iw < w.iw1; ++iw) s += x[ih * width + iw];
  return w.empty() ? T(0) : s / T(w.divisor);
}

template <class T, class Window>
void mean_forward(const PoolArgs& a, int64_t window_size, Window window) {
  const PoolGeometry& g = a.g;
  for_planes(g, g.oh * g.ow * window_size, [&](int64_t plane) {
    const T* x = static_cast<const T*>(a.x) + plane * g.h * g.w;
    T* y = static_cast<T*>(a.y) + plane * g.oh * g.ow;
    for (int64_t i = 0; i < g.oh; ++i)
      for (int64_t j = 0; j < g.ow; ++j) y[i * g.ow + j] = window_mean(x, g.w, window(i, j));
  });
}

// grad_x = Σ over the windows covering each input of grad_y / divisor.
template <class T, class Window>
void mean_backward(const PoolArgs& a, int64_t window_size, Window window) {
  const PoolGeometry& g = a.g;
  for_planes(g, g.h * g.w + g.oh * g.ow * window_size, [&](int64_t plane) {
    const T* gy = static_cast<const T*>(a.grad_y) + plane * g.oh * g.ow;
    T* gx = static_cast<T*>(a.grad_x) + plane * g.h * g.w;
    std::fill(gx, gx + g.h * g.w, T(0));
    for (int64_t i = 0; i < g.oh; ++i)
      for (int64_t j = 0; j < g.ow; ++j) {
        const AvgWindow w = window(i, j);
        if (w.empty()) continue;
        const T d = gy[i * g.ow + j] / T(w.divisor);
        for (int64_t ih = w.ih0; ih < w.ih1; ++ih)
          for (int64_t iw = w.iw0; iw < w.iw1; ++iw) gx[ih * g.w + iw] += d;
      }
  });
}

// Average pooling: the columns whose windows lie inside the input horizontally share a row's
// divisor and go W at a time through vector lanes; the edge columns one by one.
template <class T>
void avg_forward(const PoolArgs& a) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  const PoolGeometry& g = a.g;
  const auto [j0, j1] = inner_columns(g);
  for_planes(g, g.oh * g.ow * g.kh * g.kw, [&](int64_t plane) {
    const T* x = static_cast<const T*>(a.x) + plane * g.h * g.w;
    T* y = static_cast<T*>(a.y) + plane * g.oh * g.ow;
    for (int64_t i = 0; i < g.oh; ++i) {
      T* yr = y + i * g.ow;
      for (int64_t j = 0; j < j0; ++j) yr[j] = window_mean(x, g.w, avg_window(a, i, j));
      if (j0 < j1) {
        const AvgWindow rows = avg_window(a, i, j0);  // the same rows and divisor for every inner column
        for (int64_t j = j0; j < j1; j += W) {
          const int n = int(std::min<int64_t>(W, j1 - j));
          V s{};
          for (int64_t ih = rows.ih0; ih < rows.ih1; ++ih)
            for (int64_t b = 0; b < g.kw; ++b) {
              const int64_t at = ih * g.w + j * g.stride_w - g.pad_w + b;
              s += load_strided(x + at, g.stride_w, n, g.h * g.w - at);
            }
          s = rows.empty() ? V{} : s / T(rows.divisor);
          std::memcpy(yr + j, &s, size_t(n) * sizeof(T));
        }
      }
      for (int64_t j = j1; j < g.ow; ++j) yr[j] = window_mean(x, g.w, avg_window(a, i, j));
    }
  });
}
template <class T>
void avg_backward(const PoolArgs& a) {
  mean_backward<T>(a, a.g.kh * a.g.kw, [&](int64_t i, int64_t j) { return avg_window(a, i, j); });
}

// Largest adaptive window along an axis, for the parallel grain.
inline int64_t adaptive_span(int64_t in, int64_t out) { return out ? (in + out - 1) / out + 1 : 0; }

template <class T>
void adaptive_avg_forward(const PoolArgs& a) {
  const PoolGeometry& g = a.g;
  mean_forward<T>(a, adaptive_span(g.h, g.oh) * adaptive_span(g.w, g.ow),
                  [&](int64_t i, int64_t j) { return adaptive_window(g, i, j); });
}
template <class T>
void adaptive_avg_backward(const PoolArgs& a) {
  const PoolGeometry& g = a.g;
  mean_backward<T>(a, adaptive_span(g.h, g.oh) * adaptive_span(g.w, g.ow),
                   [&](int64_t i, int64_t j) { return adaptive_window(g, i, j); });
}

template <class T>
const PoolKernels* pool_set() {
  static const PoolKernels k = {&max_forward<T>, &max_backward<T>, &avg_forward<T>, &avg_backward<T>,
                                &adaptive_avg_forward<T>, &adaptive_avg_backward<T>};
  return &k;
}

}  // namespace

void fill_pool(KernelSet& set) {
  set.pool[int(DType::Float32)] = pool_set<float>();
  set.pool[int(DType::Float64)] = pool_set<double>();
}

}  // namespace lepton::cpu::LEPTON_ISA
