// Direct convolution kernels for the CPU (included by conv.cpp only, inside each ISA build's
// namespace): forward and stride-1 backward-data as register-blocked correlations over a padded
// copy of the input, stride-1 backward-weight as a correlation of grad_y with it. No im2col.
#pragma once
#include <array>
#include <cstring>
#include <vector>

#include "lepton/cpu/kernels/common.h"
#include "lepton/cpu/kernels/conv_work.h"
#include "lepton/cpu/kernels/vec.h"
#include "lepton/ops/conv_kernels.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {  // one translation unit per ISA includes this

// Output pixel (i, j) reads the zero-padded input at (i·sh + a·dh, j·sw + b·dw). Once the input
// of an (image, group) is copied into a padded buffer of rows of wp, pixel (i, j) reads tap
// k = (c, a, b) at padded[i·sh·wp + j·sw + off[k]], off[k] = c·plane + a·dh·wp + b·dw: with
// stride 1, consecutive output pixels read consecutive inputs for every tap. The microkernel is
// the GEMM's register blocking (MR rows × NV vectors of accumulators, one broadcast and NV
// vector loads per step) with one operand read in place through off[] instead of copied by
// im2col and packed, in one of two forms:
// - pixels in lanes (stride 1): MR output channels (broadcast weights) × NV·W virtual pixels
//   q = i·wp + j (vector loads of the input; the junk columns j >= ow are dropped afterwards);
// - channels in lanes: MR pixels of an output row (broadcast inputs, sw apart) × NV·W output
//   channels (vector loads of the weights), transposed on the way out; no junk columns.
// Backward-data at stride 1 is the same correlation of grad_y with the weights transposed and
// flipped; backward-weight correlates grad_y with the padded input, summing over pixels.

// Register blockings of MR rows × NV vectors: tall (14 × 2 on AVX-512, 28 of the 32 zmm
// registers as accumulators) suits multiples of 14 output channels, wide (8 × 3) multiples of 8,
// single (1 × 4: loads outnumber multiply-adds) one channel per group, as in depthwise layers.
template <int MR_, int NV_>
struct Blocking {
  static constexpr int MR = MR_, NV = NV_;
};
#if defined(__AVX512F__)
using TallBlocking = Blocking<14, 2>;  // 28 accumulators + 2 loads + 1 broadcast of 32 zmm
using WideBlocking = Blocking<8, 3>;   // 24 + 3 + 1
#elif defined(__AVX2__)
using TallBlocking = Blocking<6, 2>;  // 12 + 2 + 1 of 16 ymm
using WideBlocking = Blocking<4, 3>;  // 12 + 3 + 1
#else
using TallBlocking = Blocking<4, 2>;
using WideBlocking = Blocking<2, 3>;
#endif
using SingleBlocking = Blocking<1, 4>;
// Channels in lanes: the tall blocking, with no more pixels than a vector has lanes (a tile is
// transposed through vectors on the way out).
template <class T>
using ChannelBlocking = Blocking<std::min(TallBlocking::MR, Vec<T>::W), TallBlocking::NV>;
constexpr int64_t kBlockBytes = 16 << 10;  // weights of one tap block, kept in L1 across tiles

// acc[i][v] += Σ_{k<kc} a(k)[i·AS] · b(k)[v·W : (v+1)·W] for i < MR, v < NV: a(k) points at the
// MR values broadcast for step k (AS apart), b(k) at its NV vectors.
template <class B, int AS, class T, class A, class Bv>
LEPTON_SIMD_INLINE void multiply_add(int64_t kc, A a, Bv b, typename Vec<T>::V (&acc)[B::MR][B::NV]) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  for (int64_t k = 0; k < kc; ++k) {
    const T *ak = a(k), *bk = b(k);
    V bv[B::NV];
#pragma GCC unroll 4
    for (int v = 0; v < B::NV; ++v) bv[v] = loadv<V>(bk + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < B::MR; ++i) {
      const T ai = ak[i * AS];
#pragma GCC unroll 4
      for (int v = 0; v < B::NV; ++v) acc[i][v] += ai * bv[v];
    }
  }
}

