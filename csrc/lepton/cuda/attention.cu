// Scaled dot-product attention on the GPU (the AttentionKernels contract of
// ops/attention_kernels.h), correct but not yet fast: a block per query row (forward, dQ) or
// per key row (dK, dV) walks the other side in chunks held in shared memory, with an online
// softmax in the forward. No L×S matrix is stored and every sum has a fixed order (no
// atomics). The tiled tensor-core version is the next step (CUDA kernels II).
#include <vector>

#include "lepton/core/error.h"
#include "lepton/core/philox.h"
#include "lepton/cuda/common.cuh"
#include "lepton/ops/attention_kernels.h"

namespace lepton::cuda {
namespace {

constexpr int kAttnThreads = 128;
constexpr int kChunk = 256;    // keys (or queries) per pass through shared memory
constexpr int kMaxHead = 256;  // the contract's largest head dim
constexpr int kPerThread = kMaxHead / kAttnThreads;
constexpr double kLog2e = 1.4426950408889634;

// The per-problem offsets live on the host in the contract; the kernels get device copies.
struct Offsets {
  const int64_t *q, *k, *v, *mask;
};

template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  T s = 0;
  for (int w = 0; w < kAttnThreads / 32; ++w) s += scratch[w];
  return s;
}

template <class T>
__device__ __forceinline__ T block_max(T v, T* scratch) {
  for (int o = 16; o > 0; o /= 2) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  T m = scratch[0];
  for (int w = 1; w < kAttnThreads / 32; ++w) m = max(m, scratch[w]);
  return m;
}

// Score (i, j) of problem n, or -inf where masked out.
template <class T>
__device__ __forceinline__ T score(const AttentionArgs& a, const Offsets& o, int64_t n, int64_t i, int64_t j,
                                   const T* q_row) {
  if (a.causal && j > i) return -INFINITY;
  const T* k = static_cast<const T*>(a.k) + o.k[n] + j * a.k_rs;
  T s = 0;
  for (int64_t e = 0; e < a.E; ++e) s += q_row[e] * k[e];
  s *= T(a.scale);
  if (a.mask_kind == AttentionMask::Bool) {
    if (!static_cast<const uint8_t*>(a.mask)[o.mask[n] + i * a.mask_rs + j]) return -INFINITY;
  } else if (a.mask_kind == AttentionMask::Float) {
    s += static_cast<const T*>(a.mask)[o.mask[n] + i * a.mask_rs + j];
  }
  return s;
}

// The dropout factor of weight (n, i, j): 0 or 1/(1-p).
template <class T>
__device__ __forceinline__ T keep(const AttentionArgs& a, int64_t n, int64_t i, int64_t j) {
  if (a.dropout_p <= 0) return T(1);
  if (a.dropout_p >= 1) return T(0);
  const uint64_t w = (uint64_t(n) * a.S + j) * a.L + i;
  const uint32_t word = philox(a.dropout_seed, w / 4).v[w % 4];
  return word >= uint32_t(a.dropout_p * 4294967296.0) ? T(1 / (1 - a.dropout_p)) : T(0);
}

template <class T>
__global__ void __launch_bounds__(kAttnThreads) forward_kernel(AttentionArgs a, Offsets o) {
  const int64_t n = blockIdx.x / a.L, i = blockIdx.x % a.L;
  __shared__ T q_row[kMaxHead], s[kChunk], scratch[32];
  const T* q = static_cast<const T*>(a.q) + o.q[n] + i * a.q_rs;
  for (int64_t e = threadIdx.x; e < a.E; e += kAttnThreads) q_row[e] = q[e];
  T acc[kPerThread] = {};
  T m = -INFINITY, l = 0;
  for (int64_t j0 = 0; j0 < a.S; j0 += kChunk) {
    const int64_t cn = a.S - j0 < kChunk ? a.S - j0 : kChunk;
    __syncthreads();  // q_row is ready; the previous chunk's weights are consumed
    T local = -INFINITY;
    for (int64_t c = threadIdx.x; c < cn; c += kAttnThreads) {
      s[c] = score(a, o, n, i, j0 + c, q_row);
      local = max(local, s[c]);
    }
    const T m_new = max(m, block_max(local, scratch));
    if (m_new == -INFINITY) continue;  // nothing allowed yet
    const T rescale = exp(m - m_new);
    T part = 0;
    for (int64_t c = threadIdx.x; c < cn; c += kAttnThreads) {
      const T p = exp(s[c] - m_new);
      part += p;
      s[c] = p * keep<T>(a, n, i, j0 + c);  // dropout reaches the values, not the normaliser
    }
    l = l * rescale + block_sum(part, scratch);
    m = m_new;
    __syncthreads();
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t e = threadIdx.x + r * kAttnThreads;
      if (e >= a.Ev) break;
      T sum = 0;
      for (int64_t c = 0; c < cn; ++c) sum += s[c] * static_cast<const T*>(a.v)[o.v[n] + (j0 + c) * a.v_rs + e];
      acc[r] = acc[r] * rescale + sum;
    }
  }
  T* out = static_cast<T*>(a.out) + (n * a.L + i) * a.Ev;
  const bool empty = m == -INFINITY;
  for (int r = 0; r < kPerThread; ++r) {
    const int64_t e = threadIdx.x + r * kAttnThreads;
    if (e < a.Ev) out[e] = empty ? T(0) : acc[r] / l;
  }
  if (threadIdx.x == 0) static_cast<T*>(a.lse)[n * a.L + i] = empty ? T(INFINITY) : T((m + log(l)) * kLog2e);
}

