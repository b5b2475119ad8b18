// Scaled dot-product attention for float16/bfloat16 on the tensor cores, after FlashAttention-2
// (Dao, 2023). Operands are 16-bit, every product accumulates in float32 (mma.sync m16n8k16 fed
// by ldmatrix), and no L×S matrix ever reaches global memory.
//
// Forward: a block owns kBr queries (16 or 32 per warp) and walks the key/value tiles (kBc
// keys), the next tile arriving by cp.async while the current one is used (double buffering).
// Scores, running max and running sum stay in registers (online softmax, base 2, scale·log2(e)
// folded in); the weights go straight from the score accumulators into the P·V multiply. Under a
// causal mask a block stops at its diagonal tile, and the heaviest blocks are launched first.
// Saved: O and the base-2 logsumexp (float32).
//
// Backward: D = rowsum(dO∘O) first (one warp per row), then a block per key tile (kBc keys) walks
// the query tiles (kBr queries, double-buffered Q, dO, lse and D): Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ give
// Pᵀ and dSᵀ in registers, written to shared memory as 16-bit tiles; dV += (P∘Z)ᵀ·dO and
// dK += dSᵀ·Q accumulate in registers for the whole walk; dQ += dS·K goes to a float32 buffer by
// atomicAdd (so dQ's summation order, and its last bits, vary between runs), scaled and rounded
// to the output dtype by a last pass.
//
// Head dims: one instantiation per padded width D in {32, 64, 96, 128, 256} (D >= E and Ev;
// the padding columns load as zeros). Rows past L or S load as zeros and are masked or never
// stored, so any L, S and head dim works. Operands whose rows are 16-byte aligned use cp.async,
// others plain loads into the same tiles.
#include <algorithm>

#include "lepton/core/error.h"
#include "lepton/cuda/attention.cuh"
#include "lepton/cuda/mma.cuh"

namespace lepton::cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;

// Tile shapes per padded head dim. Backward: 8 warps whose grids over (keys × queries),
// (keys × head dim) and (queries × head dim) are derived below.
template <int D>
struct FwdCfg {
  // kMT m16 tiles (16 queries each) per warp: two let each K and V fragment feed two products
  // (fewer shared-memory reads per mma). The largest tiles that compile without spills: two m16
  // tiles up to D = 64 (with 32-key tiles at D = 64), one above, 16-key tiles at D = 256.
  static constexpr int kMT = D <= 64 ? 2 : 1, kBr = D <= 128 ? 128 : 64;
  static constexpr int kBc = D == 64 ? 32 : D <= 128 ? 64 : 16;
  static constexpr int kWarps = kBr / (16 * kMT), kThreads = kWarps * 32, kP = D + 8;
  static constexpr size_t kSmem = size_t(kBr + 4 * kBc) * kP * sizeof(uint16_t);  // Q, 2×K, 2×V
};

template <int D>
struct BwdCfg {
  static constexpr int kBc = 64, kBr = D <= 128 ? 64 : 32, kWarps = 8, kThreads = kWarps * 32;
  static constexpr int kP = D + 8, kPT = kBr + 8;  // pitches of the [.][D] tiles and the [kBc][kBr] tiles
  static constexpr int kW1k = kBc / 16, kNQ1 = kBr / (kWarps / kW1k);  // Sᵀ, dPᵀ: 16 keys × kNQ1 queries
  static constexpr int kND2 = D / (kWarps / (kBc / 16));             // dK, dV: 16 keys × kND2 columns
  static constexpr int kW3q = kBr / 16, kND3 = D / (kWarps / kW3q);    // dQ: 16 queries × kND3 columns,
  static constexpr int kDQ = D == 256 ? 32 : kND3;                     // kDQ at a time (D = 256 spills otherwise)
  static constexpr size_t kSmem = size_t(2 * kBc + 4 * kBr) * kP * sizeof(uint16_t)  // K, V, 2×Q, 2×dO
                                  + size_t(2 * kBc) * kPT * sizeof(uint16_t)         // Pᵀ, dSᵀ
                                  + size_t(4 * kBr) * sizeof(float);                 // 2×lse, 2×D
  static_assert(kNQ1 % 16 == 0 && kND2 % 16 == 0 && kND3 % 16 == 0, "warp tiles are whole 16-wide steps");
};

