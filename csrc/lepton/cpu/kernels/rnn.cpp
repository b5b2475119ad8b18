// Fused LSTM and GRU cells (ops/rnn_kernels.h): one pass over a step's [batch, hidden] block,
// vectorised along hidden with vecmath.h's float32 sigmoid/tanh (libm for float64), rows split
// over threads only when a step is big enough to pay for a parallel region. A scalar reference
// loop with libm beside each, for tests.
#include "lepton/cpu/kernels/vecmath.h"
#include "lepton/ops/rnn_kernels.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

LEPTON_SIMD_INLINE float m_sigmoid(float x) { return vsigmoid(x); }
LEPTON_SIMD_INLINE double m_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
LEPTON_SIMD_INLINE float m_tanh(float x) { return vtanh(x); }
LEPTON_SIMD_INLINE double m_tanh(double x) { return std::tanh(x); }

template <class T> T ref_sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// Calls row(b) for every batch row, over threads when the block has kParallelGrain elements.
template <class F>
void for_rows(int64_t batch, int64_t row_elems, F&& row) {
  const int64_t grain = row_elems >= kParallelGrain ? 1 : kParallelGrain / (row_elems ? row_elems : 1);
  parallel_range(batch, grain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) row(b);
  });
}

// ---- LSTM ---------------------------------------------------------------------------------

template <class T, bool Fast>
void lstm_forward(const LstmCellArgs& a) {
  const int64_t H = a.hidden;
  for_rows(a.batch, 4 * H, [&](int64_t b) {
    const T* g = reinterpret_cast<const T*>(a.gates) + b * a.gates_ld;
    const T* c = reinterpret_cast<const T*>(a.c) + b * H;
    T* h = reinterpret_cast<T*>(a.h) + b * H;
    T* cy = reinterpret_cast<T*>(a.c_out) + b * H;
    T* act = a.act ? reinterpret_cast<T*>(a.act) + b * 4 * H : nullptr;
    if constexpr (Fast) {
      T* ai = act, *af = act + H, *ag = act + 2 * H, *ao = act + 3 * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T i = m_sigmoid(g[j]), f = m_sigmoid(g[H + j]), gg = m_tanh(g[2 * H + j]), o = m_sigmoid(g[3 * H + j]);
        const T cn = f * c[j] + i * gg;
        cy[j] = cn;
        h[j] = o * m_tanh(cn);
        if (act) ai[j] = i, af[j] = f, ag[j] = gg, ao[j] = o;
      }
    } else {
      for (int64_t j = 0; j < H; ++j) {
        const T i = ref_sigmoid(g[j]), f = ref_sigmoid(g[H + j]), gg = std::tanh(g[2 * H + j]);
        const T o = ref_sigmoid(g[3 * H + j]);
        cy[j] = f * c[j] + i * gg;
        h[j] = o * std::tanh(cy[j]);
        if (act) act[j] = i, act[H + j] = f, act[2 * H + j] = gg, act[3 * H + j] = o;
      }
    }
  });
}

// tanh(c') is recomputed from c' rather than stored: one tanh per element is cheaper than
// another [batch, hidden] tensor per step kept alive until the backward.
template <class T, bool Fast>
void lstm_backward(const LstmCellArgs& a) {
  const int64_t H = a.hidden;
  for_rows(a.batch, 4 * H, [&](int64_t b) {
    const T* act = reinterpret_cast<const T*>(a.act) + b * 4 * H;
    const T* c = reinterpret_cast<const T*>(a.c) + b * H;
    const T* cy = reinterpret_cast<const T*>(a.c_out) + b * H;
    const T* gh = a.grad_h ? reinterpret_cast<const T*>(a.grad_h) + b * H : nullptr;
    const T* gc = a.grad_c ? reinterpret_cast<const T*>(a.grad_c) + b * H : nullptr;
    T* dg = reinterpret_cast<T*>(a.grad_gates) + b * 4 * H;
    T* dc = reinterpret_cast<T*>(a.grad_c_prev) + b * H;
    const T* ai = act, *af = act + H, *ag = act + 2 * H, *ao = act + 3 * H;
    auto body = [&](int64_t j, T tc) LEPTON_SIMD_INLINE_LAMBDA {
      const T dh = gh ? gh[j] : T(0);
      const T i = ai[j], f = af[j], g = ag[j], o = ao[j];
      const T dcy = (gc ? gc[j] : T(0)) + dh * o * (T(1) - tc * tc);
      dg[j] = dcy * g * i * (T(1) - i);
      dg[H + j] = dcy * c[j] * f * (T(1) - f);
      dg[2 * H + j] = dcy * i * (T(1) - g * g);
      dg[3 * H + j] = dh * tc * o * (T(1) - o);
      dc[j] = dcy * f;
    };
    if constexpr (Fast) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) body(j, m_tanh(cy[j]));
    } else {
      for (int64_t j = 0; j < H; ++j) body(j, std::tanh(cy[j]));
    }
  });
}

