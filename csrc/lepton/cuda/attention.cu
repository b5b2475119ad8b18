// Scaled dot-product attention on the GPU (the AttentionKernels contract of
// ops/attention_kernels.h), untiled: a block per query row (forward, dQ) or per key row (dK, dV)
// walks the other side in chunks held in shared memory, with an online softmax in the forward.
// No L×S matrix is stored and every sum has a fixed order (no atomics). Arithmetic is in
// compute_t<T> (float for float16/bfloat16). This is the reference the tests compare the
// FlashAttention-2 kernels (flash_attention.cu) against, and the fast path for float32/float64.
#include "lepton/core/error.h"
#include "lepton/cuda/attention.cuh"

namespace lepton::cuda {
namespace {

constexpr int kAttnThreads = 128;
constexpr int kChunk = 256;    // keys (or queries) per pass through shared memory
constexpr int kMaxHead = 256;  // the contract's largest head dim
constexpr int kPerThread = kMaxHead / kAttnThreads;
using Offsets = AttnOffsets;

template <class T>
__device__ __forceinline__ compute_t<T> ld(const T* p) {
  return to_compute(*p);
}

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

// Adds the mask of (i, j) to the scaled score s (-inf where masked out).
template <class T, class C>
__device__ __forceinline__ C masked(const AttentionArgs& a, const Offsets& o, int64_t n, int64_t i, int64_t j, C s) {
  if (a.mask_kind == AttentionMask::Bool) {
    if (!static_cast<const uint8_t*>(a.mask)[o.mask[n] + i * a.mask_rs + j]) return -INFINITY;
  } else if (a.mask_kind == AttentionMask::Float) {
    s += ld(static_cast<const T*>(a.mask) + o.mask[n] + i * a.mask_rs + j);
  }
  return s;
}

// Score (i, j) of problem n, or -inf where masked out.
template <class T, class C>
__device__ __forceinline__ C score(const AttentionArgs& a, const Offsets& o, int64_t n, int64_t i, int64_t j,
                                   const C* q_row) {
  if (a.causal && j > i) return -INFINITY;
  const T* k = static_cast<const T*>(a.k) + o.k[n] + j * a.k_rs;
  C s = 0;
  for (int64_t e = 0; e < a.E; ++e) s += q_row[e] * ld(k + e);
  return masked<T>(a, o, n, i, j, s * C(a.scale));
}

template <class T>
__global__ void __launch_bounds__(kAttnThreads) forward_kernel(AttentionArgs a, Offsets o, AttnDropout drop) {
  using C = compute_t<T>;
  const int64_t n = blockIdx.x / a.L, i = blockIdx.x % a.L;
  __shared__ C q_row[kMaxHead], s[kChunk], scratch[32];
  const T* q = static_cast<const T*>(a.q) + o.q[n] + i * a.q_rs;
  for (int64_t e = threadIdx.x; e < a.E; e += kAttnThreads) q_row[e] = ld(q + e);
  C acc[kPerThread] = {};
  C m = -INFINITY, l = 0;
  for (int64_t j0 = 0; j0 < a.S; j0 += kChunk) {
    const int64_t cn = a.S - j0 < kChunk ? a.S - j0 : kChunk;
    __syncthreads();  // q_row is ready; the previous chunk's weights are consumed
    C local = -INFINITY;
    for (int64_t c = threadIdx.x; c < cn; c += kAttnThreads) {
      s[c] = score<T>(a, o, n, i, j0 + c, q_row);
      local = max(local, s[c]);
    }
    const C m_new = max(m, block_max(local, scratch));
    if (m_new == -INFINITY) continue;  // nothing allowed yet
    const C rescale = exp(m - m_new);
    C part = 0;
    for (int64_t c = threadIdx.x; c < cn; c += kAttnThreads) {
      const C p = exp(s[c] - m_new);
      part += p;
      s[c] = p * drop.factor<C>(n, i, j0 + c, a.L, a.S);  // dropout reaches the values, not the normaliser
    }
    l = l * rescale + block_sum(part, scratch);
    m = m_new;
    __syncthreads();
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t e = threadIdx.x + r * kAttnThreads;
      if (e >= a.Ev) break;
      C sum = 0;
      for (int64_t c = 0; c < cn; ++c) sum += s[c] * ld(static_cast<const T*>(a.v) + o.v[n] + (j0 + c) * a.v_rs + e);
      acc[r] = acc[r] * rescale + sum;
    }
  }
  T* out = static_cast<T*>(a.out) + (n * a.L + i) * a.Ev;
  const bool empty = m == -INFINITY;
  for (int r = 0; r < kPerThread; ++r) {
    const int64_t e = threadIdx.x + r * kAttnThreads;
    if (e < a.Ev) out[e] = from_compute<T>(empty ? C(0) : acc[r] / l);
  }
  if (threadIdx.x == 0) static_cast<C*>(a.lse)[n * a.L + i] = empty ? C(INFINITY) : C((m + log(l)) * kLog2e);
}

// P(i, j) from the saved base-2 logsumexp.
template <class C>
__device__ __forceinline__ C prob(C s, C lse2) {
  return s == -INFINITY || lse2 == C(INFINITY) ? C(0) : exp2(s * C(kLog2e) - lse2);
}

// dQ_i = scale·Σ_j dS_ij k_j with dS_ij = P_ij·(dP_ij - D_i), dP_ij = keep_ij·dO_i·v_j,
// D_i = dO_i·O_i (written to d for the key-side kernel); grad_mask gets dS.
template <class T>
__global__ void __launch_bounds__(kAttnThreads)
    backward_q_kernel(AttentionArgs a, Offsets o, AttnDropout drop, compute_t<T>* d) {
  using C = compute_t<T>;
  const int64_t n = blockIdx.x / a.L, i = blockIdx.x % a.L, row = n * a.L + i;
  __shared__ C q_row[kMaxHead], go_row[kMaxHead], ds[kChunk], scratch[32];
  const T* q = static_cast<const T*>(a.q) + o.q[n] + i * a.q_rs;
  const T* go = static_cast<const T*>(a.grad_out) + row * a.Ev;
  const T* out = static_cast<const T*>(a.out) + row * a.Ev;
  C part = 0;
  for (int64_t e = threadIdx.x; e < a.E; e += kAttnThreads) q_row[e] = ld(q + e);
  for (int64_t e = threadIdx.x; e < a.Ev; e += kAttnThreads) {
    go_row[e] = ld(go + e);
    part += go_row[e] * ld(out + e);
  }
  const C D = block_sum(part, scratch);
  if (threadIdx.x == 0) d[row] = D;
  const C lse2 = static_cast<const C*>(a.lse)[row];
  C acc[kPerThread] = {};
  for (int64_t j0 = 0; j0 < a.S; j0 += kChunk) {
    const int64_t cn = a.S - j0 < kChunk ? a.S - j0 : kChunk;
    __syncthreads();
    for (int64_t c = threadIdx.x; c < cn; c += kAttnThreads) {
      const int64_t j = j0 + c;
      const C p = prob(score<T>(a, o, n, i, j, q_row), lse2);
      C dp = 0;
      if (p != C(0)) {
        const T* v = static_cast<const T*>(a.v) + o.v[n] + j * a.v_rs;
        for (int64_t e = 0; e < a.Ev; ++e) dp += go_row[e] * ld(v + e);
        dp *= drop.factor<C>(n, i, j, a.L, a.S);
      }
      ds[c] = p * (dp - D);
      if (a.grad_mask) static_cast<T*>(a.grad_mask)[row * a.S + j] = from_compute<T>(ds[c]);
    }
    __syncthreads();
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t e = threadIdx.x + r * kAttnThreads;
      if (e >= a.E) break;
      C sum = 0;
      for (int64_t c = 0; c < cn; ++c) sum += ds[c] * ld(static_cast<const T*>(a.k) + o.k[n] + (j0 + c) * a.k_rs + e);
      acc[r] += sum;
    }
  }
  T* gq = static_cast<T*>(a.grad_q) + row * a.E;
  for (int r = 0; r < kPerThread; ++r) {
    const int64_t e = threadIdx.x + r * kAttnThreads;
    if (e < a.E) gq[e] = from_compute<T>(acc[r] * C(a.scale));
  }
}

