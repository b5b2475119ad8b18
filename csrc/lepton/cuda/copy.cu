// Copies (with casts between any two dtypes) and fills.
// Same-dtype copies only move bytes: contiguous ones are a cudaMemcpyAsync, transposes go
// through 32x32 shared-memory tiles so that both sides stay coalesced, the rest take the
// strided kernel instantiated per item size. Contiguous casts get one vectorised kernel per
// dtype pair; strided casts, rarer, share one kernel that switches on both dtypes.
#include <cstring>

#include "lepton/cuda/elementwise.cuh"

namespace lepton::cuda {
namespace {

template <class D, class S>
struct CastFunctor {
  LEPTON_HD D operator()(S x) const { return cast_to<D>(x); }
};

// A 2-D copy (after an optional batch dim) in which one side is contiguous along rows and the
// other along columns.
struct TileArgs {
  char* dst;
  const char* src;
  int64_t batch, rows, cols;
  int64_t dst_b, dst_r, dst_c, src_b, src_r, src_c;  // byte strides
  bool src_rows_fast;  // the source is contiguous along rows (else along columns)
};

constexpr int kTile = 32, kTileRowsPerPass = 8;

template <class T>
__global__ void __launch_bounds__(kTile * kTileRowsPerPass) transpose_kernel(TileArgs a) {
  __shared__ T tile[kTile][kTile + 1];  // +1: column walks hit distinct banks
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t tiles_r = (a.rows + kTile - 1) / kTile, tiles_c = (a.cols + kTile - 1) / kTile;
  const int64_t per_batch = tiles_r * tiles_c;
  for (int64_t t = blockIdx.x; t < a.batch * per_batch; t += gridDim.x) {
    const int64_t b = t / per_batch, rt = (t - b * per_batch) / tiles_c, ct = t - b * per_batch - rt * tiles_c;
    const int64_t r0 = rt * kTile, c0 = ct * kTile;
    const char* src = a.src + b * a.src_b;
    char* dst = a.dst + b * a.dst_b;
    // tile[i][j] holds element (r0 + i, c0 + j); threadIdx.x walks each side's contiguous axis.
    for (int k = ty; k < kTile; k += kTileRowsPerPass) {
      const int i = a.src_rows_fast ? tx : k, j = a.src_rows_fast ? k : tx;
      if (r0 + i < a.rows && c0 + j < a.cols)
        tile[i][j] = *reinterpret_cast<const T*>(src + (r0 + i) * a.src_r + (c0 + j) * a.src_c);
    }
    __syncthreads();
    for (int k = ty; k < kTile; k += kTileRowsPerPass) {
      const int i = a.src_rows_fast ? k : tx, j = a.src_rows_fast ? tx : k;
      if (r0 + i < a.rows && c0 + j < a.cols)
        *reinterpret_cast<T*>(dst + (r0 + i) * a.dst_r + (c0 + j) * a.dst_c) = tile[i][j];
    }
    __syncthreads();
  }
}

template <class T>
void launch_transpose(const TileArgs& a) {
  const int64_t tiles = a.batch * ((a.rows + kTile - 1) / kTile) * ((a.cols + kTile - 1) / kTile);
  const int64_t cap = max_blocks();
  transpose_kernel<T><<<unsigned(tiles < cap ? tiles : cap), dim3(kTile, kTileRowsPerPass), 0, current_stream()>>>(a);
  check_launch("transpose copy kernel");
}

bool try_transpose(const StridedIter& it, int64_t size) {
  if (it.ndim != 2 && it.ndim != 3) return false;
  const int r = it.ndim - 2, c = it.ndim - 1;
  const int64_t* dst = it.strides[0];
  const int64_t* src = it.strides[1];
  TileArgs a;
  if (dst[c] == size && src[r] == size)
    a.src_rows_fast = true;
  else if (dst[r] == size && src[c] == size)
    a.src_rows_fast = false;
  else
    return false;
  a.rows = it.shape[r];
  a.cols = it.shape[c];
  if (a.rows < 16 || a.cols < 16) return false;  // too thin for tiles to pay off
  a.dst = it.data[0];
  a.src = it.data[1];
  a.batch = it.ndim == 3 ? it.shape[0] : 1;
  a.dst_b = it.ndim == 3 ? dst[0] : 0;
  a.src_b = it.ndim == 3 ? src[0] : 0;
  a.dst_r = dst[r];
  a.dst_c = dst[c];
  a.src_r = src[r];
  a.src_c = src[c];
  dispatch_bits(size_t(size), [&](auto zero) { launch_transpose<decltype(zero)>(a); });
  return true;
}

void copy_same_dtype(const StridedIter& it, int64_t size) {
  check_operands(it, 2, "copy kernel");
  if (it.numel == 0) return;
  if (operand_contiguous(it, 0, size) && operand_contiguous(it, 1, size)) {
    if (it.data[0] != it.data[1])
      check_cuda(cudaMemcpyAsync(it.data[0], it.data[1], size_t(it.numel * size), cudaMemcpyDeviceToDevice, current_stream()),
                 "cudaMemcpyAsync (copy kernel)");
    return;
  }
  if (try_transpose(it, size)) return;
  dispatch_bits(size_t(size), [&](auto zero) {
    using U = decltype(zero);
    launch_strided<U, U>(it, CastFunctor<U, U>{}, "strided copy kernel");
  });
}

// Values pass through double (floats) or int64 (integers and bool), both exact, so the result
// is the same as cast_to<D>(x) of the source type.
struct Wide {
  double f;
  int64_t i;
  bool is_float;
};

template <class T>
LEPTON_HD Wide widen(T x) {
  if constexpr (is_float_v<T>)
    return Wide{double(to_compute(x)), 0, true};
  else
    return Wide{0.0, int64_t(x), false};
}

LEPTON_HD Wide load_any(const char* p, DType t) {
  LEPTON_DISPATCH_ALL(t, return widen(*reinterpret_cast<const scalar_t*>(p)));
  return Wide{0.0, 0, false};  // unreachable
}

LEPTON_HD void store_any(char* p, DType t, const Wide& w) {
  LEPTON_DISPATCH_ALL(t, {
    *reinterpret_cast<scalar_t*>(p) = w.is_float ? cast_to<scalar_t>(w.f) : cast_to<scalar_t>(w.i);
  });
}

__global__ void __launch_bounds__(kThreads)
    strided_cast_kernel(OffsetCalc<2> calc, Ptrs<2> p, int64_t n, DType dst, DType src) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const auto off = calc.get(i);
    store_any(p.p[0] + off.v[0], dst, load_any(p.p[1] + off.v[1], src));
  }
}

