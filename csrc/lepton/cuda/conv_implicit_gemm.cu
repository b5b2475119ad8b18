// Convolution as implicit GEMM on the tensor cores (float16/bfloat16, float32 accumulation,
// mma.sync m16n8k16 fed by ldmatrix from a 3-stage cp.async pipeline). Nothing like im2col is
// materialised: each 16-byte chunk of an operand tile is gathered from the input on the fly,
// zero-filled where the window falls into the padding.
//
// The activations are first copied to an internal NHWC layout whose channels are zero-padded to
// a multiple of 8 within each group (nchw_to_nhwc), so that a chunk is 8 channels of one pixel;
// the weights are permuted the same way. Per group (blockIdx.z), with cgp/mgp the padded input/
// output channels per group:
//   forward          y[M = n·oh·ow, N = c_out/g]   = A[M, K = kh·kw·cgp] · Wᵀ, A the input windows
//   backward_data    gx[M = n·h·w, N = c_in/g]     = A[M, K = kh·kw·mgp] · W'ᵀ, A the grad_y pixels
//                    that reach each input pixel (ih = oh·s - p + a·d, other taps predicated off,
//                    which also handles stride > 1), W' the weights regrouped per input channel
//   backward_weight  gw[M = c_out/g, N = kh·kw·cgp] = grad_yᵀ · windows over K = n·oh·ow, split
//                    over images (blockIdx.z also picks the split); the float32 partials are
//                    summed in split order, so results are deterministic
// Forward and backward_data tiles are K-contiguous ([rows][k], plain ldmatrix); backward_weight's
// operands are contiguous along M and N, so its tiles are [k][rows] and read with ldmatrix.trans.
// Outputs are written straight to NCHW (bias and rounding fused).
#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"
#include "lepton/cuda/conv.cuh"
#include "lepton/cuda/mma.cuh"

namespace lepton::cuda {
namespace {

constexpr int kBK = 32, kStages = 3, kTcThreads = 256;
constexpr int kLdK = kBK + 8;  // [rows][k] tiles: 80-byte rows, ldmatrix's 8 row reads hit distinct banks
constexpr int kFar = -(1 << 29);  // a window origin that puts every tap out of bounds (rows past M)

int round8(int v) { return (v + 7) / 8 * 8; }

// The geometry in 32-bit ints (implicit_gemm_fits checks that every index fits).
struct Geo {
  int n, c_in, h, w, c_out, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups;
  int cg, mg, cgp, mgp;  // input/output channels per group, rounded up to 8
  explicit Geo(const ConvGeometry& g)
      : n(int(g.n)), c_in(int(g.c_in)), h(int(g.h)), w(int(g.w)), c_out(int(g.c_out)), kh(int(g.kh)), kw(int(g.kw)),
        oh(int(g.oh)), ow(int(g.ow)), sh(int(g.stride_h)), sw(int(g.stride_w)), ph(int(g.pad_h)), pw(int(g.pad_w)),
        dh(int(g.dilation_h)), dw(int(g.dilation_w)), groups(int(g.groups)), cg(int(g.c_in / g.groups)),
        mg(int(g.c_out / g.groups)), cgp(round8(cg)), mgp(round8(mg)) {}
};

__device__ __forceinline__ bool inside(int i, int size) { return unsigned(i) < unsigned(size); }

// ---------------------------------------------------------------------------------------------
// Tiles. A block computes a BM×BN tile (128×128, or 256×64 / 64×256 when N / M is at most 64)
// with 8 warps of 64×32 each. Each Tile type describes one GEMM: the thread's share of loading
// a stage (its rows' state computed once), the number of K tiles, and where accumulator (i, j)
// of the block goes. A stage holds 16-byte chunks:
//   [rows][k] tiles (kKMajor false): row tid/4 + 64·i (i < rows/64), k chunk (tid%4)·8;
//   [k][rows] tiles (kKMajor true): row chunk (tid % (R/8))·8, k rows tid/(R/8) + (2048/R)·i.

// Row pitch (elements) of an operand tile in shared memory; [k][rows] pitches are R + 8 for
// the same reason as kLdK (rows 16·(R/8 + 1) bytes apart, 4 words apart modulo 32 banks).
template <bool kKMajor>
constexpr int pitch(int rows) {
  return kKMajor ? rows + 8 : kLdK;
}
template <bool kKMajor>
constexpr int tile_elems(int rows) {
  return kKMajor ? kBK * (rows + 8) : rows * kLdK;
}

// Forward. A row m = (image, oh, ow) gathers input pixels; B row n = output channel of wt
// [c_out][kh][kw][cgp]; k = (a·kw + b)·cgp + c.
template <class T>
struct FpropParams {
  Geo g;
  const uint16_t* xt;  // [n][h][w][groups·cgp]
  const uint16_t* wt;
  const T* bias;
  T* y;
  int m, k;  // M = n·oh·ow, K = kh·kw·cgp (N = mg)
  FastDiv div_cgp, div_kw, div_ohw, div_ow;
};

template <class T, int BM, int BN>
struct Fprop {
  static constexpr bool kKMajor = false;
  static constexpr int kBM = BM, kBN = BN;
  using Params = FpropParams<T>;
  const Params& p;
  int m0, n0, grp, kc;
  int a_base[BM / 64], ih0[BM / 64], iw0[BM / 64], b_base[BN / 64];