// Pixels in vector lanes: c[i][0:NV·W] (+)= Σ_{k<kc} w[k·MR + i] · in[off[k] : off[k] + NV·W] for
// the MR output channels i, rows ldc apart.
template <class B, class T>
void pixel_tile(int64_t kc, const T* w, const T* in, const int64_t* off, T* c, int64_t ldc, bool accumulate) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  V acc[B::MR][B::NV];
#pragma GCC unroll 16
  for (int i = 0; i < B::MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < B::NV; ++v) acc[i][v] = accumulate ? loadv<V>(c + i * ldc + v * W) : V{};
  multiply_add<B, 1, T>(kc, [&](int64_t k) { return w + k * B::MR; }, [&](int64_t k) { return in + off[k]; }, acc);
#pragma GCC unroll 16
  for (int i = 0; i < B::MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < B::NV; ++v) storev(c + i * ldc + v * W, acc[i][v]);
}

// Channels in vector lanes: y[c·ld + i] = bias[c] + Σ_{k<kdim} in[off[k] + i·SW] · w[k·NV·W + c]
// for the MR consecutive output pixels i < mr of a row (SW their column stride) and the NV·W
// channels c < channels; the accumulators are transposed in registers on the way out.
template <class B, int SW, class T>
void channel_tile(int64_t kdim, const T* in, const int64_t* off, const T* w, const T* bias, T* y, int64_t ld,
                  int64_t mr, int64_t channels) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W, NR = B::NV * W;
  static_assert(B::MR <= W, "a tile's pixels must fit in one transposed vector");
  V acc[B::MR][B::NV];
#pragma GCC unroll 16
  for (int i = 0; i < B::MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < B::NV; ++v) acc[i][v] = V{};
  multiply_add<B, SW, T>(kdim, [&](int64_t k) { return in + off[k]; }, [&](int64_t k) { return w + k * NR; }, acc);
  for (int v = 0; v < B::NV; ++v) {
    V rows[W];
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i) rows[i] = i < B::MR ? acc[i][v] : V{};
    transpose<T>(rows);  // rows[l]: channel v·W + l of every pixel
    for (int l = 0; l < W && v * W + l < channels; ++l) {
      const V r = rows[l] + (bias ? bias[v * W + l] : T(0));
      T* dst = y + (v * W + l) * ld;
      if (mr == B::MR)
        std::memcpy(dst, &r, B::MR * sizeof(T));
      else
        std::memcpy(dst, &r, size_t(mr) * sizeof(T));
    }
  }
}

// A grouped correlation: out[n][g·cout + o][i][j] = bias[g·cout + o] + Σ_{c, a, b}
//   weight(g, o, c, a·kw + b) · in[n][g·cin + c][i·sh - pad_h + a·dh][j·sw - pad_w + b·dw],
// reading zeros outside `in`. Pads may be negative (the input is cropped).
struct Correlation {
  int64_t n, groups, cin, cout, h, w, oh, ow, kh, kw, dh, dw, pad_h, pad_w;
  int64_t sh = 1, sw = 1;  // strides: output (i, j) reads from row i·sh, column j·sw on
};

// Whether the direct kernels apply: they need taps to sum over (an empty sum takes the GEMM path);
// strided ones run channels in lanes, for column strides of 1 or 2 and a quarter of the lanes in use.
template <class T>
bool direct_suits(const Correlation& d) {
  if (d.cin == 0) return false;
  return (d.sh == 1 && d.sw == 1) || (d.sw <= 2 && 4 * d.cout >= ChannelBlocking<T>::NV * Vec<T>::W);
}

