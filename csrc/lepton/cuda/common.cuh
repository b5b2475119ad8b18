// Helpers shared by the CUDA kernel files: error checks, launch sizing, dtype traits and
// conversions, and the index arithmetic that maps a flat index to per-operand byte offsets.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "lepton/core/cuda_backend.h"
#include "lepton/core/dtype.h"
#include "lepton/core/half.h"
#include "lepton/ops/kernels.h"

#define LEPTON_HDI __host__ __device__ __forceinline__
// `#pragma unroll` for code that is also compiled for the host (where GCC would warn).
#ifdef __CUDA_ARCH__
#define LEPTON_UNROLL _Pragma("unroll")
#else
#define LEPTON_UNROLL
#endif

namespace lepton::cuda {

// ---------------------------------------------------------------------------------------------
// Errors and launches (defined in runtime.cu)

// Raises ErrorKind::Runtime naming `what` and the CUDA error; clears the (non-sticky) error
// state first so that a later, unrelated check does not report it again.
[[noreturn]] void raise_cuda(cudaError_t err, const char* what);
inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) raise_cuda(err, what);
}
// Call after every <<<...>>>: reports bad launch configurations at the launch site.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

int current_device();
int sm_count();  // of the current device, cached

// The stream this host thread queues work on for `device` (the current device when omitted):
// the legacy default stream until lepton.cuda.set_stream / `with lepton.cuda.stream(s)` picks
// another. Every kernel launch and copy goes to it (defined in streams.cu).
cudaStream_t current_stream();
cudaStream_t current_stream(int device);
// A copy ordered on the current stream that has completed when it returns (host memory may be
// pageable and reused by the caller right after).
void copy_and_wait(void* dst, const void* src, size_t nbytes, cudaMemcpyKind kind, const char* what);
const CudaStreamApi& stream_api();

// Makes `device` current for the guard's lifetime (allocations and copies name their device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
  bool switched_ = false;
};

constexpr int kThreads = 256;  // default block size of the 1-D kernels

// Most grids give each thread one item; the grid-stride loops only matter past this many
// blocks (16 waves of full SMs). A cap at one wave would be wrong: kernels with more than 32
// registers fit fewer blocks than that, and the leftover blocks would run as a second round.
inline int64_t max_blocks() { return int64_t(sm_count()) * (2048 / kThreads) * 16; }

// Blocks for a grid-stride loop over `work` items, at least 1.
inline unsigned grid_for(int64_t work, int threads = kThreads) {
  const int64_t need = (work + threads - 1) / threads;
  const int64_t cap = max_blocks();
  return unsigned(need < 1 ? 1 : need < cap ? need : cap);
}

// Blocks of `threads` that one SM holds at once for this kernel.
template <class Kernel>
int blocks_per_sm(Kernel kernel, int threads = kThreads) {
  int n = 0;
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, 0),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  return n > 0 ? n : 1;
}

// Device scratch memory from the caching allocator (current device), e.g. reduction partials.
// Freed to the cache on destruction; safe because all work is ordered on the default stream.
class Workspace {
 public:
  explicit Workspace(size_t nbytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_;
  int device_;
};

// ---------------------------------------------------------------------------------------------
// Dtype traits. Bool is stored as one byte; kernels that only test for nonzero share the
// uint8_t instantiation, casts (copy.cu) use `bool` to get the (x != 0) conversion.
// These helpers and the op functors are __host__ __device__ so that their semantics can be
// tested on machines without a GPU.

template <class T>
constexpr bool is_float_v = std::is_floating_point_v<T> || std::is_same_v<T, Half> ||
                            std::is_same_v<T, BFloat16>;

// Type arithmetic happens in: float for the 16-bit formats, the type itself otherwise.
template <class T>
using compute_t = std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float, T>;

LEPTON_HDI float to_compute(Half x) { return half_to_float(x); }
LEPTON_HDI float to_compute(BFloat16 x) { return bf16_to_float(x); }
template <class T>
LEPTON_HDI T to_compute(T x) {
  return x;
}

template <class T, class C>
LEPTON_HDI T from_compute(C x) {
  if constexpr (std::is_same_v<T, Half>)
    return float_to_half(float(x));
  else if constexpr (std::is_same_v<T, BFloat16>)
    return float_to_bf16(float(x));
  else
    return T(x);
}

// Float to int64 with truncation toward zero, defined everywhere: NaN -> 0, out of range
// saturates (C++ leaves both undefined).
template <class F>
LEPTON_HDI int64_t float_to_int64(F x) {
  if (x != x) return 0;
  if (x >= F(9223372036854775808.0)) return std::numeric_limits<int64_t>::max();
  if (x <= F(-9223372036854775808.0)) return std::numeric_limits<int64_t>::min();
  return int64_t(x);
}

// Value conversion between any two storage types, as a C++ cast would do it: to bool is
// (x != 0), float to int truncates (via int64, then wraps to narrower types like x86 does).
template <class D, class S>
LEPTON_HDI D cast_to(S x) {
  if constexpr (std::is_same_v<D, S>) {
    return x;
  } else {
    auto v = to_compute(x);
    if constexpr (std::is_same_v<D, bool>)
      return v != 0;
    else if constexpr (!is_float_v<D> && is_float_v<S>)
      return D(float_to_int64(v));
    else if constexpr (std::is_same_v<D, Half> || std::is_same_v<D, BFloat16>)
      return from_compute<D>(float(v));
    else
      return D(v);
  }
}

// Integer arithmetic that wraps instead of overflowing (signed overflow is undefined).
template <class T>
LEPTON_HDI T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return T(std::make_unsigned_t<T>(a) + std::make_unsigned_t<T>(b));
  else
    return a + b;
}
template <class T>
LEPTON_HDI T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return T(std::make_unsigned_t<T>(a) - std::make_unsigned_t<T>(b));
  else
    return a - b;
}
template <class T>
LEPTON_HDI T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return T(std::make_unsigned_t<T>(a) * std::make_unsigned_t<T>(b));
  else
    return a * b;
}
template <class T>
LEPTON_HDI bool is_negative(T x) {
  if constexpr (std::is_unsigned_v<T>)
    return false;
  else
    return x < T(0);
}