  __device__ Fprop(const Params& p_, int m0_, int n0_, int z) : p(p_), m0(m0_), n0(n0_), grp(z) {
    const Geo& g = p.g;
    kc = (threadIdx.x % 4) * 8;
    for (int i = 0; i < BM / 64; ++i) {
      const int m = m0 + int(threadIdx.x) / 4 + 64 * i;
      const int img = int(p.div_ohw.div(m)), pix = m - img * g.oh * g.ow;
      const int oh = int(p.div_ow.div(pix)), ow = pix - oh * g.ow;
      const bool ok = m < p.m;
      a_base[i] = ok ? img * g.h * g.w * g.groups * g.cgp + grp * g.cgp : 0;
      ih0[i] = ok ? oh * g.sh - g.ph : kFar;
      iw0[i] = ok ? ow * g.sw - g.pw : kFar;
    }
    for (int i = 0; i < BN / 64; ++i) {
      const int n = n0 + int(threadIdx.x) / 4 + 64 * i;
      b_base[i] = n < g.mg ? (grp * g.mg + n) * p.k : -1;
    }
  }
  __device__ int ktiles() const { return (p.k + kBK - 1) / kBK; }
  __device__ void load(uint16_t* stage, int kt) const {
    const Geo& g = p.g;
    const int k = kt * kBK + kc;
    const int ab = int(p.div_cgp.div(k)), c = k - ab * g.cgp;
    const int a = int(p.div_kw.div(ab)), b = ab - a * g.kw;
    const bool kin = k < p.k;
    for (int i = 0; i < BM / 64; ++i) {
      const int row = threadIdx.x / 4 + 64 * i;
      const int ih = ih0[i] + a * g.dh, iw = iw0[i] + b * g.dw;
      const bool ok = kin && inside(ih, g.h) && inside(iw, g.w);
      cp_async_16(stage + row * kLdK + kc, ok ? p.xt + a_base[i] + (ih * g.w + iw) * g.groups * g.cgp + c : p.xt,
                  ok ? 16 : 0);
    }
    for (int i = 0; i < BN / 64; ++i) {
      const int row = threadIdx.x / 4 + 64 * i;
      const bool ok = kin && b_base[i] >= 0;
      cp_async_16(stage + (BM + row) * kLdK + kc, ok ? p.wt + b_base[i] + k : p.wt, ok ? 16 : 0);
    }
  }
  // Output offset of block row i (y[img][grp·mg][oh][ow]), -1 past M.
  __device__ int out_row(int i) const {
    const int m = m0 + i, ohw = p.g.oh * p.g.ow;
    if (m >= p.m) return -1;
    const int img = int(p.div_ohw.div(m));
    return (img * p.g.c_out + grp * p.g.mg) * ohw + m - img * ohw;
  }
  __device__ void store(int row, int j, float v) const {
    const int n = n0 + j;
    if (row < 0 || n >= p.g.mg) return;
    if (p.bias) v += to_compute(p.bias[grp * p.g.mg + n]);
    p.y[row + n * p.g.oh * p.g.ow] = from_compute<T>(v);
  }
};

// Backward data. A row m = (image, ih, iw) gathers the grad_y pixels whose windows cover it;
// B row n = input channel of wd [groups][cg][kh][kw][mgp]; k = (a·kw + b)·mgp + co.
template <class T>
struct DgradParams {
  Geo g;
  const uint16_t* gyt;  // [n][oh][ow][groups·mgp]
  const uint16_t* wd;
  T* gx;
  int m, k;  // M = n·h·w, K = kh·kw·mgp (N = cg)
  FastDiv div_mgp, div_kw, div_hw, div_w, div_sh, div_sw;
};

template <class T, int BM, int BN>
struct Dgrad {
  static constexpr bool kKMajor = false;
  static constexpr int kBM = BM, kBN = BN;
  using Params = DgradParams<T>;
  const Params& p;
  int m0, n0, grp, kc;
  int a_base[BM / 64], th0[BM / 64], tw0[BM / 64], b_base[BN / 64];

