// Scaled dot-product attention, FlashAttention-2 style (the contract is AttentionArgs in
// ops/attention_kernels.h). Queries go in blocks of kBM and keys in blocks of kBN with an online
// softmax (running max and sum per query), so no L×S matrix is ever held: the forward keeps O
// and each row's logsumexp, the backward recomputes the probabilities tile by tile.
//
// Score tiles are computed transposed, st[j][i] (keys down, queries across), so the softmax over
// keys is a vertical pass of vector maxima and sums with no horizontal reductions, and every
// product is one register-blocked microkernel C[MR][NR] (op)= A·B whose A is broadcast from
// memory (any layout) and whose B is read as NR-wide rows. Scores are kept in base-2 units
// (scale·log2(e) is folded into the packed queries), so each weight is one exp2.
//
// The forward runs (problem, query block) tasks in parallel; the backward runs (problem, key
// block) tasks, each accumulating its dK/dV block privately and dQ into a per-problem buffer of
// the thread; a problem split between threads sums their dQ parts at the end (no atomics).
// reference_forward/backward (plain loops over a materialised softmax) are the test oracle.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <exception>
#include <limits>
#include <type_traits>
#include <vector>

#include "lepton/core/philox.h"
#include "lepton/cpu/kernels/common.h"
#include "lepton/cpu/kernels/vec.h"
#include "lepton/ops/attention_kernels.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

#if defined(__AVX512F__)
constexpr int kMR = 12;
#elif defined(__AVX2__)
constexpr int kMR = 6;
#else
constexpr int kMR = 4;
#endif
constexpr int kNV = 2;       // vectors per microkernel row: MR·NV accumulators + NV B rows fill the registers
constexpr int64_t kBM = 96;  // queries per block: a multiple of MR and of NR for every ISA and dtype
constexpr int64_t kBN = 96;  // keys per block: a multiple of MR
constexpr double kLog2e = 1.4426950408889634;
constexpr int64_t kSerialFlops = int64_t(1) << 20;  // below this one thread does it all

template <class T>
struct Simd : Vec<T> {
  static constexpr int NR = kNV * Vec<T>::W;
  using VI = typename Vec<T>::M;
};
template <class T>
using vec_t = typename Simd<T>::V;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();

// ---- vector math

// 2^x per lane: x = n + f with |f| <= 1/2, 2^f by Cephes' exp2f polynomial (~2 ulp), 2^n built
// in the exponent bits. x <= -127 gives exactly 0 (a masked score weighs nothing), x >= 128
// gives inf, NaN stays NaN. float64 calls libm per lane (it only serves tests).
LEPTON_SIMD_INLINE vec_t<float> exp2v(vec_t<float> x) {
  using V = vec_t<float>;
  using VI = Simd<float>::VI;
  x = x < -127.0f ? V{} - 127.0f : x;
  x = x > 128.0f ? V{} + 128.0f : x;
  const V t = x + 12582912.0f;  // 1.5·2^23: rounds to an integer in the low mantissa bits
  const V f = x - (t - 12582912.0f);
  V p = V{} + 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  const VI e = ((VI)t - 0x4B400000 + 127) << 23;
  return p * (V)e;
}
LEPTON_SIMD_INLINE vec_t<double> exp2v(vec_t<double> x) {
  for (int l = 0; l < Simd<double>::W; ++l) x[l] = std::exp2(x[l]);
  return x;
}

template <class V>
LEPTON_SIMD_INLINE V vmax(V a, V b) {
  return b > a ? b : a;  // a NaN in b is skipped here and propagates through exp2 instead
}

// ---- packing

// dst[r·ld + c] = src[r·rs + c] for c < cols, zero-padded to ld columns.
template <class T>
void pack_rows(const T* src, int64_t rs, int64_t rows, int64_t cols, T* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * ld, src + r * rs, size_t(cols) * sizeof(T));
    std::memset(dst + r * ld + cols, 0, size_t(ld - cols) * sizeof(T));
  }
}

// ---- the microkernel

enum class Out { Set, Add, Rescale };  // C = A·B, C += A·B, C = alpha[i]·C + A·B

