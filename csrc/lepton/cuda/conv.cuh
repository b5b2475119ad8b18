// The CUDA convolution kernels behind conv.cu's dispatch (the ConvKernels contract of
// ops/conv_kernels.h). Callers handle empty problems: these see n, c_in, c_out >= 1, and leave
// the bias gradient to conv.cu.
#pragma once
#include "lepton/cuda/common.cuh"
#include "lepton/ops/conv_kernels.h"

namespace lepton::cuda {

// The sum of v over a block of kThreads threads, added in a fixed tree order (deterministic);
// every thread gets it. All threads of the block must call it.
template <class C>
__device__ C block_tree_sum(C v) {
  __shared__ C lanes[kThreads];
  __syncthreads();  // a previous call's readers are done with lanes
  lanes[threadIdx.x] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) lanes[threadIdx.x] += lanes[threadIdx.x + half];
    __syncthreads();
  }
  return lanes[0];
}

// Implicit GEMM on the tensor cores (conv_implicit_gemm.cu), T = Half or BFloat16: whether
// this device and geometry can take it (compute capability 8.0+, 32-bit index math, grid limits).
bool implicit_gemm_fits(const ConvGeometry& g);
template <class T>
void implicit_gemm_forward(const ConvArgs& a);
template <class T>
void implicit_gemm_backward_data(const ConvArgs& a);
template <class T>
void implicit_gemm_backward_weight(const ConvArgs& a);

// Direct kernels for one input channel per group (depthwise convolution and its channel
// multipliers; conv_depthwise.cu), every float dtype.
template <class T>
void depthwise_forward(const ConvArgs& a);
template <class T>
void depthwise_backward_data(const ConvArgs& a);
template <class T>
void depthwise_backward_weight(const ConvArgs& a);

}  // namespace lepton::cuda