  __device__ Dgrad(const Params& p_, int m0_, int n0_, int z) : p(p_), m0(m0_), n0(n0_), grp(z) {
    const Geo& g = p.g;
    kc = (threadIdx.x % 4) * 8;
    for (int i = 0; i < BM / 64; ++i) {
      const int m = m0 + int(threadIdx.x) / 4 + 64 * i;
      const int img = int(p.div_hw.div(m)), pix = m - img * g.h * g.w;
      const int ih = int(p.div_w.div(pix)), iw = pix - ih * g.w;
      const bool ok = m < p.m;
      a_base[i] = ok ? img * g.oh * g.ow * g.groups * g.mgp + grp * g.mgp : 0;
      th0[i] = ok ? ih + g.ph : kFar;  // oh·sh = ih + ph - a·dh
      tw0[i] = ok ? iw + g.pw : kFar;
    }
    for (int i = 0; i < BN / 64; ++i) {
      const int n = n0 + int(threadIdx.x) / 4 + 64 * i;
      b_base[i] = n < g.cg ? (grp * g.cg + n) * p.k : -1;
    }
  }
  __device__ int ktiles() const { return (p.k + kBK - 1) / kBK; }
  __device__ void load(uint16_t* stage, int kt) const {
    const Geo& g = p.g;
    const int k = kt * kBK + kc;
    const int ab = int(p.div_mgp.div(k)), co = k - ab * g.mgp;
    const int a = int(p.div_kw.div(ab)), b = ab - a * g.kw;
    const bool kin = k < p.k;
    for (int i = 0; i < BM / 64; ++i) {
      const int row = threadIdx.x / 4 + 64 * i;
      const int th = th0[i] - a * g.dh, tw = tw0[i] - b * g.dw;
      bool ok = kin && th >= 0 && tw >= 0;
      const int oh = ok ? int(p.div_sh.div(th)) : 0, ow = ok ? int(p.div_sw.div(tw)) : 0;
      ok = ok && oh * g.sh == th && ow * g.sw == tw && oh < g.oh && ow < g.ow;
      cp_async_16(stage + row * kLdK + kc, ok ? p.gyt + a_base[i] + (oh * g.ow + ow) * g.groups * g.mgp + co : p.gyt,
                  ok ? 16 : 0);
    }
    for (int i = 0; i < BN / 64; ++i) {
      const int row = threadIdx.x / 4 + 64 * i;
      const bool ok = kin && b_base[i] >= 0;
      cp_async_16(stage + (BM + row) * kLdK + kc, ok ? p.wd + b_base[i] + k : p.wd, ok ? 16 : 0);
    }
  }
  __device__ int out_row(int i) const {
    const int m = m0 + i, hw = p.g.h * p.g.w;
    if (m >= p.m) return -1;
    const int img = int(p.div_hw.div(m));
    return (img * p.g.c_in + grp * p.g.cg) * hw + m - img * hw;
  }
  __device__ void store(int row, int j, float v) const {
    const int n = n0 + j;
    if (row < 0 || n >= p.g.cg) return;
    p.gx[row + n * p.g.h * p.g.w] = from_compute<T>(v);
  }
};

// Backward weight, [k][rows] tiles. A row m = output channel (grad_y NHWC), B row n =
// (a·kw + b)·cgp + c (a window tap of one input channel), k = (image, oh, ow) over this split's
// images (blockIdx.z = split·groups + group).
struct WgradParams {
  Geo g;
  const uint16_t* gyt;  // [n][oh][ow][groups·mgp]
  const uint16_t* xt;   // [n][h][w][groups·cgp]
  float* part;          // [splits][c_out][cg·kh·kw]
  int n, images;        // N = kh·kw·cgp (M = mg); images per split
  FastDiv div_cgp, div_kw, div_ohw, div_ow;
};

template <class T, int BM, int BN>
struct Wgrad {
  static constexpr bool kKMajor = true;
  static constexpr int kBM = BM, kBN = BN;
  using Params = WgradParams;
  const Params& p;
  int m0, n0, grp, split, kbeg, kend, a_rc, b_rc;
  bool a_ok, b_ok;
  int b_off, b_dh, b_dw;

