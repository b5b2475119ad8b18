// Float32/float64 GEMM with a fused bias + activation epilogue (the contract is GemmArgs in
// ops/kernels.h); float16/bfloat16 run the float32 kernel on operands widened while packed
// (gemm_16bit), except bfloat16 on CPUs with AVX512-BF16, where Bf16Kernel multiplies packed
// bf16 pairs with vdpbf16ps into float32 accumulators. BLIS-style: B is packed into kc×NR
// panels shared by the threads, A into MR×kc panels per thread, and a register-blocked
// microkernel multiplies one A panel by one B panel into an MR×NR tile that the epilogue adds
// into C. Threads split each block of C into (row block × column group) tasks, so small-M
// shapes still use every thread. The naive triple loop gemm_reference stays beside it as the
// oracle for tests (LEPTON_GEMM=reference).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "lepton/cpu/kernels/common.h"
#include "lepton/cpu/kernels/vecmath.h"
#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace lepton::cpu::LEPTON_ISA {
namespace {

// ---- microkernels: tile[MR][NR] = A panel (kc×MR, k-major) · B panel (kc×NR, k-major)

#if defined(__AVX2__)
#if defined(__AVX512F__)
struct Simd {
  using V = __m512;
  static constexpr int kWidth = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void store_first(float* p, V v, int n) { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v); }
  // Exchanges the blocks of `s` lanes that a transpose swaps: a's odd blocks with b's even ones.
  static void swap_blocks(V& a, V& b, int s) {
    const __m512i p = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i x = _mm512_xor_si512(p, _mm512_set1_epi32(s)), off = _mm512_set1_epi32(16);
    const __mmask16 odd = _mm512_test_epi32_mask(p, _mm512_set1_epi32(s));
    V a2 = _mm512_permutex2var_ps(a, _mm512_mask_blend_epi32(odd, p, _mm512_add_epi32(x, off)), b);
    b = _mm512_permutex2var_ps(a, _mm512_mask_blend_epi32(odd, x, _mm512_add_epi32(p, off)), b);
    a = a2;
  }
};
constexpr int kSimdMR = 14, kSimdNV = 2;  // 28 accumulators + 2 B vectors + 1 broadcast of 32 zmm
#else
struct Simd {
  using V = __m256;
  static constexpr int kWidth = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void store_first(float* p, V v, int n) {
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), v);
  }
  static void swap_blocks(V& a, V& b, int s) {
    const __m256i p = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), x = _mm256_xor_si256(p, _mm256_set1_epi32(s));
    const V odd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(p, _mm256_set1_epi32(s)), _mm256_set1_epi32(s)));
    V a2 = _mm256_blendv_ps(a, _mm256_permutevar8x32_ps(b, x), odd);
    b = _mm256_blendv_ps(_mm256_permutevar8x32_ps(a, x), b, odd);
    a = a2;
  }
};
constexpr int kSimdMR = 6, kSimdNV = 2;  // 12 accumulators + 2 B vectors + 1 broadcast of 16 ymm
#endif

// Float32 with intrinsics: MR rows × NV vectors, all accumulators in registers.
template <int MR, int NV>
struct SimdKernel {
  using T = float;  // C's type
  using P = float;  // the packed panels' type
  static constexpr int kGroup = 1;  // k values per packed element group
  static constexpr int kMR = MR, kNR = NV * Simd::kWidth;
  static void run(int64_t kc, const float* a, const float* b, float* tile) {
    typename Simd::V acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = Simd::zero();
    for (int64_t k = 0; k < kc; ++k, a += MR, b += kNR) {
      typename Simd::V bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = Simd::load(b + v * Simd::kWidth);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) {
        typename Simd::V av = Simd::bcast(a + i);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[i][v] = Simd::fma(av, bv[v], acc[i][v]);
      }
    }
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) Simd::store(tile + i * kNR + v * Simd::kWidth, acc[i][v]);
  }
};
using FloatKernel = SimdKernel<kSimdMR, kSimdNV>;