// C[MR][NR] (op)= Σ_{k<kc} A(i, k)·B(k, :) with A(i, k) = a[i·AI + k·ak] and B(k, :) the NR
// values at b + k·ldb.
template <class T, int64_t AI, Out O>
void micro(int64_t kc, const T* a, int64_t ak, const T* b, int64_t ldb, T* c, int64_t ldc, const T* alpha) {
  using V = vec_t<T>;
  constexpr int W = Simd<T>::W;
  V acc[kMR][kNV];
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[i][v] = V{};
  for (int64_t k = 0; k < kc; ++k, a += ak, b += ldb) {
    V bv[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) bv[v] = loadv<V>(b + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      const T ai = a[i * AI];
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[i][v] += ai * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      T* p = c + i * ldc + v * W;
      if constexpr (O == Out::Set) storev(p, acc[i][v]);
      if constexpr (O == Out::Add) storev(p, loadv<V>(p) + acc[i][v]);
      if constexpr (O == Out::Rescale) storev(p, alpha[i] * loadv<V>(p) + acc[i][v]);
    }
}

// C[rows][cols] (op)= A·B in MR×NR tiles (rows and cols multiples of MR and NR), B panels outer
// so each stays in L1 while the A tiles stream past it.
template <class T, int64_t AI, Out O>
void tiles(int64_t rows, int64_t cols, int64_t kc, const T* a, int64_t ak, const T* b, int64_t ldb, T* c, int64_t ldc,
           const T* alpha = nullptr) {
  constexpr int NR = Simd<T>::NR;
  for (int64_t j = 0; j < cols; j += NR)
    for (int64_t i = 0; i < rows; i += kMR)
      micro<T, AI, O>(kc, a + i * AI, ak, b + j, ldb, c + i * ldc + j, ldc, alpha ? alpha + i : nullptr);
}

// ---- masks and dropout, shared by both versions

// Problem n's operands: base + off[n] elements.
template <class T>
const T* at(const void* base, const int64_t* off, int64_t n) {
  return static_cast<const T*>(base) + off[n];
}

struct Dropout {
  uint64_t seed = 0, threshold = 0;  // keep when the word >= threshold
  double scale = 1;                  // of kept weights
  explicit Dropout(const AttentionArgs& a)
      : seed(a.dropout_seed), threshold(uint64_t(std::ceil(a.dropout_p * 4294967296.0))),
        scale(a.dropout_p < 1 ? 1 / (1 - a.dropout_p) : 0) {}
  // The factor (0 or scale) of dropout counter w = (n·S + j)·L + i.
  double factor(uint64_t w) const { return philox(seed, w >> 2).v[w & 3] >= threshold ? scale : 0; }
  // f[i] = factor(w0 + i) for i < count <= kBM: one Philox call per four counters, the calls
  // vectorised across counter groups (~7x faster than one at a time).
  template <class T>
  void factors(uint64_t w0, int64_t count, T* f) const {
    alignas(64) uint32_t words[kBM + 8];
    const uint64_t q0 = w0 >> 2;
    const int64_t groups = (int64_t(w0 & 3) + count + 3) / 4;
#pragma omp simd
    for (int64_t g = 0; g < groups; ++g) {
      const Philox4 r = philox(seed, q0 + uint64_t(g));
      for (int q = 0; q < 4; ++q) words[4 * g + q] = r.v[q];
    }
    const uint32_t* w = words + (w0 & 3);
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) f[i] = w[i] >= threshold ? T(scale) : T(0);
  }
};