__device__ __forceinline__ float exp2_approx(float x) {  // 2^x; -inf gives 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Rows [r0, r0 + R) of a 16-bit matrix (row r at src + r·rs, `rows` rows and `cols` columns
// valid) into a shared tile [R][D] of pitch D + 8, zeros outside. async: by cp.async, which
// needs src and rs 16-byte aligned.
template <int R, int D, int kThreads>
__device__ __forceinline__ void load_tile(uint16_t* tile, const uint16_t* src, int64_t rs, int64_t r0, int64_t rows,
                                          int cols, bool async) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static_assert(R * kChunks % kThreads == 0, "whole rounds of chunks");
#pragma unroll
  for (int it = 0; it < R * kChunks / kThreads; ++it) {
    const int c = int(threadIdx.x) + it * kThreads, r = c / kChunks, col = (c % kChunks) * 8;
    const int64_t gr = r0 + r;
    const int left = cols - col;
    const bool in = gr < rows && left > 0;
    uint16_t* dst = tile + r * (D + 8) + col;
    if (async) {
      cp_async_16(dst, in ? src + gr * rs + col : src, in ? (left >= 8 ? 16 : 2 * left) : 0);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) dst[e] = in && e < left ? src[gr * rs + col + e] : uint16_t(0);
    }
  }
}

// A fragment (16 rows × 16 k) of a shared tile stored [row][k] (pitch ld) at row m0, column k0.
__device__ __forceinline__ void frag_a(uint32_t (&r)[4], const uint16_t* s, int ld, int m0, int k0, int lane) {
  ldmatrix_x4(r, s + (m0 + lane % 16) * ld + k0 + (lane / 16) * 8);
}
// The same A fragment from a tile stored transposed, [k][row].
__device__ __forceinline__ void frag_a_trans(uint32_t (&r)[4], const uint16_t* s, int ld, int m0, int k0, int lane) {
  ldmatrix_x4_trans(r, s + (k0 + (lane / 16) * 8 + lane % 8) * ld + m0 + ((lane / 8) % 2) * 8);
}
// B fragments of two n8 tiles (16 k × 16 n): r[0], r[1] for columns n0..n0+7, r[2], r[3] for the
// next 8, from a tile stored [n][k]...
__device__ __forceinline__ void frag_b(uint32_t (&r)[4], const uint16_t* s, int ld, int n0, int k0, int lane) {
  ldmatrix_x4(r, s + (n0 + lane % 8 + (lane / 16) * 8) * ld + k0 + ((lane / 8) % 2) * 8);
}
// ... or stored [k][n].
__device__ __forceinline__ void frag_b_trans(uint32_t (&r)[4], const uint16_t* s, int ld, int n0, int k0, int lane) {
  ldmatrix_x4_trans(r, s + (k0 + lane % 8 + ((lane / 8) % 2) * 8) * ld + n0 + (lane / 16) * 8);
}

// acc[2p], acc[2p + 1] += a · (the two n8 tiles of b).
template <class T>
__device__ __forceinline__ void mma_pair(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[4]) {
  mma_16816<T>(c0, a, b[0], b[1]);
  mma_16816<T>(c1, a, b[2], b[3]);
}

// Problem n's mask (bytes or T), or null without one.
template <class T>
__device__ __forceinline__ const void* problem_mask(const AttentionArgs& a, const AttnOffsets& o, int64_t n) {
  if (a.mask_kind == AttentionMask::Bool) return static_cast<const uint8_t*>(a.mask) + o.mask[n];
  if (a.mask_kind == AttentionMask::Float) return static_cast<const T*>(a.mask) + o.mask[n];
  return nullptr;
}

// Score x (base 2) of query i, key j after the causal mask, the bounds and the attention mask.
// Rows past L are never stored and have no mask row: they keep x.
template <class T>
__device__ __forceinline__ float mask_score(const AttentionArgs& a, const void* mask, int64_t i, int64_t j, float x) {
  if (j >= a.S || (a.causal && j > i)) return -INFINITY;
  if (i >= a.L) return x;
  if (a.mask_kind == AttentionMask::Bool)
    return static_cast<const uint8_t*>(mask)[i * a.mask_rs + j] ? x : -INFINITY;
  if (a.mask_kind == AttentionMask::Float)
    return x + float(kLog2e) * to_compute(static_cast<const T*>(mask)[i * a.mask_rs + j]);
  return x;
}

