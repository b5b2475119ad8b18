// CPU kernels for 2-d convolution (NCHW): forward, backward-data, backward-weight.
//
// Most of a network's work runs the direct kernels of conv_direct.h: register-blocked
// correlations over a zero-padded copy of the input, with no im2col (every stride-1 pass, and
// the forward of column strides 1 and 2). The rest (other strides, the backward passes of
// strided convolutions, and 1x1 ones, which are plain GEMMs on x) lower each (image, group) to
// GEMMs over tiles of output pixels: im2col copies the input patches of one tile into a
// [c_in/groups·kh·kw, pixels] matrix small enough to stay in L2, and the GEMM multiplies the
// weights by it (forward) or grad_y by its transpose (backward-weight); backward-data
// multiplies the weights' transpose by grad_y and scatters the patches back (col2im). Work
// items are split between threads, each running its GEMMs on one thread; with fewer items than
// threads the GEMM splits itself instead. The reference kernels are the definition as direct
// loops, kept as the oracle for tests (LEPTON_CONV=reference).
#include <algorithm>
#include <array>
#include <vector>

#include "lepton/cpu/kernels/common.h"
#include "lepton/cpu/kernels/conv_direct.h"
#include "lepton/cpu/kernels/conv_work.h"
#include "lepton/ops/conv_kernels.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

// ---- reference: direct loops, accumulating in double

// The input row (or column) that output index o reads through kernel tap t.
inline int64_t input_index(int64_t o, int64_t t, int64_t stride, int64_t pad, int64_t dilation) {
  return o * stride - pad + t * dilation;
}

template <class T>
void forward_reference(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const int64_t cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  const T *x = static_cast<const T*>(a.x), *w = static_cast<const T*>(a.weight), *bias = static_cast<const T*>(a.bias);
  T* y = static_cast<T*>(a.y);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t co = 0; co < g.c_out; ++co)
      for (int64_t i = 0; i < g.oh; ++i)
        for (int64_t j = 0; j < g.ow; ++j) {
          double s = bias ? double(bias[co]) : 0.0;
          for (int64_t c = 0; c < cig; ++c)
            for (int64_t p = 0; p < g.kh; ++p)
              for (int64_t q = 0; q < g.kw; ++q) {
                const int64_t ih = input_index(i, p, g.stride_h, g.pad_h, g.dilation_h);
                const int64_t iw = input_index(j, q, g.stride_w, g.pad_w, g.dilation_w);
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                s += double(x[((n * g.c_in + co / cog * cig + c) * g.h + ih) * g.w + iw]) *
                     double(w[((co * cig + c) * g.kh + p) * g.kw + q]);
              }
          y[((n * g.c_out + co) * g.oh + i) * g.ow + j] = T(s);
        }
}

template <class T>
void backward_data_reference(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const int64_t cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  const T *gy = static_cast<const T*>(a.grad_y), *w = static_cast<const T*>(a.weight);
  T* gx = static_cast<T*>(a.grad_x);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t ci = 0; ci < g.c_in; ++ci)
      for (int64_t ih = 0; ih < g.h; ++ih)
        for (int64_t iw = 0; iw < g.w; ++iw) {
          double s = 0;
          // every (output pixel, tap) that reads x[n, ci, ih, iw]
          for (int64_t co = ci / cig * cog; co < (ci / cig + 1) * cog; ++co)
            for (int64_t p = 0; p < g.kh; ++p)
              for (int64_t q = 0; q < g.kw; ++q) {
                const int64_t di = ih + g.pad_h - p * g.dilation_h, dj = iw + g.pad_w - q * g.dilation_w;
                if (di < 0 || dj < 0 || di % g.stride_h || dj % g.stride_w) continue;
                const int64_t i = di / g.stride_h, j = dj / g.stride_w;
                if (i >= g.oh || j >= g.ow) continue;
                s += double(gy[((n * g.c_out + co) * g.oh + i) * g.ow + j]) *
                     double(w[((co * cig + ci % cig) * g.kh + p) * g.kw + q]);
              }
          gx[((n * g.c_in + ci) * g.h + ih) * g.w + iw] = T(s);
        }
}