// Adds problem n's mask (in base-2 units) and the causal -inf to the transposed score tile
// st[j][i] (ld kBM) of keys j0 + j (j < kv) and queries i0 + i (i < bm; nc >= bm columns).
template <class T>
void mask_tile(const AttentionArgs& a, int64_t n, int64_t i0, int64_t bm, int64_t nc, int64_t j0, int64_t kv, T* st) {
  using V = vec_t<T>;
  constexpr int W = Simd<T>::W;
  if (a.causal && j0 + kv - 1 > i0) {  // some key j of the tile lies after some query i
    V iota;
    for (int l = 0; l < W; ++l) iota[l] = T(l);
    for (int64_t j = 0; j < kv; ++j) {
      const T first = T(j0 + j - i0);  // local query index from which key j is allowed
      for (int64_t c = 0; c < nc; c += W) {
        T* p = st + j * kBM + c;
        storev(p, iota + T(c) < first ? V{} - kInf<T> : loadv<V>(p));
      }
    }
  }
  if (a.mask_kind == AttentionMask::None) return;
  const T log2e = T(kLog2e);
  if (a.mask_kind == AttentionMask::Float) {
    const T* m = at<T>(a.mask, a.mask_off, n) + j0;
    if (a.mask_rs == 0) {  // one row for every query
      for (int64_t j = 0; j < kv; ++j)
        for (int64_t c = 0; c < nc; c += W) storev(st + j * kBM + c, loadv<V>(st + j * kBM + c) + log2e * m[j]);
      return;
    }
    for (int64_t i = 0; i < bm; ++i) {
      const T* row = m + (i0 + i) * a.mask_rs;
      for (int64_t j = 0; j < kv; ++j) st[j * kBM + i] += log2e * row[j];
    }
    return;
  }
  const uint8_t* m = at<uint8_t>(a.mask, a.mask_off, n) + j0;
  for (int64_t i = 0; i < bm; ++i) {
    const uint8_t* row = m + (i0 + i) * a.mask_rs;
    for (int64_t j = 0; j < kv; ++j)
      if (!row[j]) st[j * kBM + i] = -kInf<T>;
  }
}

// ---- work split

// Tasks w = problem·blocks + b with cost pre[b + 1] - pre[b]: thread t of nt gets the contiguous
// range [first(t), first(t + 1)) holding about 1/nt of the total cost.
struct Split {
  std::vector<int64_t> pre;
  int64_t problems = 0;
  int64_t blocks() const { return int64_t(pre.size()) - 1; }
  int64_t first(int t, int nt) const {
    const int64_t per = pre.back(), target = problems * per * t / nt;  // every block costs >= 1
    const int64_t n = target / per, rem = target - n * per;
    const int64_t b = std::lower_bound(pre.begin(), pre.end(), rem) - pre.begin();
    return n * blocks() + b;
  }
};

int threads_for(int64_t flops, int64_t tasks) {
  const int nt = omp_get_max_threads();
  return flops < kSerialFlops ? 1 : int(std::max<int64_t>(1, std::min<int64_t>(nt, tasks)));
}