// pack_panel's transposing case for float: source rows j contiguous along k, so read width×width
// blocks (rows past nr read as zeros), transpose them in registers and store whole k rows.
// Returns the number of k handled (a multiple of the width); the caller does the rest.
template <int W>
int64_t pack_transposed(const float* src, int64_t cs, int64_t kc, int64_t nr, float* dst) {
  constexpr int V = Simd::kWidth;
  int64_t k0 = 0;
  for (; k0 + V <= kc; k0 += V)
    for (int j0 = 0; j0 < W; j0 += V) {
      typename Simd::V r[V];
#pragma GCC unroll 16
      for (int i = 0; i < V; ++i) r[i] = j0 + i < nr ? Simd::loadu(src + (j0 + i) * cs + k0) : Simd::zero();
#pragma GCC unroll 4
      for (int s = V / 2; s > 0; s /= 2)
#pragma GCC unroll 16
        for (int i = 0; i < V; ++i)
          if (!(i & s)) Simd::swap_blocks(r[i], r[i + s], s);
      const int w = std::min(V, W - j0);
#pragma GCC unroll 16
      for (int i = 0; i < V; ++i) Simd::store_first(dst + (k0 + i) * W + j0, r[i], w);
    }
  return k0;
}
#endif

// Any dtype and ISA: the compiler vectorises the NR loop.
template <class T_, int MR, int NR>
struct GenericKernel {
  using T = T_;
  using P = T_;
  static constexpr int kGroup = 1;
  static constexpr int kMR = MR, kNR = NR;
  static void run(int64_t kc, const T* a, const T* b, T* tile) {
    T acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
#pragma omp simd
        for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    std::memcpy(tile, acc, sizeof(acc));
  }
};
#if !defined(__AVX2__)
using FloatKernel = GenericKernel<float, 4, 16>;
#endif
using DoubleKernel = GenericKernel<double, 4, 16>;

// ---- cache blocking: a kc×NR B panel stays in L1 while the MC×kc A block streams from L2.
constexpr int64_t kKC = 256, kMC = 256, kNC = 4096;
constexpr int64_t kSerialFlops = int64_t(1) << 18;  // below this a parallel region costs more than it saves

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A growable 64-byte-aligned scratch buffer; one per thread, kept between calls.
struct Scratch {
  void* p = nullptr;
  size_t size = 0;
  template <class T>
  T* get(int64_t n) {
    size_t want = (size_t(n) * sizeof(T) + 63) & ~size_t(63);
    if (want > size) {
      std::free(p);
      p = std::aligned_alloc(64, want);
      if (!p) throw std::bad_alloc();
      size = want;
    }
    return static_cast<T*>(p);
  }
  ~Scratch() { std::free(p); }
};
thread_local Scratch tl_a, tl_b;

// Packs the kc×nr block of a strided K×N source (rows k, columns j) into a k-major panel of
// width W, zero-padding columns nr..W. Used for B (W = NR) and, with the strides swapped,
// for A (W = MR). The loop order follows the source's unit stride. A 16-bit source (S) is
// widened to float here, so its GEMM needs no converted copy of the operands.
template <int W, class T, class S>
void pack_panel(const S* src, int64_t rs, int64_t cs, int64_t kc, int64_t nr, T* dst) {
  if (cs == 1 && nr == W) {
    for (int64_t k = 0; k < kc; ++k)
#pragma omp simd
      for (int j = 0; j < W; ++j) dst[k * W + j] = load(src[k * rs + j]);
    return;
  }
  int64_t k0 = 0;  // k rows already packed
#if defined(__AVX2__)
  if constexpr (std::is_same_v<S, float>)
    if (rs == 1) k0 = pack_transposed<W>(src, cs, kc, nr, dst);
#endif
  for (int64_t k = k0; k < kc; ++k)
    for (int64_t j = nr; j < W; ++j) dst[k * W + j] = T(0);
  if (rs == 1) {
    for (int64_t j = 0; j < nr; ++j)
      for (int64_t k = k0; k < kc; ++k) dst[k * W + j] = load(src[j * cs + k]);
  } else {
    for (int64_t k = k0; k < kc; ++k)
      for (int64_t j = 0; j < nr; ++j) dst[k * W + j] = load(src[k * rs + j * cs]);
  }
}