template <class T>
void backward_weight_reference(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const int64_t cig = g.c_in / g.groups, cog = g.c_out / g.groups;
  const T *x = static_cast<const T*>(a.x), *gy = static_cast<const T*>(a.grad_y);
  T *gw = static_cast<T*>(a.grad_weight), *gb = static_cast<T*>(a.grad_bias);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t co = 0; co < g.c_out; ++co)
    for (int64_t c = 0; c < cig; ++c)
      for (int64_t p = 0; p < g.kh; ++p)
        for (int64_t q = 0; q < g.kw; ++q) {
          double s = 0;
          for (int64_t n = 0; n < g.n; ++n)
            for (int64_t i = 0; i < g.oh; ++i)
              for (int64_t j = 0; j < g.ow; ++j) {
                const int64_t ih = input_index(i, p, g.stride_h, g.pad_h, g.dilation_h);
                const int64_t iw = input_index(j, q, g.stride_w, g.pad_w, g.dilation_w);
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                s += double(gy[((n * g.c_out + co) * g.oh + i) * g.ow + j]) *
                     double(x[((n * g.c_in + co / cog * cig + c) * g.h + ih) * g.w + iw]);
              }
          gw[((co * cig + c) * g.kh + p) * g.kw + q] = T(s);
        }
  if (gb)
    for (int64_t co = 0; co < g.c_out; ++co) {
      double s = 0;
      for (int64_t n = 0; n < g.n; ++n)
        for (int64_t k = 0; k < g.oh * g.ow; ++k) s += double(gy[(n * g.c_out + co) * g.oh * g.ow + k]);
      gb[co] = T(s);
    }
}

// ---- fast: im2col tiles + GEMM

// One im2col tile (with the GEMM's packed copy of it) should fit in L2 beside the weights.
constexpr int64_t kTileBytes = 384 << 10;
constexpr int64_t kSerialFlops = int64_t(1) << 20;  // smaller convolutions run on one thread

// How a convolution is cut into GEMMs.
struct Plan {
  int64_t cig, cog;   // channels per group
  int64_t kdim;       // rows of the im2col matrix: cig·kh·kw
  int64_t hw, pixels; // input and output pixels per channel
  int64_t tile, tiles;
  bool pointwise;     // 1x1, stride 1, no padding: x itself is the im2col matrix
  bool parallel;      // big enough for more than one thread
};

template <class T>
Plan make_plan(const ConvGeometry& g) {
  Plan p;
  p.cig = g.c_in / g.groups, p.cog = g.c_out / g.groups;
  p.kdim = p.cig * g.kh * g.kw;
  p.hw = g.h * g.w, p.pixels = g.oh * g.ow;
  p.pointwise = g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0 &&
             g.oh == g.h && g.ow == g.w;
  // Balanced tiles of at most kTileBytes, in multiples of 16 pixels (the GEMM's panels are 16 or 32 wide).
  const int64_t cap = std::max<int64_t>(16, kTileBytes / (std::max<int64_t>(p.kdim, 1) * int64_t(sizeof(T))) / 16 * 16);
  p.tiles = std::max<int64_t>(1, ceil_div(p.pixels, cap));
  p.tile = std::min(p.pixels, ceil_div(ceil_div(p.pixels, p.tiles), 16) * 16);
  p.tiles = std::max<int64_t>(1, ceil_div(p.pixels, std::max<int64_t>(p.tile, 1)));
  p.parallel = 2.0 * double(g.n) * double(g.c_out) * double(p.kdim) * double(p.pixels) >= double(kSerialFlops);
  return p;
}

// GEMM work items: split between the threads when there are enough of them to balance;
// otherwise run in order on this thread (slot 0), each GEMM using every thread. Returns the
// number of slots used.
template <class F>
int run_items(int64_t items, bool parallel, F&& f) {
  const int nt = parallel ? omp_get_max_threads() : 1;
  const bool split = nt > 1 && items >= nt && (items % nt == 0 || items >= 4 * nt);
  for_items(split ? nt : 1, items, f);
  return split ? nt : 1;
}