  __device__ Wgrad(const Params& p_, int m0_, int n0_, int z) : p(p_), m0(m0_), n0(n0_) {
    const Geo& g = p.g;
    grp = z % g.groups, split = z / g.groups;
    const int ohw = g.oh * g.ow, img0 = split * p.images;
    kbeg = img0 * ohw;
    kend = min(g.n, img0 + p.images) * ohw;
    a_rc = (threadIdx.x % (BM / 8)) * 8;
    a_ok = m0 + a_rc < g.mg;
    b_rc = (threadIdx.x % (BN / 8)) * 8;
    const int nn = n0 + b_rc, ab = int(p.div_cgp.div(nn)), c = nn - ab * g.cgp;
    const int a = int(p.div_kw.div(ab)), b = ab - a * g.kw;
    b_ok = nn < p.n;
    b_off = grp * g.cgp + c;
    b_dh = a * g.dh - g.ph, b_dw = b * g.dw - g.pw;
  }
  __device__ int ktiles() const { return (kend - kbeg + kBK - 1) / kBK; }
  __device__ void load(uint16_t* stage, int kt) const {
    const Geo& g = p.g;
    for (int i = 0; i < BM / 64; ++i) {  // grad_y row k of NHWC is pixel k = (img, oh, ow)
      const int kr = threadIdx.x / (BM / 8) + (2048 / BM) * i, k = kbeg + kt * kBK + kr;
      const bool ok = k < kend && a_ok;
      cp_async_16(stage + kr * (BM + 8) + a_rc, ok ? p.gyt + k * g.groups * g.mgp + grp * g.mgp + m0 + a_rc : p.gyt,
                  ok ? 16 : 0);
    }
    uint16_t* bs = stage + kBK * (BM + 8);
    for (int i = 0; i < BN / 64; ++i) {
      const int kr = threadIdx.x / (BN / 8) + (2048 / BN) * i, k = kbeg + kt * kBK + kr;
      const int img = int(p.div_ohw.div(k)), pix = k - img * g.oh * g.ow;
      const int oh = int(p.div_ow.div(pix)), ow = pix - oh * g.ow;
      const int ih = oh * g.sh + b_dh, iw = ow * g.sw + b_dw;
      const bool ok = k < kend && b_ok && inside(ih, g.h) && inside(iw, g.w);
      cp_async_16(bs + kr * (BN + 8) + b_rc, ok ? p.xt + ((img * g.h + ih) * g.w + iw) * g.groups * g.cgp + b_off : p.xt,
                  ok ? 16 : 0);
    }
  }
  __device__ int out_row(int i) const {
    const int co = m0 + i;
    return co < p.g.mg ? (split * p.g.c_out + grp * p.g.mg + co) * p.g.cg * p.g.kh * p.g.kw : -1;
  }
  __device__ void store(int row, int j, float v) const {
    const int nn = n0 + j;
    if (row < 0 || nn >= p.n) return;
    const int ab = int(p.div_cgp.div(nn)), c = nn - ab * p.g.cgp;
    if (c < p.g.cg) p.part[row + c * p.g.kh * p.g.kw + ab] = v;
  }
};

// ---------------------------------------------------------------------------------------------
// The GEMM: 8 warps as (BM/64) × (BN/32), each a 64×32 tile of 4×4 m16n8 accumulators.

template <class Tile>
constexpr int stage_elems() {
  return tile_elems<Tile::kKMajor>(Tile::kBM) + tile_elems<Tile::kKMajor>(Tile::kBN);
}
template <class Tile>
constexpr size_t smem_bytes() {
  return size_t(kStages) * stage_elems<Tile>() * sizeof(uint16_t);
}

template <class T, class Tile>
__global__ void __launch_bounds__(kTcThreads, 2) conv_tc_kernel(const __grid_constant__ typename Tile::Params p) {
  static_assert((Tile::kBM / 64) * (Tile::kBN / 32) == kTcThreads / 32, "one 64x32 tile per warp");
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int kStage = stage_elems<Tile>(), kLdA = pitch<Tile::kKMajor>(Tile::kBM),
                kLdB = pitch<Tile::kKMajor>(Tile::kBN), kWarpsN = Tile::kBN / 32;
  const Tile t(p, int(blockIdx.x) * Tile::kBM, int(blockIdx.y) * Tile::kBN, int(blockIdx.z));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int wm = (warp / kWarpsN) * 64, wn = (warp % kWarpsN) * 32;
  const int ktiles = t.ktiles();

  float acc[4][4][4] = {};
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) t.load(smem + s * kStage, s);
    cp_async_commit();  // empty groups keep the wait count below uniform
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // tile kt is in shared memory, and every warp is done with tile kt-1
    const int next = kt + kStages - 1;
    if (next < ktiles) t.load(smem + (next % kStages) * kStage, next);
    cp_async_commit();
    const uint16_t* As = smem + (kt % kStages) * kStage;
    const uint16_t* Bs = As + tile_elems<Tile::kKMajor>(Tile::kBM);
#pragma unroll
    for (int ks = 0; ks < kBK; ks += 16) {
      uint32_t a[4][4], b[2][4];
      if constexpr (Tile::kKMajor) {  // [k][rows]: the transposed loads give the same fragments
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
          ldmatrix_x4_trans(a[mi], As + (ks + lane % 8 + (lane / 16) * 8) * kLdA + wm + mi * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int np = 0; np < 2; ++np)
          ldmatrix_x4_trans(b[np], Bs + (ks + lane % 8 + ((lane / 8) % 2) * 8) * kLdB + wn + np * 16 + (lane / 16) * 8);
      } else {
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
          ldmatrix_x4(a[mi], As + (wm + mi * 16 + lane % 16) * kLdA + ks + (lane / 16) * 8);
#pragma unroll
        for (int np = 0; np < 2; ++np)
          ldmatrix_x4(b[np], Bs + (wn + np * 16 + lane % 8 + (lane / 16) * 8) * kLdB + ks + ((lane / 8) % 2) * 8);
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
          mma_16816<T>(acc[mi][ni], a[mi], b[ni / 2][(ni % 2) * 2], b[ni / 2][(ni % 2) * 2 + 1]);
    }
  }
  cp_async_wait<0>();
  const int gr = lane / 4, gc = (lane % 4) * 2;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = t.out_row(wm + mi * 16 + gr + 8 * h);
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        t.store(row, wn + ni * 8 + gc, acc[mi][ni][2 * h]);
        t.store(row, wn + ni * 8 + gc + 1, acc[mi][ni][2 * h + 1]);
      }
    }
}

