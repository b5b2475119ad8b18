// Kernels of the gather/scatter family (ops/scatter.cpp): torch's gather, scatter and
// scatter_add along one dim. Registered by cpu/scatter.cpp.
#pragma once
#include <cstdint>

#include "lepton/core/dispatch.h"
#include "lepton/ops/kernels.h"

namespace lepton {

enum class ScatterMode : uint8_t { Gather, Scatter, ScatterAdd };

// Walks every position p of the contiguous int64 `index` (shape `shape`). Its element offset in
// `self` is p's coordinates times self_strides, except along `dim`, where index[p] is taken.
//   Gather:     other[p] = self[offset]         (other contiguous, index's shape)
//   Scatter:    self[offset] = other[p]         (other strided by other_strides)
//   ScatterAdd: self[offset] += other[p]        (in index order, so sums are deterministic)
// Returns the first position whose index lies outside [0, dim_size), or -1; nothing is
// written when one does.
struct ScatterArgs {
  char* self = nullptr;
  char* other = nullptr;
  const int64_t* index = nullptr;
  int ndim = 0, dim = 0;
  int64_t numel = 0, dim_size = 0;
  int64_t shape[kMaxDims] = {};
  int64_t self_strides[kMaxDims] = {};   // elements
  int64_t other_strides[kMaxDims] = {};  // elements
};

using ScatterFn = int64_t (*)(ScatterMode mode, const ScatterArgs& args);  // keyed by dtype
extern KernelTable<ScatterFn> scatter_kernels;

}  // namespace lepton
