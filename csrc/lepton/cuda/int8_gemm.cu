// The int8 GEMM family on the GPU (the Int8GemmKernels contract of ops/int8_kernels.h): row
// quantisation (a warp per row), weight packing, and the GEMM on dp4a.
//
// The activations arrive as u8 = q + 128; flipping each byte's top bit gives q back as s8, so
// the GPU multiplies s8 × s8 with __dp4a and needs no column-sum correction. A block computes a
// 64 × 64 tile of C, each thread 4 × 4 outputs at rows ty + 16·r and columns tx + 16·c, so that
// neighbouring threads read neighbouring shared-memory words (no bank conflicts); k advances 32
// bytes (8 words) at a time.
#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"
#include "lepton/ops/int8_kernels.h"

namespace lepton::cuda {
namespace {

constexpr int kTile = 64;       // rows and columns of C per block
constexpr int kWords = 8;       // 4-byte k-words per step
constexpr int kSide = 16;       // threads per side: 16 × 16, each 4 × 4 outputs
constexpr int kPer = kTile / kSide;

// ---------------------------------------------------------------------------------------------
// quantize_rows: q = nearbyint(x·(127/max|x|)) clamped to ±127, exactly the CPU kernel's formula

__global__ void quantize_rows_kernel(QuantizeRowsArgs a) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= a.m) return;
  const float* x = a.x + row * a.k;
  float amax = 0.f;
  for (int64_t i = lane; i < a.k; i += 32) amax = fmaxf(amax, fabsf(x[i]));
  for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float inv = amax > 0.f ? 127.f / amax : 0.f;
  if (lane == 0) a.scale[row] = amax / 127.f;
  uint8_t* q = a.out + row * a.ld;
  for (int64_t i = lane; i < a.ld; i += 32) {
    const float v = i < a.k ? fminf(fmaxf(nearbyintf(__fmul_rn(x[i], inv)), -127.f), 127.f) : 0.f;
    q[i] = uint8_t(int(v) + a.offset);
  }
}

void quantize_rows(const QuantizeRowsArgs& a) {
  if (a.m == 0) return;
  constexpr int kRowsPerBlock = kThreads / 32;
  quantize_rows_kernel<<<unsigned((a.m + kRowsPerBlock - 1) / kRowsPerBlock), kThreads, 0, current_stream()>>>(a);
  check_launch("int8 quantize_rows kernel");
}

// ---------------------------------------------------------------------------------------------
// pack: a thread per packed byte; colsum: a thread per output channel

__global__ void pack_kernel(const int8_t* w, int64_t n, int64_t k, int64_t kq, int8_t* packed, int64_t size) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < size; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t block = p / (kq * 64), within = p % 64, kk = (p / 64) % kq * 4 + within % 4;
    const int64_t j = block * kInt8Block + within / 4;
    packed[p] = j < n && kk < k ? w[j * k + kk] : int8_t(0);
  }
}

__global__ void colsum_kernel(const int8_t* w, int64_t n, int64_t k, int32_t* colsum) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    int32_t s = 0;
    for (int64_t i = 0; i < k; ++i) s += w[j * k + i];
    colsum[j] = s;
  }
}

void pack(const int8_t* w, int64_t n, int64_t k, int8_t* packed, int32_t* colsum) {
  const int64_t size = int8_packed_size(n, k);
  if (size == 0) return;
  pack_kernel<<<grid_for(size), kThreads, 0, current_stream()>>>(w, n, k, int8_k_padded(k) / 4, packed, size);
  check_launch("int8 pack kernel");
  colsum_kernel<<<grid_for(n), kThreads, 0, current_stream()>>>(w, n, k, colsum);
  check_launch("int8 colsum kernel");
}

// ---------------------------------------------------------------------------------------------
// gemm

// Writes one output from its exact s8·s8 sum.
__device__ __forceinline__ void store_one(const Int8GemmArgs& g, int64_t i, int64_t j, int32_t exact) {
  if (g.c_int) {
    g.c_int[i * g.n + j] = exact;
    return;
  }
  const float v = __fmaf_rn(float(exact), g.a_scale[i] * g.b_scale[j], g.bias ? g.bias[j] : 0.f);
  g.c[i * g.n + j] = g.relu ? fmaxf(v, 0.f) : v;
}