template <class T, class Tile>
void launch_shape(const typename Tile::Params& p, int64_t m, int64_t n, int z) {
  auto kernel = conv_tc_kernel<T, Tile>;
  constexpr size_t smem = smem_bytes<Tile>();
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
             "cudaFuncSetAttribute (conv shared memory)");
  const dim3 grid(unsigned((m + Tile::kBM - 1) / Tile::kBM), unsigned((n + Tile::kBN - 1) / Tile::kBN), unsigned(z));
  kernel<<<grid, kTcThreads, smem, current_stream()>>>(p);
  check_launch("conv implicit-GEMM kernel");
}

// The block shape: a narrow GEMM side (at most 64, e.g. 64 channels) gets 64-wide tiles, so that
// no half-empty 128-wide tile is computed.
struct BlockShape {
  int bm, bn;
  BlockShape(int64_t m, int64_t n) : bm(n <= 64 ? 256 : m <= 64 ? 64 : 128), bn(32 * 8 * 64 / bm) {}
  int64_t blocks(int64_t m, int64_t n) const { return ((m + bm - 1) / bm) * ((n + bn - 1) / bn); }
};

template <class T, template <class, int, int> class Tile>
void launch_tc(const typename Tile<T, 128, 128>::Params& p, int64_t m, int64_t n, int z) {
  const BlockShape s(m, n);
  if (s.bm == 256)
    launch_shape<T, Tile<T, 256, 64>>(p, m, n, z);
  else if (s.bm == 64)
    launch_shape<T, Tile<T, 64, 256>>(p, m, n, z);
  else
    launch_shape<T, Tile<T, 128, 128>>(p, m, n, z);
}