// ---- GRU ----------------------------------------------------------------------------------

template <class T, bool Fast>
void gru_forward(const GruCellArgs& a) {
  const int64_t H = a.hidden;
  for_rows(a.batch, 3 * H, [&](int64_t b) {
    const T* x = reinterpret_cast<const T*>(a.x_gates) + b * a.x_ld;
    const T* hg = reinterpret_cast<const T*>(a.h_gates) + b * a.h_ld;
    const T* h = reinterpret_cast<const T*>(a.h) + b * H;
    T* hy = reinterpret_cast<T*>(a.h_out) + b * H;
    T* s = a.saved ? reinterpret_cast<T*>(a.saved) + b * 4 * H : nullptr;
    auto body = [&](int64_t j, T r, T z) LEPTON_SIMD_INLINE_LAMBDA {
      const T hn = hg[2 * H + j];
      const T n = Fast ? m_tanh(x[2 * H + j] + r * hn) : std::tanh(x[2 * H + j] + r * hn);
      hy[j] = n + z * (h[j] - n);
      if (s) s[j] = r, s[H + j] = z, s[2 * H + j] = n, s[3 * H + j] = hn;
    };
    if constexpr (Fast) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) body(j, m_sigmoid(x[j] + hg[j]), m_sigmoid(x[H + j] + hg[H + j]));
    } else {
      for (int64_t j = 0; j < H; ++j) body(j, ref_sigmoid(x[j] + hg[j]), ref_sigmoid(x[H + j] + hg[H + j]));
    }
  });
}

// Purely arithmetic (saved holds the activations), so the fast and reference versions differ
// only in vectorisation.
template <class T, bool Fast>
void gru_backward(const GruCellArgs& a) {
  const int64_t H = a.hidden;
  for_rows(a.batch, 3 * H, [&](int64_t b) {
    const T* s = reinterpret_cast<const T*>(a.saved) + b * 4 * H;
    const T* h = reinterpret_cast<const T*>(a.h) + b * H;
    const T* gy = reinterpret_cast<const T*>(a.grad_h_out) + b * H;
    T* dx = reinterpret_cast<T*>(a.grad_x_gates) + b * 3 * H;
    T* dhg = reinterpret_cast<T*>(a.grad_h_gates) + b * 3 * H;
    T* dh = reinterpret_cast<T*>(a.grad_h) + b * H;
    auto body = [&](int64_t j) LEPTON_SIMD_INLINE_LAMBDA {
      const T r = s[j], z = s[H + j], n = s[2 * H + j], hn = s[3 * H + j], g = gy[j];
      const T dn = g * (T(1) - z) * (T(1) - n * n);
      const T dz = g * (h[j] - n) * z * (T(1) - z);
      const T dr = dn * hn * r * (T(1) - r);
      dx[j] = dr, dx[H + j] = dz, dx[2 * H + j] = dn;
      dhg[j] = dr, dhg[H + j] = dz, dhg[2 * H + j] = dn * r;
      dh[j] = g * z;
    };
    if constexpr (Fast) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) body(j);
    } else {
      for (int64_t j = 0; j < H; ++j) body(j);
    }
  });
}

template <class T, bool Fast>
const RnnCellKernels* rnn_cell_set() {
  static const RnnCellKernels k = {&lstm_forward<T, Fast>, &lstm_backward<T, Fast>, &gru_forward<T, Fast>,
                                   &gru_backward<T, Fast>, Fast ? rnn_cell_set<T, false>() : nullptr};
  return &k;
}

}  // namespace

void fill_rnn(KernelSet& set) {
  set.rnn_cell[int(DType::Float32)] = rnn_cell_set<float, true>();
  set.rnn_cell[int(DType::Float64)] = rnn_cell_set<double, true>();
}

}  // namespace lepton::cpu::LEPTON_ISA
