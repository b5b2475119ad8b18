// GEMM on the GPU, C = act(alpha·A·B + beta·C + bias) (the GemmArgs contract of ops/kernels.h):
// - float32/float64 on the SIMT cores: 128×128 block tiles staged through shared memory, each
//   thread an 8×8 register tile, the next K slice loaded into registers while the current one
//   is multiplied (double buffering);
// - float16/bfloat16 on the tensor cores: mma.sync m16n8k16 fed by ldmatrix, float32
//   accumulation, a 3-stage cp.async pipeline for operands that are contiguous along K (the
//   Linear layer's x·Wᵀ), plain loads into the same pipeline for any other strides.
// Tiles at the edges are zero-filled on load and bounds-checked on store, so any M, N, K works.
#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"
#include "lepton/cuda/mma.cuh"

namespace lepton::cuda {
namespace {

template <class C>
__device__ __forceinline__ C activate(C x, Activation act) {
  if (act == Activation::Relu) return x < C(0) ? C(0) : x;  // NaN stays NaN
  if (act == Activation::Gelu) return C(0.5) * x * (C(1) + erf(x * C(0.70710678118654752440)));
  return x;
}

// Writes element (i, j) of batch C once its dot product `acc` is complete.
template <class T, class C>
__device__ __forceinline__ void store_c(const GemmArgs& g, T* c, const T* bias, int64_t i, int64_t j, C acc) {
  if (i >= g.m || j >= g.n) return;
  C v = C(g.alpha) * acc;
  T* out = c + i * g.c_rs + j;
  if (g.beta != 0) v += C(g.beta) * C(to_compute(*out));
  if (bias) v += C(to_compute(bias[j]));
  *out = from_compute<T>(activate(v, g.act));
}

// ---------------------------------------------------------------------------------------------
// SIMT kernel (float32, float64)

constexpr int kBM = 128, kBN = 128, kBK = 8, kSimtThreads = 256;
constexpr int kPadS = 4;  // shared rows padded so that transposing stores hit distinct banks

template <class T>
__global__ void __launch_bounds__(kSimtThreads) gemm_simt(GemmArgs g, int64_t batch0) {
  const int64_t bz = batch0 + blockIdx.z;
  const T* A = static_cast<const T*>(g.a) + bz * g.a_bs;
  const T* B = static_cast<const T*>(g.b) + bz * g.b_bs;
  T* C = static_cast<T*>(g.c) + bz * g.c_bs;
  const T* bias = static_cast<const T*>(g.bias);
  const int64_t m0 = int64_t(blockIdx.y) * kBM, n0 = int64_t(blockIdx.x) * kBN;

  __shared__ __align__(16) T As[2][kBK][kBM + kPadS];
  __shared__ __align__(16) T Bs[2][kBK][kBN + kPadS];
  const int tid = threadIdx.x;
  // Each thread moves 4 elements of each tile; consecutive threads walk the operand's unit
  // stride so that a warp's loads coalesce.
  const bool a_k_unit = g.a_cs == 1, b_n_unit = g.b_cs == 1;
  T ra[4], rb[4];
  auto load = [&](int64_t k0) {
    for (int r = 0; r < 4; ++r) {
      const int e = tid + r * kSimtThreads;
      const int mm = a_k_unit ? e / kBK : e % kBM, ka = a_k_unit ? e % kBK : e / kBM;
      const int64_t gm = m0 + mm, gka = k0 + ka;
      ra[r] = gm < g.m && gka < g.k ? A[gm * g.a_rs + gka * g.a_cs] : T(0);
      const int nn = b_n_unit ? e % kBN : e / kBK, kb = b_n_unit ? e / kBN : e % kBK;
      const int64_t gn = n0 + nn, gkb = k0 + kb;
      rb[r] = gn < g.n && gkb < g.k ? B[gkb * g.b_rs + gn * g.b_cs] : T(0);
    }
  };
  auto stash = [&](int buf) {
    for (int r = 0; r < 4; ++r) {
      const int e = tid + r * kSimtThreads;
      As[buf][a_k_unit ? e % kBK : e / kBM][a_k_unit ? e / kBK : e % kBM] = ra[r];
      Bs[buf][b_n_unit ? e / kBN : e % kBK][b_n_unit ? e % kBN : e / kBK] = rb[r];
    }
  };

  // Thread (tx, ty) owns rows ty*4+{0..3} and 64+ty*4+{0..3}, and the same pattern of columns:
  // a warp's shared reads are then broadcasts or conflict-free.
  const int tx = tid % 16, ty = tid / 16;
  T acc[8][8] = {};
  load(0);
  stash(0);
  __syncthreads();
  for (int64_t k0 = 0, step = 0; k0 < g.k; k0 += kBK, ++step) {
    const int cur = int(step & 1);
    const bool more = k0 + kBK < g.k;
    if (more) load(k0 + kBK);
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      T a[8], b[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = As[cur][kk][ty * 4 + i];
        a[4 + i] = As[cur][kk][64 + ty * 4 + i];
        b[i] = Bs[cur][kk][tx * 4 + i];
        b[4 + i] = Bs[cur][kk][64 + tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] += a[i] * b[j];
    }
    if (more) stash(cur ^ 1);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
      store_c(g, C, bias, m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4),
              n0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4), acc[i][j]);
}

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel (float16, bfloat16)

constexpr int kTBM = 128, kTBN = kTBM, kTBK = 32, kStages = 3, kTcThreads = 256;  // load_tile assumes kTBN == kTBM
constexpr int kLd = kTBK + 8;  // 80-byte shared rows: ldmatrix's 8 row reads hit distinct banks
constexpr int kStageElems = (kTBM + kTBN) * kLd;
constexpr size_t kTcSmemBytes = size_t(kStages) * kStageElems * sizeof(uint16_t);

// One operand's tile of a stage, [kTBM rows][kTBK] with K contiguous: A's rows are M, B's
// are N (the operand layouts mma's row.col form expects). Element (r, k) of the operand is at
// p[r·rs + k·ks]; rows past `rows` and k past K read as 0.
template <bool kAsync>
__device__ __forceinline__ void load_tile(uint16_t* tile, const uint16_t* p, int64_t rs, int64_t ks, int64_t rows,
                                          int64_t K, int64_t r0, int64_t k0) {
  const int tid = threadIdx.x;
  if constexpr (kAsync) {  // ks == 1: 128 rows × 4 chunks of 8 elements, two chunks per thread
    for (int r = 0; r < 2; ++r) {
      const int c = tid + r * kTcThreads, row = c / 4, kc = (c % 4) * 8;
      const int64_t gr = r0 + row, gk = k0 + kc, left = K - gk;
      const int bytes = gr < rows && left > 0 ? int(left >= 8 ? 16 : left * 2) : 0;
      cp_async_16(tile + row * kLd + kc, bytes ? p + gr * rs + gk : p, bytes);
    }
  } else {  // consecutive threads walk whichever dimension has unit stride
    const bool row_unit = rs == 1;
    for (int r = 0; r < kTBM * kTBK / kTcThreads; ++r) {
      const int e = tid + r * kTcThreads;
      const int rr = row_unit ? e % kTBM : e / kTBK, kk = row_unit ? e / kTBM : e % kTBK;
      const int64_t gr = r0 + rr, gk = k0 + kk;
      tile[rr * kLd + kk] = gr < rows && gk < K ? p[gr * rs + gk * ks] : uint16_t(0);
    }
  }
}

template <bool kAsyncA, bool kAsyncB>
__device__ __forceinline__ void load_stage(uint16_t* stage, const GemmArgs& g, const uint16_t* A,
                                           const uint16_t* B, int64_t m0, int64_t n0, int64_t k0) {
  load_tile<kAsyncA>(stage, A, g.a_rs, g.a_cs, g.m, g.k, m0, k0);
  load_tile<kAsyncB>(stage + kTBM * kLd, B, g.b_cs, g.b_rs, g.n, g.k, n0, k0);
}

// 8 warps as 2 (M) × 4 (N); each warp computes a 64×32 tile as 4×4 m16n8 accumulators.
template <class T, bool kAsyncA, bool kAsyncB>
__global__ void __launch_bounds__(kTcThreads) gemm_tensor_core(GemmArgs g, int64_t batch0) {
  extern __shared__ __align__(16) uint16_t smem[];
  const int64_t bz = batch0 + blockIdx.z;
  const uint16_t* A = static_cast<const uint16_t*>(g.a) + bz * g.a_bs;
  const uint16_t* B = static_cast<const uint16_t*>(g.b) + bz * g.b_bs;
  T* C = static_cast<T*>(g.c) + bz * g.c_bs;
  const T* bias = static_cast<const T*>(g.bias);
  const int64_t m0 = int64_t(blockIdx.y) * kTBM, n0 = int64_t(blockIdx.x) * kTBN;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
  const int64_t ktiles = (g.k + kTBK - 1) / kTBK;

  float acc[4][4][4] = {};
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load_stage<kAsyncA, kAsyncB>(smem + s * kStageElems, g, A, B, m0, n0, s * kTBK);
    cp_async_commit();  // empty groups keep the wait count below uniform
  }
  for (int64_t kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // tile kt is in shared memory, and every warp is done with tile kt-1
    const int64_t next = kt + kStages - 1;
    if (next < ktiles)
      load_stage<kAsyncA, kAsyncB>(smem + (next % kStages) * kStageElems, g, A, B, m0, n0, next * kTBK);
    cp_async_commit();
    const uint16_t* As = smem + (kt % kStages) * kStageElems;
    const uint16_t* Bs = As + kTBM * kLd;
#pragma unroll
    for (int ks = 0; ks < kTBK; ks += 16) {
      uint32_t a[4][4], b[2][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) ldmatrix_x4(a[mi], As + (wm + mi * 16 + lane % 16) * kLd + ks + (lane / 16) * 8);
#pragma unroll
      for (int np = 0; np < 2; ++np)
        ldmatrix_x4(b[np], Bs + (wn + np * 16 + lane % 8 + (lane / 16) * 8) * kLd + ks + ((lane / 8) % 2) * 8);
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma_16816<T>(acc[mi][ni], a[mi], b[ni / 2][(ni % 2) * 2], b[ni / 2][(ni % 2) * 2 + 1]);
    }
  }
  cp_async_wait<0>();
  const int gr = lane / 4, gc = (lane % 4) * 2;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int64_t i = m0 + wm + mi * 16 + gr, j = n0 + wn + ni * 8 + gc;
      store_c(g, C, bias, i, j, acc[mi][ni][0]);
      store_c(g, C, bias, i, j + 1, acc[mi][ni][1]);
      store_c(g, C, bias, i + 8, j, acc[mi][ni][2]);
      store_c(g, C, bias, i + 8, j + 1, acc[mi][ni][3]);
    }
}

