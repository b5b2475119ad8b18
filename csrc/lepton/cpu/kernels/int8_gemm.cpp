// CPU kernels for int8 dynamic quantisation: row quantisation, weight packing and the u8 × s8
// GEMM (contract in ops/int8_kernels.h). The AVX-512 build uses VNNI's vpdpbusd (4 byte
// products summed into each int32 lane) when the CPU has it; every other build runs the
// portable kernel, the same register blocking in plain loops that the compiler vectorises.
#include <immintrin.h>

#include <algorithm>

#include "lepton/cpu/kernels/common.h"
#include "lepton/ops/int8_kernels.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

constexpr int kMR = 6;  // rows per micro-tile
constexpr int kNB = 4;  // 16-channel blocks per micro-tile (64 columns)
constexpr int64_t kKC = 128;      // k/4 steps per chunk: a 64-column panel's chunk of weights is 32 KB
constexpr int64_t kRowGroup = 8;  // row blocks that reuse one chunk of weights while it is in cache

// The part of a tile's k loop one call runs: k/4 steps [q0, q1). Sums of earlier chunks wait in
// acc (int32, kMR × 64), and the last chunk turns them into outputs.
struct KChunk {
  int64_t q0, q1;
  int32_t* acc;
  bool first, last;
};

void quantize_rows(const QuantizeRowsArgs& a) {
  parallel_range(a.m, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, a.k)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = a.x + r * a.k;
      uint8_t* q = a.out + r * a.ld;
      float amax = 0.f;
#pragma omp simd reduction(max : amax)
      for (int64_t i = 0; i < a.k; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float inv = amax > 0.f ? 127.f / amax : 0.f;
      a.scale[r] = amax / 127.f;
      const int off = a.offset;
#pragma omp simd
      for (int64_t i = 0; i < a.k; ++i) {
        const float v = std::min(std::max(std::nearbyint(x[i] * inv), -127.f), 127.f);
        q[i] = uint8_t(int(v) + off);
      }
      for (int64_t i = a.k; i < a.ld; ++i) q[i] = uint8_t(off);
    }
  });
}

void pack(const int8_t* w, int64_t n, int64_t k, int8_t* packed, int32_t* colsum) {
  const int64_t kq = int8_k_padded(k) / 4, nb = (n + kInt8Block - 1) / kInt8Block;
  parallel_range(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t jj = 0; jj < kInt8Block; ++jj) {
        const int64_t j = b * kInt8Block + jj;
        int32_t sum = 0;
        for (int64_t kk = 0; kk < kq * 4; ++kk) {
          const int8_t v = j < n && kk < k ? w[j * k + kk] : int8_t(0);
          packed[(b * kq + kk / 4) * 64 + jj * 4 + kk % 4] = v;
          sum += v;
        }
        if (j < n) colsum[j] = sum;
      }
  });
}

// Writes one output value from its raw u8·s8 sum.
LEPTON_SIMD_INLINE void store_one(const Int8GemmArgs& g, int64_t i, int64_t j, int32_t raw) {
  const int32_t exact = raw - 128 * g.colsum[j];
  if (g.c_int) {
    g.c_int[i * g.n + j] = exact;
    return;
  }
  float v = float(exact) * (g.a_scale[i] * g.b_scale[j]) + (g.bias ? g.bias[j] : 0.f);
  g.c[i * g.n + j] = g.relu ? std::max(v, 0.f) : v;
}

// Naive loop: reads the packed layout element by element.
void gemm_reference(const Int8GemmArgs& g) {
  const int64_t kp = int8_k_padded(g.k), kq = kp / 4;
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      int32_t sum = 0;
      for (int64_t kk = 0; kk < g.k; ++kk)
        sum += int32_t(g.a[i * kp + kk]) * g.b[((j / kInt8Block) * kq + kk / 4) * 64 + (j % kInt8Block) * 4 + kk % 4];
      store_one(g, i, j, sum);
    }
}

