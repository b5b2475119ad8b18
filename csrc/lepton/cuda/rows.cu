// Row gather/scatter for advanced indexing: row r is a strided block starting at
// base + offsets[r] elements; the rows are packed one after another in `dense`. Instantiated
// per item size only, since values are moved, never converted. A scatter with repeated
// offsets writes the same places more than once; which row wins is unspecified.
#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"

namespace lepton::cuda {
namespace {

struct RowsLayout {
  OffsetCalc<1> block;  // element j of a row -> byte offset inside the row
  FastDiv row_div;      // flat index -> row (valid when `small`)
  int64_t row_numel, total;
  bool small;
};

template <class U>
__global__ void __launch_bounds__(kThreads)
    rows_kernel(char* base, U* dense, const int64_t* offsets, RowsLayout L, bool scatter) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < L.total; g += step) {
    const int64_t r = L.small ? int64_t(L.row_div.div(uint32_t(g))) : g / L.row_numel;
    U* elem = reinterpret_cast<U*>(base + offsets[r] * int64_t(sizeof(U)) + L.block.get(g - r * L.row_numel).v[0]);
    if (scatter)
      *elem = dense[g];
    else
      dense[g] = *elem;
  }
}

void rows_cuda(const RowsArgs& a, size_t itemsize, bool scatter) {
  LEPTON_CHECK(a.ndim >= 0 && a.ndim <= kMaxDims && a.nrows >= 0 && a.row_numel >= 0, Runtime,
               "rows kernel: bad arguments (ndim ", a.ndim, ", ", a.nrows, " rows of ", a.row_numel, ")");
  LEPTON_CHECK(itemsize == 1 || itemsize == 2 || itemsize == 4 || itemsize == 8, Runtime,
               "rows kernel: unsupported item size ", itemsize);
  const int64_t total = a.nrows * a.row_numel;
  if (total == 0) return;
  int64_t strides[1][kMaxDims];
  for (int d = 0; d < a.ndim; ++d) strides[0][d] = a.row_strides[d] * int64_t(itemsize);
  const bool small = total <= kMaxInt32;
  const RowsLayout L{OffsetCalc<1>(a.ndim, a.row_shape, strides, a.row_numel),
                     small ? FastDiv(uint32_t(a.row_numel)) : FastDiv(), a.row_numel, total, small};
  dispatch_bits(itemsize, [&](auto zero) {
    using U = decltype(zero);
    rows_kernel<U><<<grid_for(total), kThreads, 0, current_stream()>>>(a.base, reinterpret_cast<U*>(a.dense), a.offsets, L, scatter);
  });
  check_launch(scatter ? "rows scatter kernel" : "rows gather kernel");
}

[[maybe_unused]] const bool kRegistered = [] {
  for (int i = 0; i < kNumDTypes; ++i) rows_kernels.set(DeviceType::CUDA, DType(i), &rows_cuda);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