// Columns col, col + 1 (col even) of a contiguous row of `width` values, those that exist.
template <class T>
__device__ __forceinline__ void store_pair(T* row, int64_t width, int col, float x0, float x1) {
  if (col >= width) return;
  if (col + 1 >= width) {
    row[col] = from_compute<T>(x0);
  } else if (width % 2 == 0) {  // the pair is 4-byte aligned
    *reinterpret_cast<uint32_t*>(row + col) = pack2<T>(x0, x1);
  } else {
    row[col] = from_compute<T>(x0);
    row[col + 1] = from_compute<T>(x1);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward

template <class T, int D>
__global__ void __launch_bounds__(FwdCfg<D>::kThreads)
    flash_forward_kernel(AttentionArgs a, AttnOffsets o, AttnDropout drop, int64_t q_blocks, bool async) {
  using Cfg = FwdCfg<D>;
  constexpr int kBr = Cfg::kBr, kBc = Cfg::kBc, kP = Cfg::kP, kThreads = Cfg::kThreads;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* qs = smem;               // [kBr][kP]
  uint16_t* ks = qs + kBr * kP;      // [2][kBc][kP]
  uint16_t* vs = ks + 2 * kBc * kP;  // [2][kBc][kP]

  // Block b takes problem b / q_blocks, whose blocks run together (its keys and values stay in
  // L2), and query block q_blocks - 1 - b % q_blocks: under a causal mask the longest go first.
  const int64_t n = int64_t(blockIdx.x) / q_blocks, i0 = (q_blocks - 1 - int64_t(blockIdx.x) % q_blocks) * kBr;
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int64_t L = a.L, S = a.S;
  const uint16_t* q = static_cast<const uint16_t*>(a.q) + o.q[n];
  const uint16_t* k = static_cast<const uint16_t*>(a.k) + o.k[n];
  const uint16_t* v = static_cast<const uint16_t*>(a.v) + o.v[n];
  const void* mask = problem_mask<T>(a, o, n);
  const int64_t kv_end = a.causal ? min(S, i0 + kBr) : S;
  const int tiles = int((kv_end + kBc - 1) / kBc);
  auto load_kv = [&](int t) {
    load_tile<kBc, D, kThreads>(ks + (t & 1) * kBc * kP, k, a.k_rs, int64_t(t) * kBc, S, int(a.E), async);
    load_tile<kBc, D, kThreads>(vs + (t & 1) * kBc * kP, v, a.v_rs, int64_t(t) * kBc, S, int(a.Ev), async);
  };
  load_tile<kBr, D, kThreads>(qs, q, a.q_rs, i0, L, int(a.E), async);
  if (tiles > 0) load_kv(0);
  cp_async_commit();

  // The thread's rows are r and r + 8 (h = 0, 1) of each of its warp's kMT tiles of 16 queries
  // (mt); acc[mt][nt] holds columns nt·8 + 2·(lane % 4) + {0, 1} of them (the mma accumulator
  // layout).
  constexpr int kMT = Cfg::kMT;
  const int w0 = warp * 16 * kMT;  // the warp's first query within the block
  const int64_t row = i0 + w0 + lane / 4;  // + mt·16 + h·8
  const float c = float(a.scale * kLog2e);
  float o_acc[kMT][D / 8][4] = {};
  float m_run[kMT][2], l_run[kMT][2];  // l_run: this thread's columns only
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) m_run[mt][h] = -INFINITY, l_run[mt][h] = 0.f;

  for (int t = 0; t < tiles; ++t) {
    if (t + 1 < tiles) load_kv(t + 1);
    cp_async_commit();
    cp_async_wait<1>();  // Q and tile t have landed (for this thread) ...
    __syncthreads();     // ... and for every thread
    const uint16_t* kt = ks + (t & 1) * kBc * kP;
    const uint16_t* vt = vs + (t & 1) * kBc * kP;
    const int64_t j0 = int64_t(t) * kBc;

    float s[kMT][kBc / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D; kk += 16) {
      uint32_t qa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) frag_a(qa[mt], qs, kP, w0 + mt * 16, kk, lane);
#pragma unroll
      for (int np = 0; np < kBc / 16; ++np) {
        uint32_t kb[4];
        frag_b(kb, kt, kP, np * 16, kk, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) mma_pair<T>(s[mt][2 * np], s[mt][2 * np + 1], qa[mt], kb);
      }
    }

    // Masks cost a branch per score: only tiles that cross the sequence end, the diagonal (for
    // this warp's rows) or an explicit mask pay it.
    const bool edge = j0 + kBc > S || (a.causal && j0 + kBc - 1 > i0 + w0) || mask != nullptr;
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[mt][nt][e] * c;
          if (edge) x = mask_score<T>(a, mask, row + mt * 16 + (e / 2) * 8, j0 + nt * 8 + (lane % 4) * 2 + e % 2, x);
          s[mt][nt][e] = x;
        }

    // Online softmax: new running max per row (over the quad that shares it), rescale factor for
    // what was accumulated, weights 2^(x - max).
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      float base[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = m_run[mt][h];
#pragma unroll
        for (int nt = 0; nt < kBc / 8; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * h], s[mt][nt][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
        base[h] = mx == -INFINITY ? 0.f : mx;  // a row with nothing allowed yet: weights 2^-inf = 0
        const float alpha = exp2_approx(m_run[mt][h] - base[h]);
        m_run[mt][h] = mx;
        l_run[mt][h] *= alpha;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          o_acc[mt][dt][2 * h] *= alpha;
          o_acc[mt][dt][2 * h + 1] *= alpha;
        }
      }
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = exp2_approx(s[mt][nt][e] - base[e / 2]);
          l_run[mt][e / 2] += p;  // the normaliser counts dropped weights too
          s[mt][nt][e] = p;
        }
    }
    if (drop.on) {  // kept weights are scaled by 1/(1-p) at the end
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int64_t i = row + mt * 16 + (e / 2) * 8, j = j0 + nt * 8 + (lane % 4) * 2 + e % 2;
            if (!drop.keep(n, i, j, L, S)) s[mt][nt][e] = 0.f;
          }
    }

    // O += P·V, P's A fragments straight from the score accumulators.
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      uint32_t pa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        pa[mt][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pa[mt][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pa[mt][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pa[mt][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        frag_b_trans(vb, vt, kP, dp * 16, kk * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) mma_pair<T>(o_acc[mt][2 * dp], o_acc[mt][2 * dp + 1], pa[mt], vb);
      }
    }
    __syncthreads();  // every warp is done with buffer t & 1 before tile t + 2 overwrites it
  }
  cp_async_wait<0>();

  T* out = static_cast<T*>(a.out);
  float* lse = static_cast<float*>(a.lse);
  const float out_scale = float(drop.scale);  // 1 without dropout
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float l = l_run[mt][h];
      l += __shfl_xor_sync(kFull, l, 1);
      l += __shfl_xor_sync(kFull, l, 2);
      const int64_t i = row + mt * 16 + h * 8;
      if (i >= L) continue;
      const float inv = l > 0.f ? out_scale / l : 0.f;  // a row with no allowed key gives 0
      T* orow = out + (n * L + i) * a.Ev;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt)
        store_pair(orow, a.Ev, dt * 8 + (lane % 4) * 2, o_acc[mt][dt][2 * h] * inv, o_acc[mt][dt][2 * h + 1] * inv);
      if (lane % 4 == 0) lse[n * L + i] = l > 0.f ? m_run[mt][h] + log2f(l) : INFINITY;
    }
}