#if defined(__AVX512F__)
// ---- bfloat16 with vdpbf16ps, which adds two bf16 products (k, k+1) into each float32 lane at
// twice the rate of float32 FMAs. Panels hold k in pairs: A as [k/2][MR] 32-bit words (one
// broadcast per row), B as [k/2][NR] words of two bf16 (k even in the low half); an odd K ends
// with a zero pair half in both. Compiled for AVX512-BF16 only here and used only where cpuid
// reports it (fill_gemm), so the rest of this kernel set still runs on AVX-512 CPUs without it.
struct Bf16Kernel {
  using T = float;
  using P = uint16_t;
  static constexpr int kGroup = 2, kMR = 8, kNR = kSimdNV * 16;  // 16 accumulators; MR = 8 divides common M
  __attribute__((target("avx512bf16"))) static void run(int64_t kc, const uint16_t* a, const uint16_t* b,
                                                        float* tile) {
    using Word = int32_t __attribute__((may_alias));
    __m512 acc[kMR][kSimdNV];
#pragma GCC unroll 32
    for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < kSimdNV; ++v) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t p = 0, np = ceil_div(kc, 2); p < np; ++p, a += 2 * kMR, b += 2 * kNR) {
      __m512bh bv[kSimdNV];
#pragma GCC unroll 8
      for (int v = 0; v < kSimdNV; ++v) bv[v] = (__m512bh)_mm512_load_si512(b + v * 32);
#pragma GCC unroll 32
      for (int i = 0; i < kMR; ++i) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(*reinterpret_cast<const Word*>(a + 2 * i));
#pragma GCC unroll 8
        for (int v = 0; v < kSimdNV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
      }
    }
#pragma GCC unroll 32
    for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < kSimdNV; ++v) _mm512_store_ps(tile + i * kNR + v * 16, acc[i][v]);
  }
};

// pack_panel for Bf16Kernel: dst[(p*W + j)*2 + h] = src[(2p+h)*rs + j*cs], zero for k >= kc and
// j >= nr. The common layouts have fast paths: pairs contiguous in the source (A row-major,
// B = Wᵀ) are 32-bit words to transpose like float panels; rows contiguous (B row-major, Aᵀ)
// are interleaved two rows at a time.
template <int W>
void pack_pairs(const BFloat16* src, int64_t rs, int64_t cs, int64_t kc, int64_t nr, uint16_t* dst) {
  static_assert(W <= 32);
  const int64_t np = ceil_div(kc, 2);
  int64_t p0 = 0;  // pairs already packed
  if (rs == 1 && cs % 2 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0) {
    p0 = pack_transposed<W>(reinterpret_cast<const float*>(src), cs / 2, kc / 2, nr, reinterpret_cast<float*>(dst));
  } else if (cs == 1) {
    alignas(64) static constexpr uint16_t kLo[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                                     8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
    const __m512i lo = _mm512_load_si512(kLo);  // word i: row 0's column i/2, or row 1's for odd i
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    const __mmask32 cols = _cvtu32_mask32(uint32_t((uint64_t(1) << nr) - 1));
    constexpr uint32_t kLoWords = uint32_t((uint64_t(1) << std::min(2 * W, 32)) - 1);  // W columns: 2W words
    constexpr uint32_t kHiWords = W > 16 ? uint32_t((uint64_t(1) << (2 * W - 32)) - 1) : 0;
    for (; p0 < np; ++p0) {
      const __m512i r0 = _mm512_maskz_loadu_epi16(cols, src + 2 * p0 * rs);
      const __m512i r1 = _mm512_maskz_loadu_epi16(2 * p0 + 1 < kc ? cols : 0, src + (2 * p0 + 1) * rs);  // odd K: 0
      _mm512_mask_storeu_epi16(dst + p0 * 2 * W, kLoWords, _mm512_permutex2var_epi16(r0, lo, r1));
      if constexpr (kHiWords != 0)
        _mm512_mask_storeu_epi16(dst + p0 * 2 * W + 32, kHiWords, _mm512_permutex2var_epi16(r0, hi, r1));
    }
  }
  for (int64_t p = p0; p < np; ++p)
    for (int64_t j = 0; j < W; ++j)
      for (int h = 0; h < 2; ++h) {
        const int64_t k = 2 * p + h;
        dst[(p * W + j) * 2 + h] = k < kc && j < nr ? src[k * rs + j * cs].bits : 0;
      }
}
#endif

// Packs a kc×nr block for kernel K (see pack_panel).
template <class K, int W, class S>
void pack(const S* src, int64_t rs, int64_t cs, int64_t kc, int64_t nr, typename K::P* dst) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<K, Bf16Kernel>) return pack_pairs<W>(src, rs, cs, kc, nr, dst);
  else