// ---------------------------------------------------------------------------------------------
// Host side

constexpr int64_t kMaxGridZ = 65535;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class Kernel>
void launch_batches(Kernel kernel, const GemmArgs& g, dim3 grid, int threads, size_t smem) {
  for (int64_t b0 = 0; b0 < g.batch; b0 += kMaxGridZ) {
    grid.z = unsigned(std::min(kMaxGridZ, g.batch - b0));
    kernel<<<grid, threads, smem, current_stream()>>>(g, b0);
    check_launch("gemm kernel");
  }
}

template <class T>
void gemm_simt_cuda(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  const dim3 grid(unsigned((g.n + kBN - 1) / kBN), unsigned((g.m + kBM - 1) / kBM));
  launch_batches(gemm_simt<T>, g, grid, kSimtThreads, 0);
}

int compute_capability_major() {
  int major = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, current_device()),
             "cudaDeviceGetAttribute");
  return major;
}

template <class T, bool kAsyncA, bool kAsyncB>
void launch_tensor_core(const GemmArgs& g, dim3 grid) {
  auto kernel = gemm_tensor_core<T, kAsyncA, kAsyncB>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kTcSmemBytes)),
             "cudaFuncSetAttribute (gemm shared memory)");
  launch_batches(kernel, g, grid, kTcThreads, kTcSmemBytes);
}