// Moves the patches of output pixels [p0, p0 + np) between one image-group's input
// xg [cig, h, w] and the tile col [kdim, np] (row (c, p, q) holds tap (p, q) of channel c):
// im2col (kScatter false) copies them into col, zeros where the tap falls in the padding;
// col2im (kScatter true) adds col back into xg.
template <bool kScatter, class T>
void patches(std::conditional_t<kScatter, T*, const T*> xg, const ConvGeometry& g, int64_t cig, int64_t p0,
             int64_t np, T* col) {
  const int64_t sw = g.stride_w;
  for (int64_t c = 0; c < cig; ++c)
    for (int64_t p = 0; p < g.kh; ++p)
      for (int64_t q = 0; q < g.kw; ++q, col += np) {
        const int64_t off = q * g.dilation_w - g.pad_w;  // output column j reads input column j·sw + off
        // runs of pixels within one output row
        for (int64_t k = 0; k < np;) {
          const int64_t i = (p0 + k) / g.ow, j0 = (p0 + k) % g.ow, len = std::min(g.ow - j0, np - k);
          T* d = col + k;
          k += len;
          const int64_t ih = input_index(i, p, g.stride_h, g.pad_h, g.dilation_h);
          if (ih < 0 || ih >= g.h) {
            if (!kScatter) std::fill(d, d + len, T(0));
            continue;
          }
          auto row = xg + (c * g.h + ih) * g.w;
          const int64_t base = j0 * sw + off;  // row[base + t·sw] is under pixel t of the run
          // pixels t in [t0, t1) of the run read inside the input
          const int64_t t0 = std::clamp(ceil_div(-base, sw), int64_t(0), len);
          const int64_t t1 = std::clamp(ceil_div(g.w - base, sw), t0, len);
          if constexpr (kScatter) {
            if (sw == 1) {
#pragma omp simd
              for (int64_t t = t0; t < t1; ++t) row[base + t] += d[t];
            } else {
              for (int64_t t = t0; t < t1; ++t) row[base + t * sw] += d[t];
            }
          } else {
            std::fill(d, d + t0, T(0));
            if (sw == 1) {
              std::copy(row + (base + t0), row + (base + t1), d + t0);
            } else {
              for (int64_t t = t0; t < t1; ++t) d[t] = row[base + t * sw];
            }
            std::fill(d + t1, d + len, T(0));
          }
        }
      }
}

template <class T>
void forward_fast(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const Plan pl = make_plan<T>(g);
  const T *x = static_cast<const T*>(a.x), *w = static_cast<const T*>(a.weight), *bias = static_cast<const T*>(a.bias);
  T* y = static_cast<T*>(a.y);
  const Correlation corr = forward_correlation(g);
  if (!pl.pointwise && direct_suits<T>(corr))
    return correlate(corr, x, WeightLayout<T>{w, pl.cog * pl.kdim, pl.kdim, g.kh * g.kw, false}, bias, y, pl.parallel);
  run_items(g.n * g.groups * pl.tiles, pl.parallel, [&](int64_t item, int) {
    const int64_t n = item / (g.groups * pl.tiles), grp = item / pl.tiles % g.groups;
    const int64_t p0 = item % pl.tiles * pl.tile, np = std::min(pl.tile, pl.pixels - p0);
    const T* xg = x + (n * g.c_in + grp * pl.cig) * pl.hw;
    GemmArgs m;  // y_g[:, tile] = w_g · col
    m.m = pl.cog, m.n = np, m.k = pl.kdim;
    m.a = w + grp * pl.cog * pl.kdim, m.a_rs = pl.kdim, m.a_cs = 1;
    if (pl.pointwise) {
      m.b = xg + p0, m.b_rs = pl.hw, m.b_cs = 1;
    } else {
      T* col = scratch<T>(pl.kdim * np);
      patches<false>(xg, g, pl.cig, p0, np, col);
      m.b = col, m.b_rs = np, m.b_cs = 1;
    }
    T* yg = y + (n * g.c_out + grp * pl.cog) * pl.pixels + p0;
    m.c = yg, m.c_rs = pl.pixels;
    a.gemm(m);
    if (bias)
      for (int64_t co = 0; co < pl.cog; ++co) {
        const T b = bias[grp * pl.cog + co];
#pragma omp simd
        for (int64_t k = 0; k < np; ++k) yg[co * pl.pixels + k] += b;
      }
  });
}

template <class T>
void backward_data_fast(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const Plan pl = make_plan<T>(g);
  const T *gy = static_cast<const T*>(a.grad_y), *w = static_cast<const T*>(a.weight);
  T* gx = static_cast<T*>(a.grad_x);
  const Correlation corr = backward_data_correlation(g);
  if (unit_stride(g) && !pl.pointwise && direct_suits<T>(corr)) {  // outputs: input channels; inputs: output channels
    const WeightLayout<T> flipped{w, pl.cog * pl.kdim, g.kh * g.kw, pl.kdim, true};
    return correlate(corr, gy, flipped, static_cast<const T*>(nullptr), gx, pl.parallel);
  }
  // Tiles of one image-group overlap in grad_x, so they stay together in one item.
  run_items(g.n * g.groups, pl.parallel, [&](int64_t item, int) {
    const int64_t n = item / g.groups, grp = item % g.groups;
    T* xg = gx + (n * g.c_in + grp * pl.cig) * pl.hw;
    if (!pl.pointwise) std::fill(xg, xg + pl.cig * pl.hw, T(0));
    for (int64_t p0 = 0; p0 < pl.pixels; p0 += pl.tile) {
      const int64_t np = std::min(pl.tile, pl.pixels - p0);
      GemmArgs m;  // col = w_gᵀ · grad_y_g[:, tile]
      m.m = pl.kdim, m.n = np, m.k = pl.cog;
      m.a = w + grp * pl.cog * pl.kdim, m.a_rs = 1, m.a_cs = pl.kdim;
      m.b = gy + (n * g.c_out + grp * pl.cog) * pl.pixels + p0, m.b_rs = pl.pixels, m.b_cs = 1;
      if (pl.pointwise) {
        m.c = xg + p0, m.c_rs = pl.hw;
        a.gemm(m);
      } else {
        T* col = scratch<T>(pl.kdim * np);
        m.c = col, m.c_rs = np;
        a.gemm(m);
        patches<true>(xg, g, pl.cig, p0, np, col);
      }
    }
  });
}