#endif
    pack_panel<W>(src, rs, cs, kc, nr, dst);
}

template <class T>
LEPTON_SIMD_INLINE T gelu(T x) {
  if constexpr (std::is_same_v<T, float>) return vgelu(x);
  else return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440));
}

// The bias and activation, applied once a row of C holds its full sum.
template <class T>
void finish_row(T* c, int64_t n, const T* bias, Activation act) {
  if (bias)
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) c[j] += bias[j];
  if (act == Activation::Relu) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) c[j] = c[j] < T(0) ? T(0) : c[j];  // NaN stays NaN
  } else if (act == Activation::Gelu) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) c[j] = gelu(c[j]);
  }
}

// Starts loading C's tile while the microkernel runs: its rows are a row stride apart and,
// for power-of-two strides, fight over the same cache sets (~10% at 2048² on Zen 5).
template <class T>
inline void prefetch_tile(const T* c, int64_t c_rs, int64_t mr, int64_t nr) {
  for (int64_t i = 0; i < mr; ++i, c += c_rs) {
    __builtin_prefetch(c, 1);
    __builtin_prefetch(c + nr - 1, 1);
  }
}

template <class T>
struct Epilogue {
  T alpha, beta;
  const T* bias;  // already offset to the batch's column 0, or null
  Activation act;
};

// Adds an mr×nr tile (row stride W) into C: the first K block applies beta, the last the bias
// and activation.
template <int W, class T>
void store_tile(const T* tile, int64_t mr, int64_t nr, T* c, int64_t c_rs, const Epilogue<T>& e,
                const T* bias, bool first, bool last) {
  for (int64_t i = 0; i < mr; ++i, tile += W, c += c_rs) {
    if (!first) {
#pragma omp simd
      for (int64_t j = 0; j < nr; ++j) c[j] += e.alpha * tile[j];
    } else if (e.beta == T(0)) {
#pragma omp simd
      for (int64_t j = 0; j < nr; ++j) c[j] = e.alpha * tile[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < nr; ++j) c[j] = e.alpha * tile[j] + e.beta * c[j];
    }
    if (last) finish_row(c, nr, bias, e.act);
  }
}