// dst[0:n] = src[0:n] for a short row, in whole vectors: the last one is read past the row when
// src_room elements are readable there, and written with zeros in its lanes past n when
// dst_room elements are writable (the caller's layout needs zeros or rewrites that memory).
template <class T>
LEPTON_SIMD_INLINE void copy_row(const T* src, T* dst, int64_t n, int64_t src_room, int64_t dst_room) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  int64_t t = 0;
  for (; t + W <= n; t += W) storev(dst + t, loadv<V>(src + t));
  if (t == n) return;
  if (src_room - t >= W && dst_room - t >= W) {
    typename Vec<T>::M lane;
    for (int l = 0; l < W; ++l) lane[l] = typename Vec<T>::S(l);
    const V v = loadv<V>(src + t);
    storev(dst + t, lane < typename Vec<T>::S(n - t) ? v : V{});
    return;
  }
  for (; t < n; ++t) dst[t] = src[t];
}

// Copies in[c][r - pad_h][s - pad_w] (zero outside) into pad[c·plane + r·wp + s] for r < hp,
// s < wp, followed by `slack` zeros. With `clean`, pad already holds this
// layout's zeros (an earlier image's), so only the input is copied.
template <class T>
void pad_input(const T* in, const Correlation& d, int64_t hp, int64_t wp, int64_t slack, T* pad, bool clean) {
  const int64_t s0 = std::max<int64_t>(0, d.pad_w), s1 = std::clamp<int64_t>(d.w + d.pad_w, s0, wp);
  const T* in_end = in + d.cin * d.h * d.w;
  T* pad_end = pad + d.cin * hp * wp + slack;
  for (int64_t c = 0; c < d.cin; ++c)
    for (int64_t r = 0; r < hp; ++r, pad += wp) {
      const int64_t src = r - d.pad_h;
      if (src < 0 || src >= d.h || s0 >= s1) {
        if (!clean) std::fill(pad, pad + wp, T(0));
        continue;
      }
      if (!clean) std::fill(pad, pad + s0, T(0));
      // rows are processed in order, so what the last vector writes past s1 is rewritten or zero
      const T* row = in + (c * d.h + src) * d.w + (s0 - d.pad_w);
      copy_row(row, pad + s0, s1 - s0, in_end - row, pad_end - (pad + s0));
      if (!clean) std::fill(pad + s1, pad + wp, T(0));
    }
  if (!clean) std::fill(pad, pad + slack, T(0));
}

// The padded input of one (image, group): cin planes of hp rows of wp, where output pixel
// (i, j) reads tap k at i·sh·wp + j·sw + off[k]; `size` includes slack for reads past the last plane.
struct Padded {
  int64_t hp, wp, plane, kdim, size;
  std::vector<int64_t> off;
  Padded(const Correlation& d, int64_t slack)
      : hp((d.oh - 1) * d.sh + (d.kh - 1) * d.dh + 1), wp((d.ow - 1) * d.sw + (d.kw - 1) * d.dw + 1), plane(hp * wp),
        kdim(d.cin * d.kh * d.kw),
        size(d.cin * plane + (d.kw - 1) * d.dw + slack), off(static_cast<size_t>(kdim)) {
    for (int64_t c = 0, k = 0; c < d.cin; ++c)
      for (int64_t a = 0; a < d.kh; ++a)
        for (int64_t b = 0; b < d.kw; ++b) off[size_t(k++)] = c * plane + a * d.dh * wp + b * d.dw;
  }
};

// Calls f(ng, block, part, pad) for items (image·groups + group, block of output channels, part)
// split between the threads, pad holding the padded input of ng (built once per thread and ng).
template <class T, class F>
void for_padded_items(const Correlation& d, const Padded& p, const T* in, int64_t blocks, int64_t parts,
                      bool parallel, F f) {
  const int nt = parallel ? omp_get_max_threads() : 1;
  std::vector<int64_t> padded_for(size_t(nt), -1);
  for_items(nt, d.n * d.groups * blocks * parts, [&](int64_t item, int slot) {
    const int64_t ng = item / (blocks * parts);
    T* pad = scratch<T, 0>(p.size);
    if (padded_for[size_t(slot)] != ng) {
      const bool clean = padded_for[size_t(slot)] >= 0;  // an earlier image of this call left its zeros
      pad_input(in + ng * d.cin * d.h * d.w, d, p.hp, p.wp, p.size - d.cin * p.plane, pad, clean);
      padded_for[size_t(slot)] = ng;
    }
    f(ng, item / parts % blocks, item % parts, pad);
  });
}