// grad_w (zeroed here) through im2col tiles and GEMMs, each thread summing into its own copy.
template <class T>
void backward_weight_gemm(const ConvGeometry& g, const Plan& pl, GemmFn gemm, const T* x, const T* gy, T* gw) {
  const int64_t wsize = g.c_out * pl.kdim;
  const int nt = pl.parallel ? omp_get_max_threads() : 1;
  std::vector<T> partial(size_t(nt - 1) * size_t(wsize), T(0));
  std::fill(gw, gw + wsize, T(0));
  const int used = run_items(g.n * g.groups * pl.tiles, pl.parallel, [&](int64_t item, int slot) {
    const int64_t n = item / (g.groups * pl.tiles), grp = item / pl.tiles % g.groups;
    const int64_t p0 = item % pl.tiles * pl.tile, np = std::min(pl.tile, pl.pixels - p0);
    const T* xg = x + (n * g.c_in + grp * pl.cig) * pl.hw;
    GemmArgs m;  // dw_g += grad_y_g[:, tile] · colᵀ
    m.m = pl.cog, m.n = pl.kdim, m.k = np;
    m.a = gy + (n * g.c_out + grp * pl.cog) * pl.pixels + p0, m.a_rs = pl.pixels, m.a_cs = 1;
    if (pl.pointwise) {
      m.b = xg + p0, m.b_rs = 1, m.b_cs = pl.hw;
    } else {
      T* col = scratch<T>(pl.kdim * np);
      patches<false>(xg, g, pl.cig, p0, np, col);
      m.b = col, m.b_rs = 1, m.b_cs = np;
    }
    T* acc = slot == 0 ? gw : partial.data() + (slot - 1) * wsize;
    m.c = acc + grp * pl.cog * pl.kdim, m.c_rs = pl.kdim;
    m.beta = 1;
    gemm(m);
  });
  for (int s = 1; s < used; ++s) {
    const T* p = partial.data() + (s - 1) * wsize;
#pragma omp simd
    for (int64_t i = 0; i < wsize; ++i) gw[i] += p[i];
  }
}

template <class T>
void backward_weight_fast(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const Plan pl = make_plan<T>(g);
  const T *x = static_cast<const T*>(a.x), *gy = static_cast<const T*>(a.grad_y);
  T *gw = static_cast<T*>(a.grad_weight), *gb = static_cast<T*>(a.grad_bias);
  if (g.n == 0 || g.c_out == 0) {  // nothing to sum
    std::fill(gw, gw + g.c_out * pl.kdim, T(0));
    if (gb) std::fill(gb, gb + g.c_out, T(0));
    return;
  }
  if (unit_stride(g) && !pl.pointwise) return backward_weight_direct(g, x, gy, gw, gb, pl.parallel);
  backward_weight_gemm(g, pl, a.gemm, x, gy, gw);
  if (gb)
#pragma omp parallel for schedule(static) if (pl.parallel)
    for (int64_t co = 0; co < g.c_out; ++co) {
      T s = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const T* r = gy + (n * g.c_out + co) * pl.pixels;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < pl.pixels; ++k) s += r[k];
      }
      gb[co] = s;
    }
}

template <class T>
const ConvKernels* conv_set() {
  static const ConvKernels k = {{&forward_fast<T>, &backward_data_fast<T>, &backward_weight_fast<T>},
                                {&forward_reference<T>, &backward_data_reference<T>, &backward_weight_reference<T>}};
  return &k;
}

}  // namespace

void fill_conv(KernelSet& set) {
  set.conv[int(DType::Float32)] = conv_set<float>();
  set.conv[int(DType::Float64)] = conv_set<double>();
}

}  // namespace lepton::cpu::LEPTON_ISA