// The block C[i0:i1, j0:j1] of one matrix, computed by one thread with its own packed panels
// (threads own disjoint blocks, so they never wait for each other). A and B are of storage
// type S, packed as K::P (16-bit ones widened to float, or kept in pairs for Bf16Kernel).
template <class K, class S, class T = typename K::T>
void gemm_block(const GemmArgs& g, const S* A, const S* B, T* C, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  using P = typename K::P;
  constexpr int MR = K::kMR, NR = K::kNR, G = K::kGroup;
  const int64_t M = i1 - i0, Kd = g.k;
  const Epilogue<T> e{T(g.alpha), T(g.beta), static_cast<const T*>(g.bias), g.act};
  const int64_t mblocks = ceil_div(M, kMC);
  const int64_t mc = ceil_div(ceil_div(M, mblocks), MR) * MR;  // balanced row blocks
  constexpr int64_t KC = kKC * G;  // k per block: a B panel of KC/G groups keeps its size in L1
  const int64_t kc_max = ceil_div(std::min(KC, Kd), G) * G;
  P* abuf = tl_a.get<P>(mc * kc_max);
  P* bbuf = tl_b.get<P>(kc_max * ceil_div(std::min(kNC, j1 - j0), NR) * NR);
  alignas(64) T tile[MR * NR];
  for (int64_t jc = j0; jc < j1; jc += kNC) {
    const int64_t nc = std::min(kNC, j1 - jc);
    for (int64_t pc = 0; pc < Kd; pc += KC) {
      const int64_t kc = std::min(KC, Kd - pc), kcp = ceil_div(kc, G) * G;  // kcp: packed depth
      const bool first = pc == 0, last = pc + kc == Kd;
      for (int64_t jr = 0; jr < nc; jr += NR)
        pack<K, NR>(B + pc * g.b_rs + (jc + jr) * g.b_cs, g.b_rs, g.b_cs, kc, std::min<int64_t>(NR, nc - jr),
                    bbuf + jr * kcp);
      for (int64_t ic = i0; ic < i1; ic += mc) {
        const int64_t mcur = std::min(mc, i1 - ic);
        for (int64_t ir = 0; ir < mcur; ir += MR)
          pack<K, MR>(A + (ic + ir) * g.a_rs + pc * g.a_cs, g.a_cs, g.a_rs, kc, std::min<int64_t>(MR, mcur - ir),
                      abuf + ir * kcp);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min<int64_t>(NR, nc - jr);
          const T* bias = e.bias ? e.bias + jc + jr : nullptr;
          for (int64_t ir = 0; ir < mcur; ir += MR) {
            const int64_t mr = std::min<int64_t>(MR, mcur - ir);
            T* c = C + (ic + ir) * g.c_rs + jc + jr;
            prefetch_tile(c, g.c_rs, mr, nr);
            K::run(kc, abuf + ir * kcp, bbuf + jr * kcp, tile);
            store_tile<NR>(tile, mr, nr, c, g.c_rs, e, bias, first, last);
          }
        }
      }
    }
  }
}

// K == 0: C = act(beta * C + bias).
template <class T>
void gemm_empty_k(const GemmArgs& g) {
  const T beta = T(g.beta);
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t i = 0; i < g.m; ++i) {
      T* c = static_cast<T*>(g.c) + b * g.c_bs + i * g.c_rs;
      for (int64_t j = 0; j < g.n; ++j) c[j] = beta == T(0) ? T(0) : beta * c[j];
      finish_row(c, g.n, static_cast<const T*>(g.bias), g.act);
    }
}

// M = 1 (batch-1 inference): packing B for the microkernel would cost more than the product,
// so B is read once in place: as dot products with the row of A when B's columns run along K
// (x·Wᵀ), else as scaled additions of B's rows. Needs one of B's strides to be 1.
template <class T>
void gemv_row(const GemmArgs& g, const T* A, const T* B, T* C) {
  const int64_t K = g.k, N = g.n;
  std::vector<T> a_copy;
  const T* a = A;
  if (g.a_cs != 1) {
    a_copy.resize(size_t(K));
    for (int64_t k = 0; k < K; ++k) a_copy[size_t(k)] = A[k * g.a_cs];
    a = a_copy.data();
  }
  const T alpha = T(g.alpha), beta = T(g.beta);
  const T* bias = static_cast<const T*>(g.bias);
  auto finish = [&](const T* sums, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) C[j] = alpha * sums[j - j0] + (beta == T(0) ? T(0) : beta * C[j]);
    finish_row(C + j0, j1 - j0, bias ? bias + j0 : nullptr, g.act);
  };
  const int nt = 2 * K * N < kSerialFlops ? 1 : omp_get_max_threads();
  constexpr int64_t kCols = 256;  // columns per task: partial sums stay in L1
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t j0 = 0; j0 < N; j0 += kCols) {
    const int64_t j1 = std::min(N, j0 + kCols);
    T sums[kCols];
    if (g.b_rs == 1) {
      for (int64_t j = j0; j < j1; ++j) {
        const T* col = B + j * g.b_cs;
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < K; ++k) s += a[k] * col[k];
        sums[j - j0] = s;
      }
    } else {
      for (int64_t j = j0; j < j1; ++j) sums[j - j0] = 0;
      for (int64_t k = 0; k < K; ++k) {
        const T ak = a[k];
        const T* row = B + k * g.b_rs + j0;
#pragma omp simd
        for (int64_t j = 0; j < j1 - j0; ++j) sums[j] += ak * row[j];
      }
    }
    finish(sums, j0, j1);
  }
}