// Where the correlation's weight for (group g, output o, input c, tap t < kh·kw) is:
// w[g·group + o·out + c·in + t], or, flipped (kh·kw - 1 - t) for backward-data.
template <class T>
struct WeightLayout {
  const T* w;
  int64_t group, out, in;
  bool flip;
};

// The weights packed [group][block of R outputs][tap k = c·kh·kw + t][R], outputs past cout zero.
template <int R, class T>
std::vector<T> pack_weights(const Correlation& d, const WeightLayout<T>& l, bool parallel) {
  const int64_t blocks = ceil_div(d.cout, R), taps = d.kh * d.kw, kdim = d.cin * taps;
  std::vector<T> packed(size_t(d.groups * blocks * kdim * R));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t gb = 0; gb < d.groups * blocks; ++gb) {
    const int64_t g = gb / blocks, o0 = gb % blocks * R;
    T* dst = packed.data() + gb * kdim * R;
    for (int64_t c = 0; c < d.cin; ++c)
      for (int64_t t = 0; t < taps; ++t, dst += R) {
        const T* src = l.w + g * l.group + c * l.in + (l.flip ? taps - 1 - t : t);
        for (int64_t i = 0; i < R; ++i) dst[i] = o0 + i < d.cout ? src[(o0 + i) * l.out] : T(0);
      }
  }
  return packed;
}

// The correlation with pixels in vector lanes: each item computes a block of B::MR output
// channels over a part of the virtual pixels q = i·wp + j, then drops the junk columns.
template <class B, class T>
void correlate_pixels(const Correlation& d, const T* in, const WeightLayout<T>& weight, const T* bias, T* out,
                      bool parallel) {
  constexpr int MR = B::MR, NR = B::NV * Vec<T>::W;
  const Padded p(d, NR);
  const int64_t cblocks = ceil_div(d.cout, MR);
  const std::vector<T> packed = pack_weights<MR>(d, weight, parallel);
  // tap blocks whose weights stay in L1 while every tile of the item streams past them
  const int64_t kc = ceil_div(p.kdim, std::max<int64_t>(1, ceil_div(p.kdim * MR * int64_t(sizeof(T)), kBlockBytes)));
  const int64_t q = d.oh * p.wp, tiles = ceil_div(q, NR);
  const int64_t parts = parts_for(d.n * d.groups * cblocks, parallel ? omp_get_max_threads() : 1, tiles);
  const int64_t part_tiles = ceil_div(tiles, parts);
  for_padded_items(d, p, in, cblocks, parts, parallel, [&](int64_t ng, int64_t cb, int64_t part, const T* pad) {
    const int64_t q0 = part * part_tiles * NR, q1 = std::min(q, (part + 1) * part_tiles * NR);
    if (q0 >= q1) return;
    const int64_t ld = ceil_div(q1 - q0, NR) * NR, grp = ng % d.groups;
    T* acc = scratch<T, 1>(MR * ld);
    const T* w = packed.data() + (grp * cblocks + cb) * p.kdim * MR;
    for (int64_t k0 = 0; k0 < p.kdim; k0 += kc) {
      const int64_t kn = std::min(kc, p.kdim - k0);
      for (int64_t t = q0; t < q1; t += NR)
        pixel_tile<B>(kn, w + k0 * MR, pad + t, p.off.data() + k0, acc + (t - q0), ld, k0 > 0);
    }
    // drop the junk columns, add the bias
    for (int64_t i = 0; i < MR && cb * MR + i < d.cout; ++i) {
      const int64_t o = grp * d.cout + cb * MR + i;
      const T b = bias ? bias[o] : T(0);
      T* y = out + (ng / d.groups * d.groups * d.cout + o) * d.oh * d.ow;
      for (int64_t v = q0; v < q1;) {
        const int64_t r = v / p.wp, j = v % p.wp, len = std::min(p.wp - j, q1 - v);
        const T* src = acc + i * ld + (v - q0);
#pragma omp simd
        for (int64_t t = 0; t < std::min(len, d.ow - j); ++t) y[r * d.ow + j + t] = src[t] + b;
        v += len;
      }
    }
  });
}

