// Kernel contract for 2-d convolution (NCHW): forward, backward-data, backward-weight.
#pragma once
#include "lepton/ops/kernels.h"

namespace lepton {

// x [n, c_in, h, w] * weight [c_out, c_in / groups, kh, kw] -> y [n, c_out, oh, ow]. Output
// pixel (i, j) reads input rows i*stride_h - pad_h + a*dilation_h (a < kh) and likewise for
// columns; reads outside the input are zeros. oh and ow are given, so padding after the last
// row/column may differ from pad_h/pad_w (padding='same' with an even kernel).
struct ConvGeometry {
  int64_t n = 0, c_in = 0, h = 0, w = 0;
  int64_t c_out = 0, kh = 0, kw = 0;
  int64_t oh = 0, ow = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

// All buffers are contiguous, of the geometry's dtype. forward reads x, weight and bias (or
// none) and writes y; backward_data reads grad_y and weight and writes grad_x; backward_weight
// reads x and grad_y and writes grad_weight and, when set, grad_bias.
struct ConvArgs {
  ConvGeometry g;
  const void* x = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;
  const void* grad_y = nullptr;
  void* y = nullptr;
  void* grad_x = nullptr;
  void* grad_weight = nullptr;
  void* grad_bias = nullptr;
  GemmFn gemm = nullptr;  // the GEMM the fast kernels are built on (same device and dtype)
};

using ConvFn = void (*)(const ConvArgs&);
struct ConvFns {
  ConvFn forward, backward_data, backward_weight;
};
struct ConvKernels {
  ConvFns fast;       // im2col tiles + GEMM, parallel over images, groups and tiles
  ConvFns reference;  // direct loops, the oracle for tests (LEPTON_CONV=reference)
};

extern KernelTable<const ConvKernels*> conv_kernels;

}  // namespace lepton