// Unsigned storage type of a given size, for kernels that only move bytes.
template <int N>
using bits_t = std::conditional_t<N == 1, uint8_t, std::conditional_t<N == 2, uint16_t,
               std::conditional_t<N == 4, uint32_t, uint64_t>>>;

// Calls f(U{}) with U the unsigned type of `size` bytes (1, 2, 4 or 8), for byte movers.
template <class F>
void dispatch_bits(size_t size, F&& f) {
  switch (size) {
    case 1: f(uint8_t{}); break;
    case 2: f(uint16_t{}); break;
    case 4: f(uint32_t{}); break;
    default: f(uint64_t{}); break;
  }
}

// ---------------------------------------------------------------------------------------------
// Index arithmetic

// Division by a fixed divisor d in [1, 2^31) of a dividend below 2^31 with a multiply-high and a
// shift (Granlund & Montgomery): hardware has no integer divider and 64-bit division is slow.
struct FastDiv {
  uint32_t magic = 1, shift = 0;  // the default divides by 1
  FastDiv() = default;
  explicit FastDiv(uint32_t d) {
    while ((uint64_t(1) << shift) < d) ++shift;
    magic = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }
  LEPTON_HDI uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t hi = __umulhi(n, magic);
#else
    const uint32_t hi = uint32_t((uint64_t(n) * magic) >> 32);
#endif
    return (hi + n) >> shift;
  }
};

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();

// Maps a row-major flat index over `shape` to the byte offset of each of N operands.
// Dimensions are stored innermost first so that the unrolled loop indexes the (kernel
// parameter) arrays with constants; `small` selects 32-bit index math when numel < 2^31.
template <int N>
struct OffsetCalc {
  int ndim = 0;
  bool small = true;
  FastDiv fast[kMaxDims];
  int64_t size[kMaxDims];
  int64_t stride[N][kMaxDims];

  // strides[k][d] in bytes for operand k, dims outermost first (as in StridedIter).
  OffsetCalc(int nd, const int64_t* shape, const int64_t (*strides)[kMaxDims], int64_t numel)
      : ndim(nd), small(numel <= kMaxInt32) {
    for (int d = 0; d < nd; ++d) {
      const int r = nd - 1 - d;
      size[d] = shape[r];
      if (small) fast[d] = FastDiv(uint32_t(shape[r]));
      for (int k = 0; k < N; ++k) stride[k][d] = strides[k][r];
    }
  }

  struct Offsets {
    int64_t v[N];
  };

  LEPTON_HDI Offsets get(int64_t index) const {
    Offsets off;
    LEPTON_UNROLL
    for (int k = 0; k < N; ++k) off.v[k] = 0;
    if (small) {
      uint32_t rest = uint32_t(index);
      LEPTON_UNROLL
      for (int d = 0; d < kMaxDims; ++d) {
        if (d == ndim) break;
        // The outermost index is what is left: no division needed.
        const uint32_t q = d == ndim - 1 ? 0 : fast[d].div(rest);
        const int64_t i = int64_t(rest - q * uint32_t(size[d]));
        LEPTON_UNROLL
        for (int k = 0; k < N; ++k) off.v[k] += i * stride[k][d];
        rest = q;
      }
    } else {
      int64_t rest = index;
      LEPTON_UNROLL
      for (int d = 0; d < kMaxDims; ++d) {
        if (d == ndim) break;
        const int64_t q = d == ndim - 1 ? 0 : rest / size[d];
        const int64_t i = rest - q * size[d];
        LEPTON_UNROLL
        for (int k = 0; k < N; ++k) off.v[k] += i * stride[k][d];
        rest = q;
      }
    }
    return off;
  }
};

}  // namespace lepton::cuda