// The correlation with output channels in vector lanes: each item computes a block of NV·W
// channels over a part of the output rows, in tiles of MR pixels of a row (no junk columns),
// transposed on their way out. SW = d.sw.
template <class B, int SW, class T>
void correlate_channels(const Correlation& d, const T* in, const WeightLayout<T>& weight, const T* bias, T* out,
                        bool parallel) {
  constexpr int MR = B::MR, NR = B::NV * Vec<T>::W;
  const Padded p(d, MR * SW);
  const int64_t cblocks = ceil_div(d.cout, NR);
  const std::vector<T> packed = pack_weights<NR>(d, weight, parallel);
  const int64_t parts = parts_for(d.n * d.groups * cblocks, parallel ? omp_get_max_threads() : 1, d.oh);
  const int64_t part_rows = ceil_div(d.oh, parts);
  for_padded_items(d, p, in, cblocks, parts, parallel, [&](int64_t ng, int64_t cb, int64_t part, const T* pad) {
    const int64_t grp = ng % d.groups, channels = std::min<int64_t>(NR, d.cout - cb * NR);
    const T* w = packed.data() + (grp * cblocks + cb) * p.kdim * NR;
    T* y = out + (ng / d.groups * d.groups * d.cout + grp * d.cout + cb * NR) * d.oh * d.ow;
    const T* b = bias ? bias + grp * d.cout + cb * NR : nullptr;
    for (int64_t r = part * part_rows; r < std::min(d.oh, (part + 1) * part_rows); ++r)
      for (int64_t j0 = 0; j0 < d.ow; j0 += MR)
        channel_tile<B, SW>(p.kdim, pad + r * d.sh * p.wp + j0 * SW, p.off.data(), w, b, y + r * d.ow + j0,
                            d.oh * d.ow, std::min<int64_t>(MR, d.ow - j0), channels);
  });
}

// Runs the form and blocking that waste the fewest multiply-adds on padding: pixels in lanes
// lose the junk columns and the rounding of the pixels and channels to whole tiles, channels in
// lanes the rounding of each row to MR pixels and of the channels to vectors, and a transposed
// store per tile. The single blocking counts half: it waits on loads. Strided correlations have
// channels in lanes.
template <class T>
void correlate(const Correlation& d, const T* in, const WeightLayout<T>& weight, const T* bias, T* out, bool parallel) {
  constexpr int W = Vec<T>::W;
  using CB = ChannelBlocking<T>;
  if (d.sw == 2) return correlate_channels<CB, 2>(d, in, weight, bias, out, parallel);
  auto use = [](int64_t n, int64_t tile) { return double(n) / double(ceil_div(n, tile) * tile); };
  const int64_t wp = d.ow + (d.kw - 1) * d.dw;
  auto pixels = [&](auto b) { return double(d.ow) / double(wp) * use(d.oh * wp, b.NV * W) * use(d.cout, b.MR); };
  const double tall = pixels(TallBlocking()), wide = pixels(WideBlocking()), single = 0.5 * pixels(SingleBlocking());
  const int64_t kdim = d.cin * d.kh * d.kw;  // a tile's transposed store costs about 8 of its steps
  const double channels = use(d.ow, CB::MR) * use(d.cout, CB::NV * W) * double(kdim) / double(kdim + 8);
  const double best = std::max({tall, wide, single, channels});
  if (channels == best || d.sh != 1)
    correlate_channels<CB, 1>(d, in, weight, bias, out, parallel);
  else if (wide == best)
    correlate_pixels<WideBlocking>(d, in, weight, bias, out, parallel);
  else if (tall == best)
    correlate_pixels<TallBlocking>(d, in, weight, bias, out, parallel);
  else
    correlate_pixels<SingleBlocking>(d, in, weight, bias, out, parallel);
}