// dV_j = Σ_i keep_ij·P_ij·dO_i and dK_j = scale·Σ_i dS_ij q_i, a block per key row.
template <class T>
__global__ void __launch_bounds__(kAttnThreads)
    backward_kv_kernel(AttentionArgs a, Offsets o, AttnDropout drop, const compute_t<T>* d) {
  using C = compute_t<T>;
  const int64_t n = blockIdx.x / a.S, j = blockIdx.x % a.S;
  __shared__ C k_row[kMaxHead], v_row[kMaxHead], pk[kChunk], ds[kChunk];
  const T* k = static_cast<const T*>(a.k) + o.k[n] + j * a.k_rs;
  const T* v = static_cast<const T*>(a.v) + o.v[n] + j * a.v_rs;
  for (int64_t e = threadIdx.x; e < a.E; e += kAttnThreads) k_row[e] = ld(k + e);
  for (int64_t e = threadIdx.x; e < a.Ev; e += kAttnThreads) v_row[e] = ld(v + e);
  C dk[kPerThread] = {}, dv[kPerThread] = {};
  for (int64_t i0 = 0; i0 < a.L; i0 += kChunk) {
    const int64_t cn = a.L - i0 < kChunk ? a.L - i0 : kChunk;
    __syncthreads();
    for (int64_t c = threadIdx.x; c < cn; c += kAttnThreads) {
      const int64_t i = i0 + c, row = n * a.L + i;
      const T* q = static_cast<const T*>(a.q) + o.q[n] + i * a.q_rs;
      // the score of (i, j) computed from this side: q_i · k_j with k_j from shared memory
      C s = -INFINITY;
      if (!(a.causal && j > i)) {
        s = 0;
        for (int64_t e = 0; e < a.E; ++e) s += ld(q + e) * k_row[e];
        s = masked<T>(a, o, n, i, j, s * C(a.scale));
      }
      const C p = prob(s, static_cast<const C*>(a.lse)[row]);
      C dp = 0;
      const C kp = p != C(0) ? drop.factor<C>(n, i, j, a.L, a.S) : C(0);
      if (p != C(0)) {
        const T* go = static_cast<const T*>(a.grad_out) + row * a.Ev;
        for (int64_t e = 0; e < a.Ev; ++e) dp += ld(go + e) * v_row[e];
        dp *= kp;
      }
      pk[c] = p * kp;
      ds[c] = p * (dp - d[row]);
    }
    __syncthreads();
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t e = threadIdx.x + r * kAttnThreads;
      if (e < a.Ev) {
        C sum = 0;
        const T* go = static_cast<const T*>(a.grad_out) + (n * a.L + i0) * a.Ev + e;
        for (int64_t c = 0; c < cn; ++c) sum += pk[c] * ld(go + c * a.Ev);
        dv[r] += sum;
      }
      if (e < a.E) {
        C sum = 0;
        for (int64_t c = 0; c < cn; ++c) sum += ds[c] * ld(static_cast<const T*>(a.q) + o.q[n] + (i0 + c) * a.q_rs + e);
        dk[r] += sum;
      }
    }
  }
  T* gk = static_cast<T*>(a.grad_k) + (n * a.S + j) * a.E;
  T* gv = static_cast<T*>(a.grad_v) + (n * a.S + j) * a.Ev;
  for (int r = 0; r < kPerThread; ++r) {
    const int64_t e = threadIdx.x + r * kAttnThreads;
    if (e < a.E) gk[e] = from_compute<T>(dk[r] * C(a.scale));
    if (e < a.Ev) gv[e] = from_compute<T>(dv[r]);
  }
}