// ---------------------------------------------------------------------------------------------
// Backward

// dd[row] = Σ_e dO[row, e]·O[row, e] in float32, one warp per row of [rows, Ev].
template <class T>
__global__ void __launch_bounds__(kThreads)
    flash_backward_dot(const T* go, const T* out, int64_t rows, int64_t Ev, float* dd) {
  const int64_t r = (int64_t(blockIdx.x) * kThreads + threadIdx.x) / 32;
  const int lane = int(threadIdx.x) % 32;
  if (r >= rows) return;
  float sum = 0.f;
  for (int64_t e = lane; e < Ev; e += 32) sum += to_compute(go[r * Ev + e]) * to_compute(out[r * Ev + e]);
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(kFull, sum, off);
  if (lane == 0) dd[r] = sum;
}

// dst[i] = T(scale·src[i]).
template <class T>
__global__ void __launch_bounds__(kThreads) flash_backward_dq(const float* src, T* dst, int64_t count, float scale) {
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < count; i += int64_t(gridDim.x) * kThreads)
    dst[i] = from_compute<T>(src[i] * scale);
}

template <class T, int D>
__global__ void __launch_bounds__(BwdCfg<D>::kThreads)
    flash_backward_kernel(AttentionArgs a, AttnOffsets o, AttnDropout drop, const float* dd, float* dq,
                          int64_t k_blocks, bool async) {
  using Cfg = BwdCfg<D>;
  constexpr int kBr = Cfg::kBr, kBc = Cfg::kBc, kP = Cfg::kP, kPT = Cfg::kPT, kThreads = Cfg::kThreads;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* ks = smem;                 // [kBc][kP]
  uint16_t* vs = ks + kBc * kP;        // [kBc][kP]
  uint16_t* qs = vs + kBc * kP;        // [2][kBr][kP]
  uint16_t* dos = qs + 2 * kBr * kP;   // [2][kBr][kP]
  uint16_t* pts = dos + 2 * kBr * kP;  // Pᵀ∘Zᵀ [kBc][kPT]
  uint16_t* dsts = pts + kBc * kPT;    // dSᵀ [kBc][kPT]
  float* lse_s = reinterpret_cast<float*>(dsts + kBc * kPT);  // [2][kBr]
  float* dd_s = lse_s + 2 * kBr;                              // [2][kBr]

  // Block b takes problem b / k_blocks (its queries stay in L2) and key block b % k_blocks: under
  // a causal mask the first key blocks see the most queries and start first.
  const int64_t n = int64_t(blockIdx.x) / k_blocks, j0 = int64_t(blockIdx.x) % k_blocks * kBc;
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int64_t L = a.L, S = a.S;
  const uint16_t* q = static_cast<const uint16_t*>(a.q) + o.q[n];
  const uint16_t* k = static_cast<const uint16_t*>(a.k) + o.k[n];
  const uint16_t* v = static_cast<const uint16_t*>(a.v) + o.v[n];
  const uint16_t* go = static_cast<const uint16_t*>(a.grad_out) + n * L * a.Ev;
  const float* lse = static_cast<const float*>(a.lse) + n * L;
  dd += n * L;
  const void* mask = problem_mask<T>(a, o, n);
  const int64_t first = a.causal ? j0 / kBr : 0;  // under a causal mask queries i < j0 see none of these keys
  const int tiles = int(max(int64_t(0), (L + kBr - 1) / kBr - first));
  auto load_q = [&](int t) {
    const int b = t & 1;
    const int64_t i0 = (first + t) * kBr;
    load_tile<kBr, D, kThreads>(qs + b * kBr * kP, q, a.q_rs, i0, L, int(a.E), async);
    load_tile<kBr, D, kThreads>(dos + b * kBr * kP, go, a.Ev, i0, L, int(a.Ev), async);
    for (int r = int(threadIdx.x); r < kBr; r += kThreads) {
      lse_s[b * kBr + r] = i0 + r < L ? lse[i0 + r] : INFINITY;  // rows past L weigh nothing
      dd_s[b * kBr + r] = i0 + r < L ? dd[i0 + r] : 0.f;
    }
  };
  load_tile<kBc, D, kThreads>(ks, k, a.k_rs, j0, S, int(a.E), async);
  load_tile<kBc, D, kThreads>(vs, v, a.v_rs, j0, S, int(a.Ev), async);
  if (tiles > 0) load_q(0);
  cp_async_commit();

  const float c = float(a.scale * kLog2e);
  // Warp grids: Sᵀ/dPᵀ rows wk1·16 (keys), columns wq1·kNQ1 (queries); dK/dV rows wk2·16, columns
  // wd2·kND2; dQ rows wq3·16 (queries), columns wd3·kND3.
  const int wk1 = warp % Cfg::kW1k, wq1 = warp / Cfg::kW1k;
  const int wk2 = warp % (kBc / 16), wd2 = warp / (kBc / 16);
  const int wq3 = warp % Cfg::kW3q, wd3 = warp / Cfg::kW3q;
  float dk_acc[Cfg::kND2 / 8][4] = {}, dv_acc[Cfg::kND2 / 8][4] = {};

  for (int t = 0; t < tiles; ++t) {
    if (t + 1 < tiles) load_q(t + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const int b = t & 1;
    const uint16_t* qt = qs + b * kBr * kP;
    const uint16_t* dot = dos + b * kBr * kP;
    const int64_t i0 = (first + t) * kBr;

    // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ for this warp's 16 keys × kNQ1 queries.
    float st[Cfg::kNQ1 / 8][4] = {}, dpt[Cfg::kNQ1 / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D; kk += 16) {
      uint32_t ka[4], va[4];
      frag_a(ka, ks, kP, wk1 * 16, kk, lane);
      frag_a(va, vs, kP, wk1 * 16, kk, lane);
#pragma unroll
      for (int np = 0; np < Cfg::kNQ1 / 16; ++np) {
        uint32_t qb[4], gb[4];
        frag_b(qb, qt, kP, wq1 * Cfg::kNQ1 + np * 16, kk, lane);
        mma_pair<T>(st[2 * np], st[2 * np + 1], ka, qb);
        frag_b(gb, dot, kP, wq1 * Cfg::kNQ1 + np * 16, kk, lane);
        mma_pair<T>(dpt[2 * np], dpt[2 * np + 1], va, gb);
      }
    }
    // P = 2^(x - lse), dS = P∘(Z∘dP - D); Pᵀ∘Zᵀ and dSᵀ to shared memory as 16-bit pairs.
    const bool edge = j0 + kBc > S || (a.causal && j0 + kBc - 1 > i0) || mask != nullptr;
#pragma unroll
    for (int nt = 0; nt < Cfg::kNQ1 / 8; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int jl = wk1 * 16 + lane / 4 + h * 8, il = wq1 * Cfg::kNQ1 + nt * 8 + (lane % 4) * 2;
        float pz[2], ds[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t i = i0 + il + e, j = j0 + jl;
          float x = st[nt][2 * h + e] * c;
          if (edge) x = mask_score<T>(a, mask, i, j, x);
          const float p = exp2_approx(x - lse_s[b * kBr + il + e]);
          const float z = drop.factor<float>(n, i, j, L, S);
          pz[e] = p * z;
          ds[e] = p * (z * dpt[nt][2 * h + e] - dd_s[b * kBr + il + e]);
          if (a.grad_mask && i < L && j < S) static_cast<T*>(a.grad_mask)[(n * L + i) * S + j] = from_compute<T>(ds[e]);
        }
        *reinterpret_cast<uint32_t*>(pts + jl * kPT + il) = pack2<T>(pz[0], pz[1]);
        *reinterpret_cast<uint32_t*>(dsts + jl * kPT + il) = pack2<T>(ds[0], ds[1]);
      }
    __syncthreads();

    // dV += (P∘Z)ᵀ·dO and dK += dSᵀ·Q for this warp's 16 keys × kND2 columns.
#pragma unroll
    for (int kk = 0; kk < kBr; kk += 16) {
      uint32_t pa[4], sa[4];
      frag_a(pa, pts, kPT, wk2 * 16, kk, lane);
      frag_a(sa, dsts, kPT, wk2 * 16, kk, lane);
#pragma unroll
      for (int dp = 0; dp < Cfg::kND2 / 16; ++dp) {
        uint32_t gb[4], qb[4];
        frag_b_trans(gb, dot, kP, wd2 * Cfg::kND2 + dp * 16, kk, lane);
        mma_pair<T>(dv_acc[2 * dp], dv_acc[2 * dp + 1], pa, gb);
        frag_b_trans(qb, qt, kP, wd2 * Cfg::kND2 + dp * 16, kk, lane);
        mma_pair<T>(dk_acc[2 * dp], dk_acc[2 * dp + 1], sa, qb);
      }
    }

    // dQ += dS·K for this warp's 16 queries × kND3 columns, added to the float32 buffer.
#pragma unroll
    for (int c0 = wd3 * Cfg::kND3; c0 < (wd3 + 1) * Cfg::kND3; c0 += Cfg::kDQ) {
      float dq_acc[Cfg::kDQ / 8][4] = {};
#pragma unroll
      for (int kk = 0; kk < kBc; kk += 16) {
        uint32_t sa[4];
        frag_a_trans(sa, dsts, kPT, wq3 * 16, kk, lane);
#pragma unroll
        for (int dp = 0; dp < Cfg::kDQ / 16; ++dp) {
          uint32_t kb[4];
          frag_b_trans(kb, ks, kP, c0 + dp * 16, kk, lane);
          mma_pair<T>(dq_acc[2 * dp], dq_acc[2 * dp + 1], sa, kb);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t i = i0 + wq3 * 16 + lane / 4 + h * 8;
        if (i >= L) continue;
        float* dq_row = dq + (n * L + i) * a.E;
#pragma unroll
        for (int dt = 0; dt < Cfg::kDQ / 8; ++dt) {
          const int col = c0 + dt * 8 + (lane % 4) * 2;
          if (col < a.E) atomicAdd(dq_row + col, dq_acc[dt][2 * h]);
          if (col + 1 < a.E) atomicAdd(dq_row + col + 1, dq_acc[dt][2 * h + 1]);
        }
      }
    }
    __syncthreads();  // buffers b, Pᵀ and dSᵀ are free for the next tiles
  }
  cp_async_wait<0>();

  T* gk = static_cast<T*>(a.grad_k) + n * S * a.E;
  T* gv = static_cast<T*>(a.grad_v) + n * S * a.Ev;
  const float scale = float(a.scale);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t j = j0 + wk2 * 16 + lane / 4 + h * 8;
    if (j >= S) continue;
#pragma unroll
    for (int dt = 0; dt < Cfg::kND2 / 8; ++dt) {
      const int col = wd2 * Cfg::kND2 + dt * 8 + (lane % 4) * 2;
      store_pair(gk + j * a.E, a.E, col, scale * dk_acc[dt][2 * h], scale * dk_acc[dt][2 * h + 1]);
      store_pair(gv + j * a.Ev, a.Ev, col, dv_acc[dt][2 * h], dv_acc[dt][2 * h + 1]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side

// The padded head dim: the smallest instantiated width holding both E and Ev.
int padded_head_dim(const AttentionArgs& a) {
  const int64_t e = std::max(a.E, a.Ev);
  return e <= 32 ? 32 : e <= 64 ? 64 : e <= 96 ? 96 : e <= 128 ? 128 : 256;
}

// Calls f(std::integral_constant<int, D>{}) for the padded head dim D.
template <class F>
void with_head_dim(int d, F&& f) {
  switch (d) {
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    case 96: f(std::integral_constant<int, 96>{}); break;
    case 128: f(std::integral_constant<int, 128>{}); break;
    default: f(std::integral_constant<int, 256>{}); break;
  }
}

// Whether the current GPU runs the tensor-core kernels with `smem` bytes of shared memory.
bool fits(size_t smem) {
  const int dev = current_device();
  int major = 0, optin = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
  return major >= 8 && smem <= size_t(optin);
}

bool aligned16(const void* p, int64_t elem_off) {
  return (reinterpret_cast<uintptr_t>(p) + uintptr_t(elem_off) * 2) % 16 == 0;
}

// cp.async needs every operand row 16-byte aligned: base, per-problem offsets and row strides.
bool rows_aligned(const AttentionArgs& a, bool backward) {
  if (a.q_rs % 8 || a.k_rs % 8 || a.v_rs % 8 || !aligned16(a.q, 0) || !aligned16(a.k, 0) || !aligned16(a.v, 0))
    return false;
  if (backward && (a.Ev % 8 || !aligned16(a.grad_out, 0))) return false;
  for (int64_t n = 0; n < a.batch; ++n)
    if (a.q_off[n] % 8 || a.k_off[n] % 8 || a.v_off[n] % 8) return false;
  return true;
}

template <class Kernel>
void set_smem(Kernel kernel, size_t smem) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
             "cudaFuncSetAttribute (attention shared memory)");
}

unsigned grid_size(int64_t blocks) {
  LEPTON_CHECK(blocks <= kMaxInt32, Value, "scaled_dot_product_attention: ", blocks,
               " thread blocks exceed the CUDA grid limit");
  return unsigned(blocks);
}

}  // namespace

template <class T>
void flash_forward(const AttentionArgs& a, AttentionFn fallback) {
  with_head_dim(padded_head_dim(a), [&](auto d) {
    constexpr int D = decltype(d)::value;
    using Cfg = FwdCfg<D>;
    if (!fits(Cfg::kSmem)) return fallback(a);
    if (a.batch * a.L == 0) return;
    AttnDeviceOffsets off(a);
    const int64_t q_blocks = (a.L + Cfg::kBr - 1) / Cfg::kBr;
    auto kernel = flash_forward_kernel<T, D>;
    set_smem(kernel, Cfg::kSmem);
    kernel<<<grid_size(q_blocks * a.batch), Cfg::kThreads, Cfg::kSmem, current_stream()>>>(
        a, off.offsets, AttnDropout(a), q_blocks, rows_aligned(a, false));
    check_launch("flash attention forward kernel");
  });
}

template <class T>
void flash_backward(const AttentionArgs& a, AttentionFn fallback) {
  with_head_dim(padded_head_dim(a), [&](auto d) {
    constexpr int D = decltype(d)::value;
    using Cfg = BwdCfg<D>;
    if (!fits(Cfg::kSmem)) return fallback(a);
    if (a.batch == 0) return;
    if (a.S > 0 && a.L == 0) {  // no query: zero key and value gradients (the key kernel would skip every tile)
      const size_t k_bytes = size_t(a.batch * a.S * a.E) * sizeof(T);
      const size_t v_bytes = size_t(a.batch * a.S * a.Ev) * sizeof(T);
      check_cuda(cudaMemsetAsync(a.grad_k, 0, k_bytes, current_stream()), "cudaMemsetAsync");
      check_cuda(cudaMemsetAsync(a.grad_v, 0, v_bytes, current_stream()), "cudaMemsetAsync");
      return;
    }
    AttnDeviceOffsets off(a);
    const int64_t rows = a.batch * a.L, dq_count = rows * a.E;
    Workspace dd(size_t(rows + 1) * sizeof(float)), dq(size_t(dq_count + 1) * sizeof(float));
    float* ddp = static_cast<float*>(dd.get());
    float* dqp = static_cast<float*>(dq.get());
    check_cuda(cudaMemsetAsync(dqp, 0, size_t(dq_count) * sizeof(float), current_stream()), "cudaMemsetAsync");
    if (rows > 0) {
      flash_backward_dot<T><<<grid_size((rows * 32 + kThreads - 1) / kThreads), kThreads, 0, current_stream()>>>(
          static_cast<const T*>(a.grad_out), static_cast<const T*>(a.out), rows, a.Ev, ddp);
      check_launch("flash attention backward (dO·O) kernel");
    }
    if (a.S > 0) {
      const int64_t k_blocks = (a.S + Cfg::kBc - 1) / Cfg::kBc;
      auto kernel = flash_backward_kernel<T, D>;
      set_smem(kernel, Cfg::kSmem);
      kernel<<<grid_size(k_blocks * a.batch), Cfg::kThreads, Cfg::kSmem, current_stream()>>>(
          a, off.offsets, AttnDropout(a), ddp, dqp, k_blocks, rows_aligned(a, true));
      check_launch("flash attention backward kernel");
    }
    if (dq_count > 0) {
      flash_backward_dq<T><<<grid_for(dq_count), kThreads, 0, current_stream()>>>(dqp, static_cast<T*>(a.grad_q),
                                                                                 dq_count, float(a.scale));
      check_launch("flash attention backward (dQ) kernel");
    }
  });
}

template void flash_forward<Half>(const AttentionArgs&, AttentionFn);
template void flash_forward<BFloat16>(const AttentionArgs&, AttentionFn);
template void flash_backward<Half>(const AttentionArgs&, AttentionFn);
template void flash_backward<BFloat16>(const AttentionArgs&, AttentionFn);

}  // namespace lepton::cuda