inline Correlation forward_correlation(const ConvGeometry& g) {
  return {g.n, g.groups, g.c_in / g.groups, g.c_out / g.groups, g.h, g.w, g.oh, g.ow,
          g.kh, g.kw, g.dilation_h, g.dilation_w, g.pad_h, g.pad_w, g.stride_h, g.stride_w};
}

// grad_x as a correlation of grad_y with the weights flipped and transposed per group.
inline Correlation backward_data_correlation(const ConvGeometry& g) {
  return {g.n, g.groups, g.c_out / g.groups, g.c_in / g.groups, g.oh, g.ow, g.h, g.w,
          g.kh, g.kw, g.dilation_h, g.dilation_w, (g.kh - 1) * g.dilation_h - g.pad_h,
          (g.kw - 1) * g.dilation_w - g.pad_w};
}

inline bool unit_stride(const ConvGeometry& g) { return g.stride_h == 1 && g.stride_w == 1; }

// Backward-weight at stride 1, directly: grad_w[o][k] = Σ over output pixels (i, j) of
// grad_y[o][i][j] · padded[i·wp + j + off[k]], summed over a block of images at a time, in one
// of two forms:
// - channels in lanes (the default): MR taps (broadcast inputs) × NV·W output channels (vector
//   loads of grad_y transposed to [pixel][channel]), over the valid pixels only;
// - pixels in lanes, for few output channels: kWO channels × kWK taps of lane-wise partial sums
//   over the virtual pixels q = i·wp + j (grad_y copied into that layout, zero in the junk
//   columns), whose lanes are added at the end of the block.
using WeightBlocking = Blocking<std::min(8, Vec<float>::W / 2), 2>;  // 8 x 2 on AVX-512: 8 input pointers
#if defined(__AVX512F__)
constexpr int kWO = 4, kWK = 6;  // 24 accumulators + 4 grad_y vectors + 1 input vector
#else
constexpr int kWO = 2, kWK = 5;  // 10 + 2 + 1 of 16
#endif
constexpr int64_t kWeightStream = 2048;  // pixels summed in registers before the sums are stored

// The sum of v's lanes, folding the upper half of the first 2H lanes onto the lower.
template <class T, int H = Vec<T>::W / 2>
LEPTON_SIMD_INLINE T lane_sum(typename Vec<T>::V v) {
  using I = typename Vec<T>::S;
  struct Mask {
    static constexpr std::array<I, Vec<T>::W> make() {
      std::array<I, Vec<T>::W> m{};
      for (int l = 0; l < Vec<T>::W; ++l) m[size_t(l)] = I((l + H) % Vec<T>::W);
      return m;
    }
  };
  alignas(64) static constexpr std::array<I, Vec<T>::W> mask = Mask::make();
  v += __builtin_shuffle(v, loadv<typename Vec<T>::M>(mask.data()));
  if constexpr (H > 1) return lane_sum<T, H / 2>(v);
  else return v[0];
}

// Pixels in lanes: dw[i·ldw + j] += Σ_{b < nb} Σ_{q < n} gy[b·gs + i·ld + q] · in[b·is + off[j] + q]
// for i < rows, j < cols (n a multiple of W).
template <class T>
void weight_pixel_tile(int64_t nb, int64_t n, const T* gy, int64_t gs, int64_t ld, const T* in, int64_t is,
                       const int64_t* off, T* dw, int64_t ldw, int64_t rows, int64_t cols) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W;
  V acc[kWO][kWK];
#pragma GCC unroll 8
  for (int i = 0; i < kWO; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < kWK; ++j) acc[i][j] = V{};
  for (int64_t b = 0; b < nb; ++b, gy += gs, in += is) {
    const T* src[kWK];
#pragma GCC unroll 8
    for (int j = 0; j < kWK; ++j) src[j] = in + off[j];
    for (int64_t q = 0; q < n; q += W) {
      V gv[kWO];
#pragma GCC unroll 8
      for (int i = 0; i < kWO; ++i) gv[i] = loadv<V>(gy + i * ld + q);
#pragma GCC unroll 8
      for (int j = 0; j < kWK; ++j) {
        const V xv = loadv<V>(src[j] + q);
#pragma GCC unroll 8
        for (int i = 0; i < kWO; ++i) acc[i][j] += gv[i] * xv;
      }
    }
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dw[i * ldw + j] += lane_sum<T>(acc[i][j]);
}