// P(i, j) from the saved base-2 logsumexp.
template <class T>
__device__ __forceinline__ T prob(T s, T lse2) {
  return s == -INFINITY || lse2 == T(INFINITY) ? T(0) : exp2(s * T(kLog2e) - lse2);
}

// dQ_i = scale·Σ_j dS_ij k_j with dS_ij = P_ij·(dP_ij - D_i), dP_ij = keep_ij·dO_i·v_j,
// D_i = dO_i·O_i (written to d for the key-side kernel); grad_mask gets dS.
template <class T>
__global__ void __launch_bounds__(kAttnThreads) backward_q_kernel(AttentionArgs a, Offsets o, T* d) {
  const int64_t n = blockIdx.x / a.L, i = blockIdx.x % a.L, row = n * a.L + i;
  __shared__ T q_row[kMaxHead], go_row[kMaxHead], ds[kChunk], scratch[32];
  const T* q = static_cast<const T*>(a.q) + o.q[n] + i * a.q_rs;
  const T* go = static_cast<const T*>(a.grad_out) + row * a.Ev;
  const T* out = static_cast<const T*>(a.out) + row * a.Ev;
  T part = 0;
  for (int64_t e = threadIdx.x; e < a.E; e += kAttnThreads) q_row[e] = q[e];
  for (int64_t e = threadIdx.x; e < a.Ev; e += kAttnThreads) {
    go_row[e] = go[e];
    part += go[e] * out[e];
  }
  const T D = block_sum(part, scratch);
  if (threadIdx.x == 0) d[row] = D;
  const T lse2 = static_cast<const T*>(a.lse)[row];
  T acc[kPerThread] = {};
  for (int64_t j0 = 0; j0 < a.S; j0 += kChunk) {
    const int64_t cn = a.S - j0 < kChunk ? a.S - j0 : kChunk;
    __syncthreads();
    for (int64_t c = threadIdx.x; c < cn; c += kAttnThreads) {
      const int64_t j = j0 + c;
      const T p = prob(score(a, o, n, i, j, q_row), lse2);
      T dp = 0;
      if (p != T(0)) {
        const T* v = static_cast<const T*>(a.v) + o.v[n] + j * a.v_rs;
        for (int64_t e = 0; e < a.Ev; ++e) dp += go_row[e] * v[e];
        dp *= keep<T>(a, n, i, j);
      }
      ds[c] = p * (dp - D);
      if (a.grad_mask) static_cast<T*>(a.grad_mask)[row * a.S + j] = ds[c];
    }
    __syncthreads();
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t e = threadIdx.x + r * kAttnThreads;
      if (e >= a.E) break;
      T sum = 0;
      for (int64_t c = 0; c < cn; ++c) sum += ds[c] * static_cast<const T*>(a.k)[o.k[n] + (j0 + c) * a.k_rs + e];
      acc[r] += sum;
    }
  }
  T* gq = static_cast<T*>(a.grad_q) + row * a.E;
  for (int r = 0; r < kPerThread; ++r) {
    const int64_t e = threadIdx.x + r * kAttnThreads;
    if (e < a.E) gq[e] = acc[r] * T(a.scale);
  }
}