// Word kw (4 consecutive k) of packed output channel j.
__device__ __forceinline__ int packed_word(const Int8GemmArgs& g, int64_t kq, int64_t j, int64_t kw) {
  return reinterpret_cast<const int*>(g.b)[((j / kInt8Block) * kq + kw) * kInt8Block + j % kInt8Block];
}

// kq: k-words per row, int8_k_padded(k) / 4
__global__ void __launch_bounds__(kSide* kSide) gemm_kernel(Int8GemmArgs g, int64_t kq) {
  __shared__ int as[kWords][kTile];  // as[w][r]: word w of row r of the tile, as s8
  __shared__ int bs[kWords][kTile];  // bs[w][c]: word w of column c
  const int64_t i0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const unsigned* a_words = reinterpret_cast<const unsigned*>(g.a);
  int acc[kPer][kPer] = {};
  for (int64_t w0 = 0; w0 < kq; w0 += kWords) {
    for (int e = threadIdx.x; e < kWords * kTile; e += kSide * kSide) {
      const int w = e % kWords, r = e / kWords;  // consecutive threads: consecutive words of a row
      const int64_t i = i0 + r, j = j0 + r, kw = w0 + w;
      as[w][r] = i < g.m && kw < kq ? int(a_words[i * kq + kw] ^ 0x80808080u) : 0;
      bs[w][r] = j < g.n && kw < kq ? packed_word(g, kq, j, kw) : 0;
    }
    __syncthreads();
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
      int av[kPer], bv[kPer];
#pragma unroll
      for (int t = 0; t < kPer; ++t) av[t] = as[w][ty + kSide * t], bv[t] = bs[w][tx + kSide * t];
#pragma unroll
      for (int r = 0; r < kPer; ++r)
#pragma unroll
        for (int c = 0; c < kPer; ++c) acc[r][c] = __dp4a(av[r], bv[c], acc[r][c]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < kPer; ++r)
#pragma unroll
    for (int c = 0; c < kPer; ++c) {
      const int64_t i = i0 + ty + kSide * r, j = j0 + tx + kSide * c;
      if (i < g.m && j < g.n) store_one(g, i, j, acc[r][c]);
    }
}

// The reference: a thread per output, byte by byte, with the contract's u8 - 128 arithmetic.
__global__ void gemm_reference_kernel(Int8GemmArgs g, int64_t kq) {
  const int64_t kp = kq * 4;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < g.m * g.n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / g.n, j = e % g.n;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < g.k; ++kk)
      sum += (int32_t(g.a[i * kp + kk]) - 128) *
             int32_t(g.b[((j / kInt8Block) * kq + kk / 4) * 64 + (j % kInt8Block) * 4 + kk % 4]);
    store_one(g, i, j, sum);
  }
}

void gemm(const Int8GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const dim3 grid(unsigned((g.n + kTile - 1) / kTile), unsigned((g.m + kTile - 1) / kTile));
  LEPTON_CHECK(grid.y <= 65535, Value, "int8_gemm: ", g.m, " rows exceed the CUDA kernel's grid (at most ",
               int64_t(65535) * kTile, ")");
  gemm_kernel<<<grid, kSide * kSide, 0, current_stream()>>>(g, int8_k_padded(g.k) / 4);
  check_launch("int8 gemm kernel");
}

void gemm_reference(const Int8GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  gemm_reference_kernel<<<grid_for(g.m * g.n), kThreads, 0, current_stream()>>>(g, int8_k_padded(g.k) / 4);
  check_launch("int8 gemm reference kernel");
}

constexpr Int8GemmKernels kKernels = {&quantize_rows, &pack, &gemm, &gemm_reference, "cuda-dp4a"};

[[maybe_unused]] const bool kRegistered = [] {
  int8_gemm_kernels.set(DeviceType::CUDA, DType::Int8, &kKernels);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