// Runs body(t, nt) on each of nt threads. An exception from any of them (out of memory) is
// rethrown here: leaving an OpenMP region by an exception would terminate the process.
template <class F>
void run_parallel(int nt, F&& body) {
  std::exception_ptr error;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    try {
      body(omp_get_thread_num(), omp_get_num_threads());
    } catch (...) {
#pragma omp critical(lepton_attention_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// One growable 64-byte-aligned buffer per thread, kept between calls, carved into arrays.
struct Scratch {
  void* p = nullptr;
  size_t size = 0;
  char* get(size_t bytes) {
    if (bytes > size) {
      std::free(p);
      p = std::aligned_alloc(64, (bytes + 63) & ~size_t(63));
      size = p ? bytes : 0;
      LEPTON_CHECK(p, OutOfMemory, "scaled_dot_product_attention: cannot allocate ", bytes, " bytes of scratch");
    }
    return static_cast<char*>(p);
  }
  ~Scratch() { std::free(p); }
};
thread_local Scratch tl_scratch;

// Hands out consecutive 64-byte-aligned arrays of `base`; with no base it only counts bytes.
struct Carver {
  char* base = nullptr;
  size_t used = 0;
  template <class T>
  T* take(int64_t n) {
    T* p = base ? reinterpret_cast<T*>(base + used) : nullptr;
    used += (size_t(n) * sizeof(T) + 63) & ~size_t(63);
    return p;
  }
};

// ---- fast forward

template <class T>
struct Forward {
  static constexpr int W = Simd<T>::W, NR = Simd<T>::NR;
  using V = vec_t<T>;
  const AttentionArgs& a;
  const Dropout drop;
  const int64_t L, S, E, Ev, Evp, Sp;
  const T c;  // scale·log2(e), folded into the packed queries
  T *kt, *vp, *qt, *st, *oacc, *m, *l, *alpha;

  explicit Forward(const AttentionArgs& args)
      : a(args), drop(args), L(args.L), S(args.S), E(args.E), Ev(args.Ev), Evp(round_up(Ev, NR)),
        Sp(round_up(S, kMR)), c(T(args.scale * kLog2e)) {}

  // Points the arrays into `base` (when given); returns the bytes they need.
  size_t carve(char* base) {
    Carver cv{base};
    kt = cv.take<T>(E * Sp);   // kᵀ [E][Sp]
    vp = cv.take<T>(S * Evp);  // v [S][Evp]
    qt = cv.take<T>(E * kBM);  // c·qᵀ of one block [E][kBM]
    st = cv.take<T>(kBN * kBM);
    oacc = cv.take<T>(kBM * Evp);
    m = cv.take<T>(kBM);
    l = cv.take<T>(kBM);
    alpha = cv.take<T>(kBM);
    return cv.used;
  }

  int64_t key_end(int64_t i0, int64_t bm) const { return a.causal ? std::min(S, i0 + bm) : S; }

  void pack_problem(int64_t n) {
    transpose_into(at<T>(a.k, a.k_off, n), a.k_rs, S, E, kt, Sp, T(1), Sp);
    pack_rows(at<T>(a.v, a.v_off, n), a.v_rs, S, Ev, vp, Evp);
  }

  // Online softmax over the tile's kv keys for every query column: updates the running max m
  // and sum l, turns the scores into weights 2^(s - m) and sets alpha = 2^(m_old - m_new).
  void softmax_tile(int64_t kv, int64_t nc) {
    for (int64_t i = 0; i < nc; i += W) {
      const V m_old = loadv<V>(m + i);
      V mx = m_old;
      for (int64_t j = 0; j < kv; ++j) mx = vmax(mx, loadv<V>(st + j * kBM + i));
      const V shift = mx == -kInf<T> ? V{} : mx;  // a row with nothing allowed yet keeps weight 0
      V sum = V{};
      for (int64_t j = 0; j < kv; ++j) {
        const V p = exp2v(loadv<V>(st + j * kBM + i) - shift);
        storev(st + j * kBM + i, p);
        sum += p;
      }
      const V al = exp2v(m_old - shift);
      storev(alpha + i, al);
      storev(l + i, loadv<V>(l + i) * al + sum);
      storev(m + i, mx);
    }
  }

  void block(int64_t n, int64_t i0) {
    const int64_t bm = std::min(kBM, L - i0), nc = round_up(bm, NR), rows = round_up(bm, kMR);
    transpose_into(at<T>(a.q, a.q_off, n) + i0 * a.q_rs, a.q_rs, bm, E, qt, kBM, c, nc);
    for (int64_t i = 0; i < nc; ++i) m[i] = -kInf<T>, l[i] = 0;
    std::memset(oacc, 0, size_t(rows * Evp) * sizeof(T));
    const int64_t kend = key_end(i0, bm);
    for (int64_t j0 = 0; j0 < kend; j0 += kBN) {
      const int64_t kv = std::min(kBN, kend - j0);
      tiles<T, 1, Out::Set>(round_up(kv, kMR), nc, E, kt + j0, Sp, qt, kBM, st, kBM);
      mask_tile(a, n, i0, bm, nc, j0, kv, st);
      softmax_tile(kv, nc);
      if (a.dropout_p > 0) {
        alignas(64) T f[kBM];
        for (int64_t j = 0; j < kv; ++j) {
          drop.factors(uint64_t((n * S + j0 + j) * L + i0), bm, f);
          for (int64_t i = 0; i < bm; ++i) st[j * kBM + i] *= f[i];
        }
      }
      tiles<T, 1, Out::Rescale>(rows, Evp, kv, st, kBM, vp + j0 * Evp, Evp, oacc, Evp, alpha);
    }
    T* out = static_cast<T*>(a.out) + (n * L + i0) * Ev;
    T* lse = static_cast<T*>(a.lse) + n * L + i0;
    for (int64_t i = 0; i < bm; ++i) {
      const T inv = l[i] > 0 ? T(1) / l[i] : T(0);
      for (int64_t d = 0; d < Ev; ++d) out[i * Ev + d] = oacc[i * Evp + d] * inv;
      lse[i] = l[i] > 0 ? m[i] + std::log2(l[i]) : kInf<T>;
    }
  }
};

template <class T>
void fast_forward(const AttentionArgs& a) {
  if (a.batch == 0 || a.L == 0) return;
  Split split{std::vector<int64_t>(1, 0), a.batch};
  const Forward<T> probe(a);
  for (int64_t i0 = 0; i0 < a.L; i0 += kBM)
    split.pre.push_back(split.pre.back() + 1 + ceil_div(probe.key_end(i0, std::min(kBM, a.L - i0)), kBN));
  const int64_t tasks = a.batch * split.blocks();
  const int nt = threads_for(4 * a.batch * a.L * a.S * std::max(a.E, a.Ev), tasks);
  run_parallel(nt, [&](int t, int k) {
    Forward<T> f(a);
    f.carve(tl_scratch.get(f.carve(nullptr)));
    int64_t problem = -1;
    for (int64_t w = split.first(t, k), end = split.first(t + 1, k); w < end; ++w) {
      const int64_t n = w / split.blocks();
      if (n != problem) f.pack_problem(problem = n);
      f.block(n, (w % split.blocks()) * kBM);
    }
  });
}

// ---- fast backward (FlashAttention-2): per key block, for each query block
//   P = 2^(s - lse), dV += (P∘Z)ᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP∘Z - D), dK += scale·dSᵀ·Q,
//   dQ += scale·dS·K, with Z the dropout factors and D = rowsum(dO∘O).

template <class T>
struct Backward {
  static constexpr int W = Simd<T>::W, NR = Simd<T>::NR;
  using V = vec_t<T>;
  const AttentionArgs& a;
  const Dropout drop;
  const int64_t L, S, E, Ev, Ep, Evp, Sp, Lp, Lr;
  const T c;
  // per problem: c·qᵀ, dOᵀ [E|Ev][Lp]; q, dO [L][Ep|Evp]; kᵀ, vᵀ [E|Ev][Sp]; k [S][Ep];
  // lse and D [Lp]; the dQ accumulator [Lr][Ep]
  T *qt, *dot, *qp, *dop, *kt, *vt, *kp, *lse, *dd, *dq;
  // per tile [kBN][kBM]: P (then P∘Z), the dropout factors Z, dP (then scale·dS); dK, dV blocks
  T *p, *z, *ds, *dk, *dv;

  explicit Backward(const AttentionArgs& args)
      : a(args), drop(args), L(args.L), S(args.S), E(args.E), Ev(args.Ev), Ep(round_up(E, NR)),
        Evp(round_up(Ev, NR)), Sp(round_up(S, kMR)), Lp(round_up(L, NR)), Lr(round_up(L, kMR)),
        c(T(args.scale * kLog2e)) {}

  // Points the arrays into `base` (when given); returns the bytes they need.
  size_t carve(char* base) {
    Carver cv{base};
    qt = cv.take<T>(E * Lp);
    dot = cv.take<T>(Ev * Lp);
    qp = cv.take<T>(L * Ep);
    dop = cv.take<T>(L * Evp);
    kt = cv.take<T>(E * Sp);
    vt = cv.take<T>(Ev * Sp);
    kp = cv.take<T>(S * Ep);
    lse = cv.take<T>(Lp);
    dd = cv.take<T>(Lp);
    dq = cv.take<T>(Lr * Ep);
    p = cv.take<T>(kBN * kBM);
    z = cv.take<T>(a.dropout_p > 0 ? kBN * kBM : 0);
    ds = cv.take<T>(kBN * kBM);
    dk = cv.take<T>(kBN * Ep);
    dv = cv.take<T>(kBN * Evp);
    return cv.used;
  }

  // Queries from this block on can see key j0 (all of them without a causal mask).
  int64_t first_query_block(int64_t j0) const { return a.causal ? j0 / kBM : 0; }

  void pack_problem(int64_t n) {
    const T* q = at<T>(a.q, a.q_off, n);
    const T* k = at<T>(a.k, a.k_off, n);
    const T* go = static_cast<const T*>(a.grad_out) + n * L * Ev;
    const T* o = static_cast<const T*>(a.out) + n * L * Ev;
    transpose_into(q, a.q_rs, L, E, qt, Lp, c, Lp);
    transpose_into(go, Ev, L, Ev, dot, Lp, T(1), Lp);
    pack_rows(q, a.q_rs, L, E, qp, Ep);
    pack_rows(go, Ev, L, Ev, dop, Evp);
    transpose_into(k, a.k_rs, S, E, kt, Sp, T(1), Sp);
    transpose_into(at<T>(a.v, a.v_off, n), a.v_rs, S, Ev, vt, Sp, T(1), Sp);
    pack_rows(k, a.k_rs, S, E, kp, Ep);
    const T* ls = static_cast<const T*>(a.lse) + n * L;
    for (int64_t i = 0; i < Lp; ++i) {
      lse[i] = i < L ? ls[i] : kInf<T>;  // padding queries get weight 0
      T s = 0;
      for (int64_t d = 0; i < L && d < Ev; ++d) s += go[i * Ev + d] * o[i * Ev + d];
      dd[i] = s;
    }
    std::memset(dq, 0, size_t(Lr * Ep) * sizeof(T));
  }

  void tile(int64_t n, int64_t j0, int64_t kv, int64_t i0) {
    const int64_t bm = std::min(kBM, L - i0), nc = round_up(bm, NR), kr = round_up(kv, kMR);
    tiles<T, 1, Out::Set>(kr, nc, E, kt + j0, Sp, qt + i0, Lp, p, kBM);
    mask_tile(a, n, i0, bm, nc, j0, kv, p);
    for (int64_t j = 0; j < kr; ++j)
      for (int64_t i = 0; i < nc; i += W)
        storev(p + j * kBM + i, j < kv ? exp2v(loadv<V>(p + j * kBM + i) - loadv<V>(lse + i0 + i)) : V{});
    if (a.dropout_p > 0) {
      std::memset(z, 0, size_t(kr * kBM) * sizeof(T));
      for (int64_t j = 0; j < kv; ++j) drop.factors(uint64_t((n * S + j0 + j) * L + i0), bm, z + j * kBM);
      for (int64_t j = 0; j < kr * kBM; j += W) storev(ds + j, loadv<V>(p + j) * loadv<V>(z + j));
      tiles<T, kBM, Out::Add>(kr, Evp, bm, ds, 1, dop + i0 * Evp, Evp, dv, Evp);
    } else {
      tiles<T, kBM, Out::Add>(kr, Evp, bm, p, 1, dop + i0 * Evp, Evp, dv, Evp);
    }
    tiles<T, 1, Out::Set>(kr, nc, Ev, vt + j0, Sp, dot + i0, Lp, ds, kBM);
    const T scale = T(a.scale);
    T* gm = a.grad_mask ? static_cast<T*>(a.grad_mask) + (n * L + i0) * S + j0 : nullptr;
    for (int64_t j = 0; j < kr; ++j)
      for (int64_t i = 0; i < nc; i += W) {
        const int64_t x = j * kBM + i;
        V dp = loadv<V>(ds + x);
        if (a.dropout_p > 0) dp *= loadv<V>(z + x);
        const V g = loadv<V>(p + x) * (dp - loadv<V>(dd + i0 + i));
        if (gm && j < kv)
          for (int l = 0; l < W && i + l < bm; ++l) gm[(i + l) * S + j] = g[l];
        storev(ds + x, g * scale);
      }
    tiles<T, kBM, Out::Add>(kr, Ep, bm, ds, 1, qp + i0 * Ep, Ep, dk, Ep);
    tiles<T, 1, Out::Add>(round_up(bm, kMR), Ep, kv, ds, kBM, kp + j0 * Ep, Ep, dq + i0 * Ep, Ep);
  }

  void key_block(int64_t n, int64_t j0) {
    const int64_t kv = std::min(kBN, S - j0);
    std::memset(dk, 0, size_t(kBN * Ep) * sizeof(T));
    std::memset(dv, 0, size_t(kBN * Evp) * sizeof(T));
    for (int64_t i0 = first_query_block(j0) * kBM; i0 < L; i0 += kBM) tile(n, j0, kv, i0);
    T* gk = static_cast<T*>(a.grad_k) + (n * S + j0) * E;
    T* gv = static_cast<T*>(a.grad_v) + (n * S + j0) * Ev;
    for (int64_t j = 0; j < kv; ++j) {
      std::memcpy(gk + j * E, dk + j * Ep, size_t(E) * sizeof(T));
      std::memcpy(gv + j * Ev, dv + j * Evp, size_t(Ev) * sizeof(T));
    }
  }

  // The dQ accumulated so far for the current problem, into dst [L][E].
  void write_dq(T* dst) const {
    for (int64_t i = 0; i < L; ++i) std::memcpy(dst + i * E, dq + i * Ep, size_t(E) * sizeof(T));
  }
};

template <class T>
void fast_backward(const AttentionArgs& a) {
  if (a.batch == 0) return;
  T* grad_q = static_cast<T*>(a.grad_q);
  if (a.S == 0) {
    std::memset(grad_q, 0, size_t(a.batch * a.L * a.E) * sizeof(T));
    return;
  }
  Split split{std::vector<int64_t>(1, 0), a.batch};
  const Backward<T> probe(a);
  const int64_t nqb = ceil_div(a.L, kBM);
  for (int64_t j0 = 0; j0 < a.S; j0 += kBN)
    split.pre.push_back(split.pre.back() + 1 + nqb - std::min(nqb, probe.first_query_block(j0)));
  const int64_t blocks = split.blocks(), tasks = a.batch * blocks;
  const int nt = threads_for(10 * a.batch * a.L * a.S * std::max(a.E, a.Ev), tasks);
  // dQ of a problem whose key blocks are split between threads: each thread's part, summed after.
  struct Part {
    int64_t n;
    std::vector<T> dq;
  };
  std::vector<std::vector<Part>> parts(nt);
  run_parallel(nt, [&](int t, int k) {
    Backward<T> b(a);
    b.carve(tl_scratch.get(b.carve(nullptr)));
    const int64_t begin = split.first(t, k), end = split.first(t + 1, k);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t n = w / blocks, kb = w % blocks;
      if (w == begin || kb == 0) b.pack_problem(n);
      b.key_block(n, kb * kBN);
      if (w + 1 == end || kb + 1 == blocks) {  // the last of problem n's blocks in this range
        if (w - kb >= begin && kb + 1 == blocks) {
          b.write_dq(grad_q + n * a.L * a.E);
        } else {
          parts[t].push_back({n, std::vector<T>(size_t(a.L * a.E))});
          b.write_dq(parts[t].back().dq.data());
        }
      }
    }
  });
  std::vector<int64_t> seen;
  for (const auto& thread_parts : parts)
    for (const Part& part : thread_parts) {
      T* dst = grad_q + part.n * a.L * a.E;
      const bool first = std::find(seen.begin(), seen.end(), part.n) == seen.end();
      if (first) seen.push_back(part.n);
      for (int64_t x = 0; x < a.L * a.E; ++x) dst[x] = (first ? T(0) : dst[x]) + part.dq[size_t(x)];
    }
}

// ---- reference: one problem at a time, the softmax materialised, sums in double

template <class T>
struct Reference {
  const AttentionArgs& a;
  const Dropout drop;
  const int64_t n;
  const T *q, *k, *v;

  Reference(const AttentionArgs& args, int64_t problem)
      : a(args), drop(args), n(problem), q(at<T>(args.q, args.q_off, problem)), k(at<T>(args.k, args.k_off, problem)),
        v(at<T>(args.v, args.v_off, problem)) {}

  double score(int64_t i, int64_t j) const {
    if (a.causal && j > i) return -kInf<double>;
    double s = 0;
    for (int64_t e = 0; e < a.E; ++e) s += double(q[i * a.q_rs + e]) * double(k[j * a.k_rs + e]);
    s *= a.scale;
    if (a.mask_kind == AttentionMask::Float) s += double(at<T>(a.mask, a.mask_off, n)[i * a.mask_rs + j]);
    if (a.mask_kind == AttentionMask::Bool && !at<uint8_t>(a.mask, a.mask_off, n)[i * a.mask_rs + j])
      s = -kInf<double>;
    return s;
  }
  double keep(int64_t i, int64_t j) const {
    return a.dropout_p > 0 ? drop.factor(uint64_t((n * a.S + j) * a.L + i)) : 1.0;
  }
};

// Calls f(n) for every problem, the problems split statically between the threads.
template <class F>
void for_problems(int64_t batch, F&& f) {
  run_parallel(int(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), batch))), [&](int t, int k) {
    for (int64_t n = batch * t / k; n < batch * (t + 1) / k; ++n) f(n);
  });
}