// dV_j = Σ_i keep_ij·P_ij·dO_i and dK_j = scale·Σ_i dS_ij q_i, a block per key row.
template <class T>
__global__ void __launch_bounds__(kAttnThreads) backward_kv_kernel(AttentionArgs a, Offsets o, const T* d) {
  const int64_t n = blockIdx.x / a.S, j = blockIdx.x % a.S;
  __shared__ T k_row[kMaxHead], v_row[kMaxHead], pk[kChunk], ds[kChunk];
  const T* k = static_cast<const T*>(a.k) + o.k[n] + j * a.k_rs;
  const T* v = static_cast<const T*>(a.v) + o.v[n] + j * a.v_rs;
  for (int64_t e = threadIdx.x; e < a.E; e += kAttnThreads) k_row[e] = k[e];
  for (int64_t e = threadIdx.x; e < a.Ev; e += kAttnThreads) v_row[e] = v[e];
  T dk[kPerThread] = {}, dv[kPerThread] = {};
  for (int64_t i0 = 0; i0 < a.L; i0 += kChunk) {
    const int64_t cn = a.L - i0 < kChunk ? a.L - i0 : kChunk;
    __syncthreads();
    for (int64_t c = threadIdx.x; c < cn; c += kAttnThreads) {
      const int64_t i = i0 + c, row = n * a.L + i;
      const T* q = static_cast<const T*>(a.q) + o.q[n] + i * a.q_rs;
      // the score of (i, j) computed from this side: q_i · k_j with k_j from shared memory
      T s = -INFINITY;
      if (!(a.causal && j > i)) {
        s = 0;
        for (int64_t e = 0; e < a.E; ++e) s += q[e] * k_row[e];
        s *= T(a.scale);
        if (a.mask_kind == AttentionMask::Bool) {
          if (!static_cast<const uint8_t*>(a.mask)[o.mask[n] + i * a.mask_rs + j]) s = -INFINITY;
        } else if (a.mask_kind == AttentionMask::Float) {
          s += static_cast<const T*>(a.mask)[o.mask[n] + i * a.mask_rs + j];
        }
      }
      const T p = prob(s, static_cast<const T*>(a.lse)[row]);
      T dp = 0;
      const T kp = p != T(0) ? keep<T>(a, n, i, j) : T(0);
      if (p != T(0)) {
        const T* go = static_cast<const T*>(a.grad_out) + row * a.Ev;
        for (int64_t e = 0; e < a.Ev; ++e) dp += go[e] * v_row[e];
        dp *= kp;
      }
      pk[c] = p * kp;
      ds[c] = p * (dp - d[row]);
    }
    __syncthreads();
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t e = threadIdx.x + r * kAttnThreads;
      if (e < a.Ev) {
        T sum = 0;
        for (int64_t c = 0; c < cn; ++c) sum += pk[c] * static_cast<const T*>(a.grad_out)[(n * a.L + i0 + c) * a.Ev + e];
        dv[r] += sum;
      }
      if (e < a.E) {
        T sum = 0;
        for (int64_t c = 0; c < cn; ++c) sum += ds[c] * static_cast<const T*>(a.q)[o.q[n] + (i0 + c) * a.q_rs + e];
        dk[r] += sum;
      }
    }
  }
  T* gk = static_cast<T*>(a.grad_k) + (n * a.S + j) * a.E;
  T* gv = static_cast<T*>(a.grad_v) + (n * a.S + j) * a.Ev;
  for (int r = 0; r < kPerThread; ++r) {
    const int64_t e = threadIdx.x + r * kAttnThreads;
    if (e < a.E) gk[e] = dk[r] * T(a.scale);
    if (e < a.Ev) gv[e] = dv[r];
  }
}

// Device copies of the four offset arrays (mask's only when there is a mask).
class DeviceOffsets {
 public:
  explicit DeviceOffsets(const AttentionArgs& a) : buf_(size_t(4 * a.batch) * sizeof(int64_t)) {
    std::vector<int64_t> host(size_t(4 * a.batch), 0);
    for (int64_t n = 0; n < a.batch; ++n) {
      host[n] = a.q_off[n];
      host[a.batch + n] = a.k_off[n];
      host[2 * a.batch + n] = a.v_off[n];
      host[3 * a.batch + n] = a.mask_off ? a.mask_off[n] : 0;
    }
    copy_and_wait(buf_.get(), host.data(), host.size() * sizeof(int64_t), cudaMemcpyHostToDevice, "attention offsets");
    const int64_t* p = static_cast<const int64_t*>(buf_.get());
    offsets = {p, p + a.batch, p + 2 * a.batch, p + 3 * a.batch};
  }
  Offsets offsets;

 private:
  Workspace buf_;
};

void check_dims(const AttentionArgs& a) {
  LEPTON_CHECK(a.E <= kMaxHead && a.Ev <= kMaxHead, Value, "scaled_dot_product_attention: head dims up to ",
               kMaxHead, " on CUDA, got ", a.E, " and ", a.Ev);
}

template <class T>
void forward(const AttentionArgs& a) {
  check_dims(a);
  if (a.batch * a.L == 0) return;
  DeviceOffsets o(a);
  forward_kernel<T><<<unsigned(a.batch * a.L), kAttnThreads, 0, current_stream()>>>(a, o.offsets);
  check_launch("attention kernel");
}

template <class T>
void backward(const AttentionArgs& a) {
  check_dims(a);
  if (a.batch == 0) return;
  DeviceOffsets o(a);
  Workspace d(size_t(a.batch * a.L + 1) * sizeof(T));
  if (a.L > 0) {
    backward_q_kernel<T><<<unsigned(a.batch * a.L), kAttnThreads, 0, current_stream()>>>(a, o.offsets, static_cast<T*>(d.get()));
    check_launch("attention backward (queries) kernel");
  }
  if (a.S > 0) {
    backward_kv_kernel<T><<<unsigned(a.batch * a.S), kAttnThreads, 0, current_stream()>>>(a, o.offsets, static_cast<const T*>(d.get()));
    check_launch("attention backward (keys) kernel");
  }
}

template <class T>
constexpr AttentionKernels kKernels = {{&forward<T>, &backward<T>}, {&forward<T>, &backward<T>}};

[[maybe_unused]] const bool kRegistered = [] {
  attention_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  attention_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