void check_dims(const AttentionArgs& a) {
  LEPTON_CHECK(a.E <= kMaxHead && a.Ev <= kMaxHead, Value, "scaled_dot_product_attention: head dims up to ",
               kMaxHead, " on CUDA, got ", a.E, " and ", a.Ev);
}

template <class T>
void forward(const AttentionArgs& a) {
  check_dims(a);
  if (a.batch * a.L == 0) return;
  AttnDeviceOffsets o(a);
  forward_kernel<T><<<unsigned(a.batch * a.L), kAttnThreads, 0, current_stream()>>>(a, o.offsets, AttnDropout(a));
  check_launch("attention kernel");
}

template <class T>
void backward(const AttentionArgs& a) {
  using C = compute_t<T>;
  check_dims(a);
  if (a.batch == 0) return;
  AttnDeviceOffsets o(a);
  Workspace d(size_t(a.batch * a.L + 1) * sizeof(C));
  if (a.L > 0) {
    backward_q_kernel<T><<<unsigned(a.batch * a.L), kAttnThreads, 0, current_stream()>>>(a, o.offsets, AttnDropout(a),
                                                                                         static_cast<C*>(d.get()));
    check_launch("attention backward (queries) kernel");
  }
  if (a.S > 0) {
    backward_kv_kernel<T><<<unsigned(a.batch * a.S), kAttnThreads, 0, current_stream()>>>(
        a, o.offsets, AttnDropout(a), static_cast<const C*>(d.get()));
    check_launch("attention backward (keys) kernel");
  }
}

// float16/bfloat16 run the tensor-core kernels, falling back to these where the GPU lacks them.
template <class T>
void flash_forward_or_reference(const AttentionArgs& a) {
  check_dims(a);
  flash_forward<T>(a, &forward<T>);
}
template <class T>
void flash_backward_or_reference(const AttentionArgs& a) {
  check_dims(a);
  flash_backward<T>(a, &backward<T>);
}

template <class T>
constexpr AttentionKernels kKernels = {{&forward<T>, &backward<T>}, {&forward<T>, &backward<T>}};
template <class T>
constexpr AttentionKernels kTensorCoreKernels = {{&flash_forward_or_reference<T>, &flash_backward_or_reference<T>},
                                                 {&forward<T>, &backward<T>}};

[[maybe_unused]] const bool kRegistered = [] {
  attention_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  attention_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  attention_kernels.set(DeviceType::CUDA, DType::Float16, &kTensorCoreKernels<Half>);
  attention_kernels.set(DeviceType::CUDA, DType::BFloat16, &kTensorCoreKernels<BFloat16>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