template <class T>
void reference_forward(const AttentionArgs& a) {
  for_problems(a.batch, [&](int64_t n) {
    const Reference<T> r(a, n);
    std::vector<double> s(size_t(a.S)), o(size_t(a.Ev));
    for (int64_t i = 0; i < a.L; ++i) {
      double mx = -kInf<double>, sum = 0;
      for (int64_t j = 0; j < a.S; ++j) mx = std::max(mx, s[size_t(j)] = r.score(i, j));
      std::fill(o.begin(), o.end(), 0.0);
      if (mx > -kInf<double>) {
        for (int64_t j = 0; j < a.S; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] - mx);
        for (int64_t j = 0; j < a.S; ++j)
          for (int64_t d = 0; d < a.Ev; ++d) o[size_t(d)] += s[size_t(j)] / sum * r.keep(i, j) * r.v[j * a.v_rs + d];
      }
      for (int64_t d = 0; d < a.Ev; ++d) static_cast<T*>(a.out)[(n * a.L + i) * a.Ev + d] = T(o[size_t(d)]);
      static_cast<T*>(a.lse)[n * a.L + i] = T(mx > -kInf<double> ? (mx + std::log(sum)) * kLog2e : kInf<double>);
    }
  });
}

template <class T>
void reference_backward(const AttentionArgs& a) {
  const int64_t L = a.L, S = a.S, E = a.E, Ev = a.Ev;
  for_problems(a.batch, [&](int64_t n) {
    const Reference<T> r(a, n);
    const T* go = static_cast<const T*>(a.grad_out) + n * L * Ev;
    const T* o = static_cast<const T*>(a.out) + n * L * Ev;
    const T* lse = static_cast<const T*>(a.lse) + n * L;
    std::vector<double> ds(size_t(L * S)), dq(size_t(L * E)), dk(size_t(S * E)), dv(size_t(S * Ev));
    for (int64_t i = 0; i < L; ++i) {
      double d = 0;
      for (int64_t x = 0; x < Ev; ++x) d += double(go[i * Ev + x]) * double(o[i * Ev + x]);
      for (int64_t j = 0; j < S; ++j) {
        const double p = std::exp2(r.score(i, j) * kLog2e - double(lse[i])), z = r.keep(i, j);
        double dp = 0;
        for (int64_t x = 0; x < Ev; ++x) {
          dp += double(go[i * Ev + x]) * double(r.v[j * a.v_rs + x]);
          dv[size_t(j * Ev + x)] += p * z * double(go[i * Ev + x]);
        }
        ds[size_t(i * S + j)] = p * (dp * z - d);
      }
    }
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < S; ++j)
        for (int64_t e = 0; e < E; ++e) {
          const double g = ds[size_t(i * S + j)] * a.scale;
          dq[size_t(i * E + e)] += g * double(r.k[j * a.k_rs + e]);
          dk[size_t(j * E + e)] += g * double(r.q[i * a.q_rs + e]);
        }
    auto put = [](void* dst, int64_t offset, const std::vector<double>& src) {
      for (size_t x = 0; x < src.size(); ++x) static_cast<T*>(dst)[offset + int64_t(x)] = T(src[x]);
    };
    put(a.grad_q, n * L * E, dq);
    put(a.grad_k, n * S * E, dk);
    put(a.grad_v, n * S * Ev, dv);
    if (a.grad_mask) put(a.grad_mask, n * L * S, ds);
  });
}

template <class T>
const AttentionKernels* attention_set() {
  static const AttentionKernels k = {{&fast_forward<T>, &fast_backward<T>},
                                     {&reference_forward<T>, &reference_backward<T>}};
  return &k;
}

}  // namespace

void fill_attention(KernelSet& set) {
  set.attention[int(DType::Float32)] = attention_set<float>();
  set.attention[int(DType::Float64)] = attention_set<double>();
}

}  // namespace lepton::cpu::LEPTON_ISA
