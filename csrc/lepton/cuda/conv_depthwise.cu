// Direct convolution kernels for one input channel per group (depthwise convolution, with
// c_out / groups output channels per input channel): each output is a kh×kw dot product, too
// little work per channel for a GEMM tile. Accumulation in compute_t (float for 16-bit types).
//   forward          a thread per output element, bias fused
//   backward_data    a thread per input element, gathering the outputs whose windows cover it
//   backward_weight  a block per weight (channel, tap), a fixed-order tree sum over n·oh·ow
#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"
#include "lepton/cuda/conv.cuh"

namespace lepton::cuda {
namespace {

template <class T>
__global__ void __launch_bounds__(kThreads) depthwise_forward_kernel(ConvGeometry g, const T* x, const T* w,
                                                                      const T* bias, T* y) {
  const int64_t total = g.n * g.c_out * g.oh * g.ow, mult = g.c_out / g.groups;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = e % g.ow, oh = (e / g.ow) % g.oh, co = (e / (g.ow * g.oh)) % g.c_out, img = e / (g.ow * g.oh * g.c_out);
    const T* xs = x + (img * g.c_in + co / mult) * g.h * g.w;
    const T* ws = w + co * g.kh * g.kw;
    compute_t<T> s = bias ? to_compute(bias[co]) : compute_t<T>(0);
    for (int64_t a = 0; a < g.kh; ++a) {
      const int64_t ih = oh * g.stride_h - g.pad_h + a * g.dilation_h;
      if (ih < 0 || ih >= g.h) continue;
      for (int64_t b = 0; b < g.kw; ++b) {
        const int64_t iw = ow * g.stride_w - g.pad_w + b * g.dilation_w;
        if (iw >= 0 && iw < g.w) s += to_compute(xs[ih * g.w + iw]) * to_compute(ws[a * g.kw + b]);
      }
    }
    y[e] = from_compute<T>(s);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) depthwise_backward_data_kernel(ConvGeometry g, const T* gy, const T* w,
                                                                            T* gx) {
  const int64_t total = g.n * g.c_in * g.h * g.w, mult = g.c_out / g.groups;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = e % g.w, ih = (e / g.w) % g.h, ci = (e / (g.w * g.h)) % g.c_in, img = e / (g.w * g.h * g.c_in);
    compute_t<T> s = 0;
    for (int64_t j = 0; j < mult; ++j) {
      const int64_t co = ci * mult + j;
      const T* gys = gy + (img * g.c_out + co) * g.oh * g.ow;
      const T* ws = w + co * g.kh * g.kw;
      for (int64_t a = 0; a < g.kh; ++a) {
        const int64_t t = ih + g.pad_h - a * g.dilation_h;  // = oh·stride_h
        if (t < 0 || t % g.stride_h || t / g.stride_h >= g.oh) continue;
        for (int64_t b = 0; b < g.kw; ++b) {
          const int64_t u = iw + g.pad_w - b * g.dilation_w;
          if (u < 0 || u % g.stride_w || u / g.stride_w >= g.ow) continue;
          s += to_compute(gys[(t / g.stride_h) * g.ow + u / g.stride_w]) * to_compute(ws[a * g.kw + b]);
        }
      }
    }
    gx[e] = from_compute<T>(s);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) depthwise_backward_weight_kernel(ConvGeometry g, const T* x, const T* gy,
                                                                              T* gw) {
  const int64_t khkw = g.kh * g.kw, co = blockIdx.x / khkw, tap = blockIdx.x % khkw;
  const int64_t a = tap / g.kw, b = tap % g.kw, ci = co / (g.c_out / g.groups), ohw = g.oh * g.ow;
  compute_t<T> s = 0;
  for (int64_t img = 0; img < g.n; ++img) {
    const T* gys = gy + (img * g.c_out + co) * ohw;
    const T* xs = x + (img * g.c_in + ci) * g.h * g.w;
    for (int64_t k = threadIdx.x; k < ohw; k += blockDim.x) {
      const int64_t oh = k / g.ow, ow = k - oh * g.ow;
      const int64_t ih = oh * g.stride_h - g.pad_h + a * g.dilation_h, iw = ow * g.stride_w - g.pad_w + b * g.dilation_w;
      if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) s += to_compute(gys[k]) * to_compute(xs[ih * g.w + iw]);
    }
  }
  s = block_tree_sum(s);
  if (threadIdx.x == 0) gw[blockIdx.x] = from_compute<T>(s);
}

}  // namespace

template <class T>
void depthwise_forward(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  depthwise_forward_kernel<T><<<grid_for(g.n * g.c_out * g.oh * g.ow), kThreads, 0, current_stream()>>>(
      g, static_cast<const T*>(a.x), static_cast<const T*>(a.weight), static_cast<const T*>(a.bias), static_cast<T*>(a.y));
  check_launch("depthwise conv kernel");
}

template <class T>
void depthwise_backward_data(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  depthwise_backward_data_kernel<T><<<grid_for(g.n * g.c_in * g.h * g.w), kThreads, 0, current_stream()>>>(
      g, static_cast<const T*>(a.grad_y), static_cast<const T*>(a.weight), static_cast<T*>(a.grad_x));
  check_launch("depthwise conv backward-data kernel");
}

template <class T>
void depthwise_backward_weight(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  LEPTON_CHECK(g.c_out * g.kh * g.kw < (int64_t(1) << 31), Value, "conv2d: weight of ", g.c_out, "x1x", g.kh, "x", g.kw,
               " is too large for the depthwise CUDA kernel");
  depthwise_backward_weight_kernel<T><<<unsigned(g.c_out * g.kh * g.kw), kThreads, 0, current_stream()>>>(
      g, static_cast<const T*>(a.x), static_cast<const T*>(a.grad_y), static_cast<T*>(a.grad_weight));
  check_launch("depthwise conv backward-weight kernel");
}

#define LEPTON_CONV_DEPTHWISE(T)                                \
  template void depthwise_forward<T>(const ConvArgs&);          \
  template void depthwise_backward_data<T>(const ConvArgs&);    \
  template void depthwise_backward_weight<T>(const ConvArgs&);
LEPTON_CONV_DEPTHWISE(float)
LEPTON_CONV_DEPTHWISE(double)
LEPTON_CONV_DEPTHWISE(Half)
LEPTON_CONV_DEPTHWISE(BFloat16)
#undef LEPTON_CONV_DEPTHWISE

}  // namespace lepton::cuda