// ---------------------------------------------------------------------------------------------
// Layout changes

// dst[img][p][gi·cp + c] = src[img][gi·cs + c][p] for c < cs, 0 for cs <= c < cp: 32×32 tiles
// (pixels × padded channels) transposed through shared memory, both sides coalesced.
__global__ void __launch_bounds__(kThreads) nchw_to_nhwc_kernel(const uint16_t* src, uint16_t* dst, int n, int hw,
                                                                 int groups, int cs, int cp) {
  __shared__ uint32_t tile[32][33];
  const int ctot = groups * cp, tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int p0 = int(blockIdx.x) * 32, d0 = int(blockIdx.y) * 32;
  for (int img = blockIdx.z; img < n; img += gridDim.z) {
    for (int r = ty; r < 32; r += kThreads / 32) {
      const int d = d0 + r, p = p0 + tx, gi = d / cp, c = d - gi * cp;
      tile[r][tx] = d < ctot && c < cs && p < hw ? src[(img * groups * cs + gi * cs + c) * hw + p] : 0;
    }
    __syncthreads();
    for (int r = ty; r < 32; r += kThreads / 32) {
      const int p = p0 + r, d = d0 + tx;
      if (p < hw && d < ctot) dst[(img * hw + p) * ctot + d] = uint16_t(tile[tx][r]);
    }
    __syncthreads();
  }
}

// Returns the padded NHWC copy of an NCHW tensor [n][groups·cs][hw].
void nchw_to_nhwc(const void* src, Workspace& dst, int n, int hw, int groups, int cs, int cp) {
  const dim3 grid(unsigned((hw + 31) / 32), unsigned((groups * cp + 31) / 32), unsigned(std::min(n, 65535)));
  nchw_to_nhwc_kernel<<<grid, kThreads, 0, current_stream()>>>(static_cast<const uint16_t*>(src),
                                                               static_cast<uint16_t*>(dst.get()), n, hw, groups, cs, cp);
  check_launch("conv NCHW-to-NHWC kernel");
}