template <class D>
void copy_cuda(const StridedIter& it, DType src) {
  constexpr DType dst = dtype_of<D>::value;
  if (src == dst) return copy_same_dtype(it, sizeof(D));
  bool done = false;
  LEPTON_DISPATCH_ALL(src, {
    if constexpr (!std::is_same_v<scalar_t, D>)
      done = try_contiguous<D, scalar_t>(it, CastFunctor<D, scalar_t>{}, "cast copy kernel");
  });
  if (done || it.numel == 0) return;
  OffsetCalc<2> calc(it.ndim, it.shape, it.strides, it.numel);
  strided_cast_kernel<<<grid_for(it.numel), kThreads, 0, current_stream()>>>(calc, Ptrs<2>{{it.data[0], it.data[1]}}, it.numel, dst, src);
  check_launch("strided cast copy kernel");
}

template <class U>
struct ConstFunctor {
  U value;
  LEPTON_HD U operator()() const { return value; }
};

template <class U>
void fill_bits(const StridedIter& it, U bits) {
  check_operands(it, 1, "fill kernel");
  if (it.numel == 0) return;
  unsigned char bytes[sizeof(U)];
  std::memcpy(bytes, &bits, sizeof(U));
  bool uniform = true;
  for (size_t i = 1; i < sizeof(U); ++i) uniform = uniform && bytes[i] == bytes[0];
  if (uniform && operand_contiguous(it, 0, sizeof(U))) {  // zeros, mostly
    check_cuda(cudaMemsetAsync(it.data[0], bytes[0], size_t(it.numel) * sizeof(U), current_stream()), "cudaMemsetAsync (fill)");
    return;
  }
  launch_elementwise<U>(it, ConstFunctor<U>{bits}, "fill kernel");
}

template <class T>
void fill_cuda(const StridedIter& it, Scalar value) {
  T v;
  if constexpr (std::is_same_v<T, bool>)
    v = value.to_double() != 0;
  else if constexpr (is_float_v<T>)
    v = from_compute<T>(value.to_double());
  else
    v = T(value.to_int());
  bits_t<sizeof(T)> bits;
  std::memcpy(&bits, &v, sizeof(T));
  fill_bits(it, bits);
}

template <class T>
void register_dtype() {
  copy_kernels.set(DeviceType::CUDA, dtype_of<T>::value, &copy_cuda<T>);
  fill_kernels.set(DeviceType::CUDA, dtype_of<T>::value, &fill_cuda<T>);
}

[[maybe_unused]] const bool kRegistered = [] {
  register_dtype<bool>();
  register_dtype<uint8_t>();
  register_dtype<int8_t>();
  register_dtype<int32_t>();
  register_dtype<int64_t>();
  register_dtype<Half>();
  register_dtype<BFloat16>();
  register_dtype<float>();
  register_dtype<double>();
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