template <class T>
void gemm_tensor_core_cuda(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  LEPTON_CHECK(compute_capability_major() >= 8, NotImplemented,
               "matmul: float16/bfloat16 on CUDA needs tensor cores of compute capability 8.0 or newer");
  // cp.async moves 16-byte chunks: the operand must be contiguous along K with 16-byte aligned rows.
  const bool async_a = g.a_cs == 1 && g.a_rs % 8 == 0 && g.a_bs % 8 == 0 && aligned16(g.a);
  const bool async_b = g.b_rs == 1 && g.b_cs % 8 == 0 && g.b_bs % 8 == 0 && aligned16(g.b);
  const dim3 grid(unsigned((g.n + kTBN - 1) / kTBN), unsigned((g.m + kTBM - 1) / kTBM));
  if (async_a && async_b)
    launch_tensor_core<T, true, true>(g, grid);
  else if (async_a)
    launch_tensor_core<T, true, false>(g, grid);
  else if (async_b)
    launch_tensor_core<T, false, true>(g, grid);
  else
    launch_tensor_core<T, false, false>(g, grid);
}

[[maybe_unused]] const bool kRegistered = [] {
  gemm_kernels.set(DeviceType::CUDA, DType::Float32, &gemm_simt_cuda<float>);
  gemm_kernels.set(DeviceType::CUDA, DType::Float64, &gemm_simt_cuda<double>);
  gemm_kernels.set(DeviceType::CUDA, DType::Float16, &gemm_tensor_core_cuda<Half>);
  gemm_kernels.set(DeviceType::CUDA, DType::BFloat16, &gemm_tensor_core_cuda<BFloat16>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