// Weights [c_out][cg][kh·kw] regrouped as B operands with channels padded to 8:
//   forward          wt[co][ab][c] (c < cgp)
//   backward_data    wd[gi][c][ab][co] (co < mgp), co the output channel within group gi
__global__ void __launch_bounds__(kThreads) weight_forward_kernel(Geo g, const uint16_t* w, uint16_t* wt) {
  const int khkw = g.kh * g.kw, total = g.c_out * khkw * g.cgp;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int c = e % g.cgp, ab = (e / g.cgp) % khkw, co = e / (g.cgp * khkw);
    wt[e] = c < g.cg ? w[(co * g.cg + c) * khkw + ab] : 0;
  }
}
__global__ void __launch_bounds__(kThreads) weight_backward_kernel(Geo g, const uint16_t* w, uint16_t* wd) {
  const int khkw = g.kh * g.kw, total = g.groups * g.cg * khkw * g.mgp;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int co = e % g.mgp, ab = (e / g.mgp) % khkw, row = e / (g.mgp * khkw), c = row % g.cg, gi = row / g.cg;
    wd[e] = co < g.mg ? w[((gi * g.mg + co) * g.cg + c) * khkw + ab] : 0;
  }
}

// grad_weight = Σ over splits of the partials, in split order.
template <class T>
__global__ void __launch_bounds__(kThreads) sum_splits_kernel(const float* part, int splits, int count, T* out) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += gridDim.x * blockDim.x) {
    float s = 0;
    for (int i = 0; i < splits; ++i) s += part[size_t(i) * count + e];
    out[e] = from_compute<T>(s);
  }
}

const uint16_t* u16(const void* p) { return static_cast<const uint16_t*>(p); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Host side

bool implicit_gemm_fits(const ConvGeometry& cg) {
  int major = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, current_device()),
             "cudaDeviceGetAttribute");
  if (major < 8) return false;
  const int64_t khkw = cg.kh * cg.kw, cgp = (cg.c_in / cg.groups + 7) / 8 * 8, mgp = (cg.c_out / cg.groups + 7) / 8 * 8;
  // every element offset below 2^31 (operands, their NHWC copies, the float32 partials of up to
  // cg.n splits), and grids within their y and z limits
  const int64_t sizes[] = {cg.n * cg.c_in * cg.h * cg.w,   cg.n * cg.h * cg.w * cg.groups * cgp,
                           cg.n * cg.c_out * cg.oh * cg.ow, cg.n * cg.oh * cg.ow * cg.groups * mgp,
                           cg.c_out * khkw * cgp,          cg.groups * (cg.c_in / cg.groups) * khkw * mgp,
                           cg.n * cg.c_out * (cg.c_in / cg.groups) * khkw};
  for (int64_t s : sizes)
    if (s >= kMaxInt32 - (1 << 20)) return false;  // margin: offsets of rows and k past the end
  const int64_t small = 1 << 28;  // strides, paddings and dilated kernel extents
  const int64_t max_y = 65535 * 32;  // the N tiles of the GEMMs and the channel tiles of nchw_to_nhwc
  return cg.groups * cg.n <= 65535 && khkw * cgp < max_y && cg.groups * cgp < max_y && cg.groups * mgp < max_y &&
         cg.stride_h < small && cg.stride_w < small && cg.pad_h < small &&
         cg.pad_w < small && cg.dilation_h * cg.kh < small && cg.dilation_w * cg.kw < small;
}

template <class T>
void implicit_gemm_forward(const ConvArgs& a) {
  using P = FpropParams<T>;
  const Geo g(a.g);
  Workspace xt(size_t(g.n) * g.h * g.w * g.groups * g.cgp * 2), wt(size_t(g.c_out) * g.kh * g.kw * g.cgp * 2);
  nchw_to_nhwc(a.x, xt, g.n, g.h * g.w, g.groups, g.cg, g.cgp);
  weight_forward_kernel<<<grid_for(int64_t(g.c_out) * g.kh * g.kw * g.cgp), kThreads, 0, current_stream()>>>(
      g, u16(a.weight), static_cast<uint16_t*>(wt.get()));
  check_launch("conv weight layout kernel");
  const P p{g, u16(xt.get()), u16(wt.get()), static_cast<const T*>(a.bias), static_cast<T*>(a.y),
            g.n * g.oh * g.ow, g.kh * g.kw * g.cgp, FastDiv(g.cgp), FastDiv(g.kw), FastDiv(g.oh * g.ow),
            FastDiv(g.ow)};
  launch_tc<T, Fprop>(p, p.m, g.mg, g.groups);
}