// S: the storage type of A and B (16-bit ones are widened while packed); C and the bias are T.
template <class K, class S = typename K::T>
void gemm_fast(const GemmArgs& g) {
  using T = typename K::T;
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) return gemm_empty_k<T>(g);
  if (std::is_same_v<S, T> && g.m == 1 && (g.b_rs == 1 || g.b_cs == 1)) {
    for (int64_t b = 0; b < g.batch; ++b)
      gemv_row<T>(g, static_cast<const T*>(g.a) + b * g.a_bs, static_cast<const T*>(g.b) + b * g.b_bs,
                  static_cast<T*>(g.c) + b * g.c_bs);  // S == T here
    return;
  }
  const int64_t flops = 2 * g.m * g.n * g.k * g.batch;
  const int nt = flops < kSerialFlops ? 1 : omp_get_max_threads();
  // Each matrix is cut into `parts` blocks: along N in whole panels when there are enough of
  // them (A is then packed once per part), else along M.
  const int64_t parts = g.batch % nt == 0 || g.batch >= 4 * nt ? 1 : nt;
  const int64_t npanels = ceil_div(g.n, K::kNR), mpanels = ceil_div(g.m, K::kMR);
  const bool split_n = npanels >= parts || npanels >= mpanels;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t t = 0; t < g.batch * parts; ++t) {
    const int64_t b = t / parts, p = t % parts;
    int64_t i0 = 0, i1 = g.m, j0 = 0, j1 = g.n;
    if (split_n) {
      j0 = std::min(g.n, npanels * p / parts * K::kNR), j1 = std::min(g.n, npanels * (p + 1) / parts * K::kNR);
    } else {
      i0 = std::min(g.m, mpanels * p / parts * K::kMR), i1 = std::min(g.m, mpanels * (p + 1) / parts * K::kMR);
    }
    if (i0 < i1 && j0 < j1)
      gemm_block<K>(g, static_cast<const S*>(g.a) + b * g.a_bs, static_cast<const S*>(g.b) + b * g.b_bs,
                    static_cast<T*>(g.c) + b * g.c_bs, i0, i1, j0, j1);
  }
}

template <class T>
void gemm_reference(const GemmArgs& g) {
  const T* bias = static_cast<const T*>(g.bias);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t i = 0; i < g.m; ++i) {
      const T* a = static_cast<const T*>(g.a) + b * g.a_bs + i * g.a_rs;
      T* c = static_cast<T*>(g.c) + b * g.c_bs + i * g.c_rs;
      for (int64_t j = 0; j < g.n; ++j) {
        const T* bj = static_cast<const T*>(g.b) + b * g.b_bs + j * g.b_cs;
        double s = 0;
        for (int64_t k = 0; k < g.k; ++k) s += double(a[k * g.a_cs]) * double(bj[k * g.b_rs]);
        c[j] = T(g.alpha * s + (g.beta == 0 ? 0.0 : g.beta * double(c[j])));
      }
      finish_row(c, g.n, bias, g.act);
    }
}