// Channels in lanes: dw[c·ldw + t] += Σ_{b < nb} Σ_{i < oh, j < ow} in[b·is + off[t] + i·wp + j] ·
// gyt[b·gs + (i·ow + j)·ldc + c] for the MR taps t < taps and NV·W channels c < channels.
template <class B, class T>
void weight_channel_tile(int64_t nb, const T* in, int64_t is, const int64_t* off, const T* gyt, int64_t gs,
                         int64_t ldc, int64_t oh, int64_t ow, int64_t wp, T* dw, int64_t ldw, int64_t taps,
                         int64_t channels) {
  using V = typename Vec<T>::V;
  constexpr int W = Vec<T>::W, MR = B::MR, NV = B::NV;
  static_assert(MR <= W, "a tile's taps must fit in one transposed vector");
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int t = 0; t < MR; ++t)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[t][v] = V{};
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t i = 0; i < oh; ++i) {
      const T* src[MR];
#pragma GCC unroll 16
      for (int t = 0; t < MR; ++t) src[t] = in + b * is + off[t] + i * wp;
      const T* g = gyt + b * gs + i * ow * ldc;
      for (int64_t j = 0; j < ow; ++j, g += ldc) {
        V bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) bv[v] = loadv<V>(g + v * W);
#pragma GCC unroll 16
        for (int t = 0; t < MR; ++t) {
          const T a = src[t][j];
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[t][v] += a * bv[v];
        }
      }
    }
  for (int v = 0; v < NV; ++v) {
    V rows[W];
#pragma GCC unroll 16
    for (int t = 0; t < W; ++t) rows[t] = t < MR ? acc[t][v] : V{};
    transpose<T>(rows);  // rows[l]: the taps of channel v·W + l
    for (int l = 0; l < W && v * W + l < channels; ++l)
      for (int64_t t = 0; t < taps; ++t) dw[(v * W + l) * ldw + t] += rows[l][t];
  }
}