template <class T>
void implicit_gemm_backward_data(const ConvArgs& a) {
  using P = DgradParams<T>;
  const Geo g(a.g);
  Workspace gyt(size_t(g.n) * g.oh * g.ow * g.groups * g.mgp * 2), wd(size_t(g.groups) * g.cg * g.kh * g.kw * g.mgp * 2);
  nchw_to_nhwc(a.grad_y, gyt, g.n, g.oh * g.ow, g.groups, g.mg, g.mgp);
  weight_backward_kernel<<<grid_for(int64_t(g.groups) * g.cg * g.kh * g.kw * g.mgp), kThreads, 0, current_stream()>>>(
      g, u16(a.weight), static_cast<uint16_t*>(wd.get()));
  check_launch("conv weight layout kernel");
  const P p{g, u16(gyt.get()), u16(wd.get()), static_cast<T*>(a.grad_x), g.n * g.h * g.w, g.kh * g.kw * g.mgp,
            FastDiv(g.mgp), FastDiv(g.kw), FastDiv(g.h * g.w), FastDiv(g.w), FastDiv(g.sh), FastDiv(g.sw)};
  launch_tc<T, Dgrad>(p, p.m, g.cg, g.groups);
}

template <class T>
void implicit_gemm_backward_weight(const ConvArgs& a) {
  const Geo g(a.g);
  const int n = g.kh * g.kw * g.cgp;
  // Split the images so that the grid fills the GPU about twice.
  const int64_t tiles = BlockShape(g.mg, n).blocks(g.mg, n) * g.groups;
  const int64_t want = std::max<int64_t>(1, (2 * sm_count() + tiles - 1) / tiles);
  const int images = int((g.n + std::min<int64_t>(want, g.n) - 1) / std::min<int64_t>(want, g.n));
  const int splits = (g.n + images - 1) / images;
  Workspace gyt(size_t(g.n) * g.oh * g.ow * g.groups * g.mgp * 2), xt(size_t(g.n) * g.h * g.w * g.groups * g.cgp * 2);
  const int count = g.c_out * g.cg * g.kh * g.kw;
  Workspace part(size_t(splits) * count * sizeof(float));
  nchw_to_nhwc(a.grad_y, gyt, g.n, g.oh * g.ow, g.groups, g.mg, g.mgp);
  nchw_to_nhwc(a.x, xt, g.n, g.h * g.w, g.groups, g.cg, g.cgp);
  const WgradParams p{g, u16(gyt.get()), u16(xt.get()), static_cast<float*>(part.get()), n, images,
                        FastDiv(g.cgp), FastDiv(g.kw), FastDiv(g.oh * g.ow), FastDiv(g.ow)};
  launch_tc<T, Wgrad>(p, g.mg, n, g.groups * splits);
  sum_splits_kernel<T><<<grid_for(count), kThreads, 0, current_stream()>>>(static_cast<const float*>(part.get()), splits,
                                                                          count, static_cast<T*>(a.grad_weight));
  check_launch("conv weight-gradient sum kernel");
}

#define LEPTON_CONV_TC(T)                                       \
  template void implicit_gemm_forward<T>(const ConvArgs&);      \
  template void implicit_gemm_backward_data<T>(const ConvArgs&); \
  template void implicit_gemm_backward_weight<T>(const ConvArgs&);
LEPTON_CONV_TC(Half)
LEPTON_CONV_TC(BFloat16)
#undef LEPTON_CONV_TC

}  // namespace lepton::cuda