// Float16/bfloat16 with float32 accumulation over all of K: the operands are widened while
// packed (`F` = gemm_fast<FloatKernel, S>) or multiplied as bf16 pairs (gemm_fast<Bf16Kernel,
// BFloat16>), C is summed in a float32 buffer (read from C first when beta != 0) and rounded
// once at the end, after the bias (widened once) and activation. The reference
// (`F` = gemm_reference<float>) gets float32 copies of A and B.
template <class S>
void widen_matrices(const S* src, int64_t batch, int64_t bs, int64_t rows, int64_t rs, int64_t cols, int64_t cs,
                    float* dst) {
#pragma omp parallel for collapse(2) schedule(static) if (batch * rows * cols > kParallelGrain)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < rows; ++i) {
      const S* s = src + b * bs + i * rs;
      float* d = dst + (b * rows + i) * cols;
      for (int64_t j = 0; j < cols; ++j) d[j] = load(s[j * cs]);
    }
}

template <class S, void (*F)(const GemmArgs&), bool WidenOperands>
void gemm_16bit(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  const int64_t M = g.m, N = g.n, K = g.k, B = g.batch;
  std::unique_ptr<float[]> c(new float[size_t(B * M * N)]);  // uninitialised: F writes all of it
  std::vector<float> bias, a, b;
  S* C = static_cast<S*>(g.c);
  if (g.beta != 0) widen_matrices(static_cast<const S*>(C), B, g.c_bs, M, g.c_rs, N, 1, c.get());
  GemmArgs w = g;
  w.c = c.get(), w.c_rs = N, w.c_bs = M * N;
  if (g.bias) {
    bias.resize(size_t(N));
    widen_matrices(static_cast<const S*>(g.bias), 1, 0, 1, 0, N, 1, bias.data());
    w.bias = bias.data();
  }
  if constexpr (WidenOperands) {
    a.resize(size_t(B * M * K)), b.resize(size_t(B * K * N));
    widen_matrices(static_cast<const S*>(g.a), B, g.a_bs, M, g.a_rs, K, g.a_cs, a.data());
    widen_matrices(static_cast<const S*>(g.b), B, g.b_bs, K, g.b_rs, N, g.b_cs, b.data());
    w.a = a.data(), w.b = b.data();
    w.a_rs = K, w.a_cs = 1, w.a_bs = M * K, w.b_rs = N, w.b_cs = 1, w.b_bs = K * N;
  }
  F(w);
#pragma omp parallel for collapse(2) schedule(static) if (B * M * N > kParallelGrain)
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t i = 0; i < M; ++i) {
      const float* s = c.get() + (bi * M + i) * N;
      S* d = C + bi * g.c_bs + i * g.c_rs;
      for (int64_t j = 0; j < N; ++j) d[j] = store<S>(s[j]);
    }
}

}  // namespace

void fill_gemm(KernelSet& set) {
  set.gemm[int(DType::Float32)] = &gemm_fast<FloatKernel>;
  set.gemm[int(DType::Float64)] = &gemm_fast<DoubleKernel>;
  set.gemm_reference[int(DType::Float32)] = &gemm_reference<float>;
  set.gemm_reference[int(DType::Float64)] = &gemm_reference<double>;
  set.gemm[int(DType::Float16)] = &gemm_16bit<Half, gemm_fast<FloatKernel, Half>, false>;
  set.gemm[int(DType::BFloat16)] = &gemm_16bit<BFloat16, gemm_fast<FloatKernel, BFloat16>, false>;
  set.gemm_reference[int(DType::Float16)] = &gemm_16bit<Half, gemm_reference<float>, true>;
  set.gemm_reference[int(DType::BFloat16)] = &gemm_16bit<BFloat16, gemm_reference<float>, true>;
#if defined(__AVX512F__)
  // vdpbf16ps only where cpuid reports AVX512-BF16; LEPTON_CPU_BF16=0 keeps the widening path
  // (to compare the two in tests and benchmarks).
  const char* bf16 = std::getenv("LEPTON_CPU_BF16");
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16") && !(bf16 && !std::strcmp(bf16, "0")))
    set.gemm[int(DType::BFloat16)] = &gemm_16bit<BFloat16, gemm_fast<Bf16Kernel, BFloat16>, false>;
#endif
}

}  // namespace lepton::cpu::LEPTON_ISA