// Portable micro-tile: rows [i0, i0+MR) × blocks [b0, b0+nb) with int32 accumulators.
template <int MR>
void tile_portable(const Int8GemmArgs& g, int64_t i0, int64_t b0, int nb, const KChunk& c) {
  const int64_t kp = int8_k_padded(g.k), kq = kp / 4;
  int32_t acc[MR][kNB * kInt8Block];
  if (c.first) std::memset(acc, 0, sizeof(acc));
  else std::memcpy(acc, c.acc, sizeof(acc));
  for (int64_t q = c.q0; q < c.q1; ++q)
    for (int b = 0; b < nb; ++b) {
      const int8_t* w = g.b + ((b0 + b) * kq + q) * 64;
      for (int r = 0; r < MR; ++r) {
        const uint8_t* x = g.a + (i0 + r) * kp + q * 4;
        int32_t* o = acc[r] + b * kInt8Block;
#pragma omp simd
        for (int jj = 0; jj < kInt8Block; ++jj)
          o[jj] += int32_t(x[0]) * w[jj * 4] + int32_t(x[1]) * w[jj * 4 + 1] + int32_t(x[2]) * w[jj * 4 + 2] +
                   int32_t(x[3]) * w[jj * 4 + 3];
      }
    }
  if (!c.last) {
    std::memcpy(c.acc, acc, sizeof(acc));
    return;
  }
  const int64_t j_end = std::min(g.n, (b0 + nb) * kInt8Block);
  for (int r = 0; r < MR; ++r)
    for (int64_t j = b0 * kInt8Block; j < j_end; ++j) store_one(g, i0 + r, j, acc[r][j - b0 * kInt8Block]);
}

#if defined(__AVX512F__)
// VNNI micro-tile: MR×NB accumulators of 16 int32 lanes; each step broadcasts 4 activation bytes
// of a row and multiplies them into the NB weight vectors of the same k/4.
template <int MR, int NB>
__attribute__((target("avx512vnni"))) void tile_vnni(const Int8GemmArgs& g, int64_t i0, int64_t b0, const KChunk& c) {
  const int64_t kp = int8_k_padded(g.k), kq = kp / 4;
  __m512i acc[MR][NB];
  for (int r = 0; r < MR; ++r)
    for (int b = 0; b < NB; ++b)
      acc[r][b] = c.first ? _mm512_setzero_si512() : _mm512_loadu_si512(c.acc + (r * NB + b) * 16);
  const int8_t* w = g.b + b0 * kq * 64;
  const uint8_t* x = g.a + i0 * kp;
  for (int64_t q = c.q0; q < c.q1; ++q) {
    __m512i wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_loadu_si512(w + (b * kq + q) * 64);
    for (int r = 0; r < MR; ++r) {
      int32_t four;
      std::memcpy(&four, x + r * kp + q * 4, 4);
      const __m512i xv = _mm512_set1_epi32(four);
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], xv, wv[b]);
    }
  }
  if (!c.last) {
    for (int r = 0; r < MR; ++r)
      for (int b = 0; b < NB; ++b) _mm512_storeu_si512(c.acc + (r * NB + b) * 16, acc[r][b]);
    return;
  }
  for (int b = 0; b < NB; ++b) {
    const int64_t j0 = (b0 + b) * kInt8Block;
    const __mmask16 mask = g.n - j0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (g.n - j0)) - 1);
    const __m512i corr = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(mask, g.colsum + j0), 7);  // 128·colsum
    if (g.c_int) {
      for (int r = 0; r < MR; ++r)
        _mm512_mask_storeu_epi32(g.c_int + (i0 + r) * g.n + j0, mask, _mm512_sub_epi32(acc[r][b], corr));
      continue;
    }
    const __m512 ws = _mm512_maskz_loadu_ps(mask, g.b_scale + j0);
    const __m512 bias = g.bias ? _mm512_maskz_loadu_ps(mask, g.bias + j0) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) {
      const __m512i exact = _mm512_sub_epi32(acc[r][b], corr);
      __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(_mm512_set1_ps(g.a_scale[i0 + r]), ws), bias);
      if (g.relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(g.c + (i0 + r) * g.n + j0, mask, v);
    }
  }
}