// grad_w and grad_b (when set) of a stride-1 convolution. Items are (block of images, group,
// block of output channels); each thread sums into its own copy of both.
template <class T>
void backward_weight_direct(const ConvGeometry& g, const T* x, const T* gy, T* gw, T* gb, bool parallel) {
  constexpr int W = Vec<T>::W;
  using B = Blocking<std::min(WeightBlocking::MR, W), WeightBlocking::NV>;
  const Correlation d = forward_correlation(g);
  const Padded p(d, W);
  const int64_t kdim = p.kdim, wsize = g.c_out * kdim, size = wsize + g.c_out, pixels = d.oh * d.ow;
  // the form that wastes fewer multiply-adds; pixels in lanes also pays for adding lanes
  auto use = [](int64_t n, int64_t tile) { return double(n) / double(ceil_div(n, tile) * tile); };
  const bool channels = use(d.cout, B::NV * W) * use(kdim, B::MR) >=
                        0.85 * double(d.ow) / double(p.wp) * use(d.cout, kWO) * use(kdim, kWK);
  // channels in lanes: grad_y as [pixel][ldc channels]; pixels in lanes: as rows of qn virtual pixels
  const int64_t ldc = ceil_div(d.cout, B::NV * W) * B::NV * W, qn = ceil_div(d.oh * p.wp, W) * W;
  const int64_t rows = ceil_div(d.cout, kWO) * kWO, gy_size = channels ? pixels * ldc : rows * qn;
  const int64_t oblock = channels ? B::NV * W : kWO, kblock = channels ? B::MR : kWK;
  std::vector<int64_t> off = p.off;
  off.resize(size_t(ceil_div(kdim, kblock) * kblock), 0);  // taps past kdim read tap 0, unused
  const int nt = parallel ? omp_get_max_threads() : 1;
  // image blocks: about kWeightStream pixels each, a multiple of the threads in number when possible
  int64_t iblocks = ceil_div(d.n, std::max<int64_t>(1, kWeightStream / pixels));
  if (iblocks >= nt) iblocks = std::min(d.n, ceil_div(iblocks, nt) * nt);
  const int64_t nb = ceil_div(d.n, iblocks);
  iblocks = ceil_div(d.n, nb);
  const int64_t base = iblocks * d.groups, oblocks = ceil_div(d.cout, oblock);
  const int64_t parts = parts_for(base, nt, oblocks), part_blocks = ceil_div(oblocks, parts);
  const int used = base * parts > 1 ? nt : 1;
  // slot s sums into sums[s]: [c_out][kdim] weights, then c_out biases
  std::vector<T> sums(size_t(used) * size_t(size), T(0));
  std::vector<int64_t> prepared_for(size_t(nt), -1), clean(size_t(nt), 0);  // clean: padded images with zeros in place
  for_items(used, base * parts, [&](int64_t item, int slot) {
    const int64_t ig = item / parts, part = item % parts, grp = ig % d.groups;
    const int64_t n0 = ig / d.groups * nb, count = std::min(nb, d.n - n0);
    T* pad = scratch<T, 0>(nb * p.size);
    T* gyl = scratch<T, 1>(nb * gy_size);
    T* dw = sums.data() + slot * size + grp * d.cout * kdim;
    if (prepared_for[size_t(slot)] != ig) {
      // part 0 is an image group's first item, so its thread prepares it: the bias sums go there
      T* db = part == 0 ? sums.data() + slot * size + wsize + grp * d.cout : nullptr;
      for (int64_t b = 0; b < count; ++b) {
        const int64_t n = n0 + b;
        pad_input(x + (n * d.groups + grp) * d.cin * d.h * d.w, d, p.hp, p.wp, p.size - d.cin * p.plane,
                  pad + b * p.size, b < clean[size_t(slot)]);
        const T* src = gy + (n * d.groups + grp) * d.cout * pixels;
        T* dst = gyl + b * gy_size;
        if (channels) {
          if (ldc > d.cout) std::fill(dst, dst + gy_size, T(0));
          transpose_into(src, pixels, d.cout, pixels, dst, ldc);
        } else {
          std::fill(dst, dst + gy_size, T(0));
          for (int64_t o = 0; o < d.cout; ++o)
            for (int64_t i = 0; i < d.oh; ++i)
#pragma omp simd
              for (int64_t j = 0; j < d.ow; ++j) dst[o * qn + i * p.wp + j] = src[(o * d.oh + i) * d.ow + j];
        }
        if (db)
          for (int64_t o = 0; o < d.cout; ++o) {
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < pixels; ++k) s += src[o * pixels + k];
            db[o] += s;
          }
      }
      prepared_for[size_t(slot)] = ig;
      clean[size_t(slot)] = std::max(clean[size_t(slot)], count);
    }
    for (int64_t ob = part * part_blocks; ob < std::min(oblocks, (part + 1) * part_blocks); ++ob)
      for (int64_t k0 = 0; k0 < kdim; k0 += kblock) {
        const int64_t outs = std::min(oblock, d.cout - ob * oblock), taps = std::min(kblock, kdim - k0);
        T* tile = dw + ob * oblock * kdim + k0;
        if (channels)
          weight_channel_tile<B>(count, pad, p.size, off.data() + k0, gyl + ob * oblock, gy_size, ldc, d.oh, d.ow,
                                 p.wp, tile, kdim, taps, outs);
        else
          weight_pixel_tile(count, qn, gyl + ob * kWO * qn, gy_size, qn, pad, p.size, off.data() + k0, tile, kdim,
                            outs, taps);
      }
  });
  parallel_range(size, kParallelGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T s = 0;
      for (int t = 0; t < used; ++t) s += sums[size_t(t * size + i)];
      if (i < wsize)
        gw[i] = s;
      else if (gb)
        gb[i - wsize] = s;
    }
  });
}

}  // namespace
}  // namespace lepton::cpu::LEPTON_ISA
