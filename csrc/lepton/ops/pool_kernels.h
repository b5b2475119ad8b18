// Kernel contract for 2-d max/avg/adaptive-avg pooling (NCHW), forward and backward.
#pragma once
#include "lepton/ops/kernels.h"

namespace lepton {

// x [planes, h, w] -> y [planes, oh, ow], planes = n·c. The window of output (i, j) covers
// input rows i·stride_h - pad_h + a·dilation_h for a < kh (columns likewise); the parts that
// fall outside the input are skipped (max) or counted as zeros (avg with count_include_pad).
// Adaptive pooling uses rows [⌊i·h/oh⌋, ⌈(i+1)·h/oh⌉) and ignores the other fields.
struct PoolGeometry {
  int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
};

// Contiguous buffers of the geometry's dtype. Forward kernels read x and write y (max pooling
// also writes, when indices is set, the flat position ih·w + iw of each maximum in its plane);
// backward kernels read grad_y (and indices for max) and write all of grad_x.
struct PoolArgs {
  PoolGeometry g;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t* indices = nullptr;
  const void* grad_y = nullptr;
  void* grad_x = nullptr;
  bool count_include_pad = true;  // avg: divide by the window size including padding
  int64_t divisor_override = 0;   // avg: divide by this instead, when nonzero
};

using PoolFn = void (*)(const PoolArgs&);
struct PoolKernels {
  PoolFn max_forward, max_backward;
  PoolFn avg_forward, avg_backward;
  PoolFn adaptive_avg_forward, adaptive_avg_backward;
};

extern KernelTable<const PoolKernels*> pool_kernels;

}  // namespace lepton