template <int MR>
void tile_vnni_nb(const Int8GemmArgs& g, int64_t i0, int64_t b0, int nb, const KChunk& c) {
  switch (nb) {
    case 4: return tile_vnni<MR, 4>(g, i0, b0, c);
    case 3: return tile_vnni<MR, 3>(g, i0, b0, c);
    case 2: return tile_vnni<MR, 2>(g, i0, b0, c);
    default: return tile_vnni<MR, 1>(g, i0, b0, c);
  }
}
#endif

using TileFn = void (*)(const Int8GemmArgs&, int64_t, int64_t, int, const KChunk&);
template <template <int> class Tile>
constexpr TileFn tiles[kMR + 1] = {nullptr, Tile<1>::f, Tile<2>::f, Tile<3>::f, Tile<4>::f, Tile<5>::f, Tile<6>::f};
template <int MR> struct PortableTile {
  static void f(const Int8GemmArgs& g, int64_t i, int64_t b, int nb, const KChunk& c) { tile_portable<MR>(g, i, b, nb, c); }
};
#if defined(__AVX512F__)
template <int MR> struct VnniTile {
  static void f(const Int8GemmArgs& g, int64_t i, int64_t b, int nb, const KChunk& c) { tile_vnni_nb<MR>(g, i, b, nb, c); }
};
#endif

// A task is one 64-column panel × a group of row blocks; it walks k in chunks and runs every row
// block of its group over a chunk while that chunk of weights is in cache.
template <template <int> class Tile>
void gemm(const Int8GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const int64_t kq = int8_k_padded(g.k) / 4;
  const int64_t panels = (g.n + kNB * kInt8Block - 1) / (kNB * kInt8Block), row_blocks = (g.m + kMR - 1) / kMR;
  const int64_t groups = (row_blocks + kRowGroup - 1) / kRowGroup, nblocks = (g.n + kInt8Block - 1) / kInt8Block;
  const int64_t tasks = panels * groups;
  const int nt = g.m * g.n * kq * 4 < (int64_t(1) << 20) ? 1 : int(std::min<int64_t>(omp_get_max_threads(), tasks));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    alignas(64) int32_t acc[kRowGroup][kMR * kNB * kInt8Block];
    const int64_t p = t / groups, rb0 = t % groups * kRowGroup, rb1 = std::min(row_blocks, rb0 + kRowGroup);
    const int64_t b0 = p * kNB;
    const int nb = int(std::min<int64_t>(kNB, nblocks - b0));
    for (int64_t q0 = 0; q0 < std::max<int64_t>(kq, 1); q0 += kKC) {
      const int64_t q1 = std::min(kq, q0 + kKC);
      for (int64_t rb = rb0; rb < rb1; ++rb) {
        const int mr = int(std::min<int64_t>(kMR, g.m - rb * kMR));
        tiles<Tile>[mr](g, rb * kMR, b0, nb, KChunk{q0, q1, acc[rb - rb0], q0 == 0, q1 == kq});
      }
    }
  }
}

const Int8GemmKernels* int8_set() {
#if defined(__AVX512F__)
  if (__builtin_cpu_supports("avx512vnni")) {
    static const Int8GemmKernels vnni = {&quantize_rows, &pack, &gemm<VnniTile>, &gemm_reference, "avx512-vnni"};
    return &vnni;
  }
#endif
  static const Int8GemmKernels portable = {&quantize_rows, &pack, &gemm<PortableTile>, &gemm_reference, "portable"};
  return &portable;
}

}  // namespace

void fill_int8_gemm(KernelSet& set) { set.int8_gemm[int(DType::Int8)] = int8_set(); }

}  // namespace lepton::cpu::LEPTON_ISA
