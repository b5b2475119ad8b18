// 2-d convolution on the GPU (the ConvKernels contract of ops/conv_kernels.h). The fast kernels
// pick, per call:
//   - one input channel per group (depthwise): direct kernels (conv_depthwise.cu);
//   - float16/bfloat16 on compute capability 8.0+: implicit GEMM on the tensor cores
//     (conv_implicit_gemm.cu);
//   - otherwise (float32, float64) im2col + the CUDA GEMM, below.
// im2col + GEMM is also the reference for every dtype (LEPTON_CONV=reference), one image at a
// time with the groups as the GEMM's batch:
//   forward          y[n, g] = W_g · col(x[n], g) (+ bias per output channel)
//   backward_data    grad_x[n] = col2im(W_gᵀ · grad_y[n, g]); col2im gathers, so each input
//                    pixel sums its contributions in a fixed order (no atomics)
//   backward_weight  grad_W_g = Σ_n grad_y[n, g] · col(x[n], g)ᵀ, accumulated with beta = 1
#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"
#include "lepton/cuda/conv.cuh"
#include "lepton/ops/conv_kernels.h"

namespace lepton::cuda {
namespace {

// col[(c·kh + a)·kw + b][i·ow + j] = x[c][i·sh - ph + a·dh][j·sw - pw + b·dw] (0 outside), for the
// c_in channels of one image (all groups: group g's rows start at g·(c_in/groups)·kh·kw).
template <class T>
__global__ void __launch_bounds__(kThreads) im2col_kernel(ConvGeometry g, const T* x, T* col) {
  const int64_t ohw = g.oh * g.ow, total = g.c_in * g.kh * g.kw * ohw;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = e % ohw, r = e / ohw;
    const int64_t b = r % g.kw, a = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    const int64_t ih = (p / g.ow) * g.stride_h - g.pad_h + a * g.dilation_h;
    const int64_t iw = (p % g.ow) * g.stride_w - g.pad_w + b * g.dilation_w;
    col[e] = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w ? x[(c * g.h + ih) * g.w + iw] : T{};
  }
}

// The inverse gather: input pixel (c, ih, iw) sums every col entry that im2col read from it.
template <class T>
__global__ void __launch_bounds__(kThreads) col2im_kernel(ConvGeometry g, const T* col, T* x) {
  const int64_t ohw = g.oh * g.ow, total = g.c_in * g.h * g.w;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = e % g.w, ih = (e / g.w) % g.h, c = e / (g.w * g.h);
    compute_t<T> s = 0;
    for (int64_t a = 0; a < g.kh; ++a) {
      const int64_t t = ih + g.pad_h - a * g.dilation_h;  // = i·stride_h
      if (t < 0 || t % g.stride_h) continue;
      const int64_t i = t / g.stride_h;
      if (i >= g.oh) continue;
      for (int64_t b = 0; b < g.kw; ++b) {
        const int64_t u = iw + g.pad_w - b * g.dilation_w;
        if (u < 0 || u % g.stride_w) continue;
        const int64_t j = u / g.stride_w;
        if (j >= g.ow) continue;
        s += to_compute(col[((c * g.kh + a) * g.kw + b) * ohw + i * g.ow + j]);
      }
    }
    x[e] = from_compute<T>(s);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) add_channel_bias_kernel(int64_t count, int64_t c_out, int64_t ohw,
                                                                   const T* bias, T* y) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x)
    y[e] = from_compute<T>(to_compute(y[e]) + to_compute(bias[(e / ohw) % c_out]));
}

// grad_bias[c] = Σ over images and pixels of grad_y[n, c] in two passes, deterministic: a block
// sums each contiguous [oh·ow] plane of grad_y (many blocks keep many loads in flight), then a
// thread per channel adds its planes in image order.
template <class T>
__global__ void __launch_bounds__(kThreads) bias_grad_plane_kernel(int64_t planes, int64_t ohw, const T* grad_y,
                                                                    compute_t<T>* part) {
  for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {
    const T* src = grad_y + plane * ohw;
    compute_t<T> s = 0;
    for (int64_t k = threadIdx.x; k < ohw; k += blockDim.x) s += to_compute(src[k]);
    s = block_tree_sum(s);
    if (threadIdx.x == 0) part[plane] = s;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) bias_grad_kernel(int64_t n, int64_t c_out, const compute_t<T>* part,
                                                              T* grad_bias) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < c_out; c += int64_t(gridDim.x) * blockDim.x) {
    compute_t<T> s = 0;
    for (int64_t i = 0; i < n; ++i) s += part[i * c_out + c];
    grad_bias[c] = from_compute<T>(s);
  }
}

// Sizes of one image's GEMMs: per group, M = c_out/groups, K = (c_in/groups)·kh·kw, N = oh·ow.
struct GroupGemm {
  int64_t m, k, n;
  explicit GroupGemm(const ConvGeometry& g)
      : m(g.c_out / g.groups), k(g.c_in / g.groups * g.kh * g.kw), n(g.oh * g.ow) {}
};

template <class T>
void im2col(const ConvGeometry& g, const T* x, T* col) {
  im2col_kernel<T><<<grid_for(g.c_in * g.kh * g.kw * g.oh * g.ow), kThreads, 0, current_stream()>>>(g, x, col);
  check_launch("im2col kernel");
}

template <class T>
void im2col_forward(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const GroupGemm s(g);
  if (g.n == 0 || s.m == 0 || s.n == 0) return;
  Workspace col(size_t(g.groups * s.k * s.n) * sizeof(T));
  const T* x = static_cast<const T*>(a.x);
  T* y = static_cast<T*>(a.y);
  for (int64_t n = 0; n < g.n; ++n) {
    im2col(g, x + n * g.c_in * g.h * g.w, static_cast<T*>(col.get()));
    GemmArgs m;  // y[n, grp] [M, N] = W_grp [M, K] · col_grp [K, N]
    m.a = a.weight, m.b = col.get(), m.c = y + n * g.c_out * s.n;
    m.m = s.m, m.n = s.n, m.k = s.k, m.batch = g.groups;
    m.a_rs = s.k, m.a_cs = 1, m.b_rs = s.n, m.b_cs = 1, m.c_rs = s.n;
    m.a_bs = s.m * s.k, m.b_bs = s.k * s.n, m.c_bs = s.m * s.n;
    a.gemm(m);
  }
  if (a.bias) {
    const int64_t count = g.n * g.c_out * s.n;
    add_channel_bias_kernel<T><<<grid_for(count), kThreads, 0, current_stream()>>>(count, g.c_out, s.n,
                                                                                   static_cast<const T*>(a.bias), y);
    check_launch("conv bias kernel");
  }
}

template <class T>
void im2col_backward_data(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const GroupGemm s(g);
  T* gx = static_cast<T*>(a.grad_x);
  const int64_t image = g.c_in * g.h * g.w;
  if (g.n * image == 0) return;
  if (s.m == 0 || s.n == 0) {
    check_cuda(cudaMemsetAsync(gx, 0, size_t(g.n * image) * sizeof(T), current_stream()), "cudaMemsetAsync (conv)");
    return;
  }
  Workspace col(size_t(g.groups * s.k * s.n) * sizeof(T));
  const T* gy = static_cast<const T*>(a.grad_y);
  for (int64_t n = 0; n < g.n; ++n) {
    GemmArgs m;  // col_grp [K, N] = W_grpᵀ [K, M] · grad_y[n, grp] [M, N]
    m.a = a.weight, m.b = gy + n * g.c_out * s.n, m.c = col.get();
    m.m = s.k, m.n = s.n, m.k = s.m, m.batch = g.groups;
    m.a_rs = 1, m.a_cs = s.k, m.b_rs = s.n, m.b_cs = 1, m.c_rs = s.n;
    m.a_bs = s.m * s.k, m.b_bs = s.m * s.n, m.c_bs = s.k * s.n;
    a.gemm(m);
    col2im_kernel<T><<<grid_for(image), kThreads, 0, current_stream()>>>(g, static_cast<const T*>(col.get()), gx + n * image);
    check_launch("col2im kernel");
  }
}

template <class T>
void im2col_backward_weight(const ConvArgs& a) {
  const ConvGeometry& g = a.g;
  const GroupGemm s(g);
  const int64_t wsize = g.c_out * s.k;
  if (wsize && (g.n == 0 || s.n == 0))
    check_cuda(cudaMemsetAsync(a.grad_weight, 0, size_t(wsize) * sizeof(T), current_stream()), "cudaMemsetAsync (conv)");
  if (wsize && g.n && s.n) {
    Workspace col(size_t(g.groups * s.k * s.n) * sizeof(T));
    const T* x = static_cast<const T*>(a.x);
    const T* gy = static_cast<const T*>(a.grad_y);
    for (int64_t n = 0; n < g.n; ++n) {
      im2col(g, x + n * g.c_in * g.h * g.w, static_cast<T*>(col.get()));
      GemmArgs m;  // grad_W_grp [M, K] (+)= grad_y[n, grp] [M, N] · col_grpᵀ [N, K]
      m.a = gy + n * g.c_out * s.n, m.b = col.get(), m.c = a.grad_weight;
      m.m = s.m, m.n = s.k, m.k = s.n, m.batch = g.groups;
      m.a_rs = s.n, m.a_cs = 1, m.b_rs = 1, m.b_cs = s.n, m.c_rs = s.k;
      m.a_bs = s.m * s.n, m.b_bs = s.k * s.n, m.c_bs = s.m * s.k;
      m.beta = n == 0 ? 0.0 : 1.0;
      a.gemm(m);
    }
  }
}

template <class T>
void bias_grad(const ConvArgs& a) {
  if (!a.grad_bias || !a.g.c_out) return;
  const ConvGeometry& g = a.g;
  const int64_t planes = g.n * g.c_out;
  Workspace part(size_t(std::max<int64_t>(planes, 1)) * sizeof(compute_t<T>));
  auto* sums = static_cast<compute_t<T>*>(part.get());
  if (planes) {
    bias_grad_plane_kernel<T><<<grid_for(planes * kThreads), kThreads, 0, current_stream()>>>(
        planes, g.oh * g.ow, static_cast<const T*>(a.grad_y), sums);
    check_launch("conv bias-gradient kernel");
  }
  bias_grad_kernel<T><<<grid_for(g.c_out), kThreads, 0, current_stream()>>>(g.n, g.c_out, sums,
                                                                           static_cast<T*>(a.grad_bias));
  check_launch("conv bias-gradient kernel");
}

template <class T>
void reference_backward_weight(const ConvArgs& a) {
  im2col_backward_weight<T>(a);
  bias_grad<T>(a);
}

// The direct and implicit-GEMM kernels take only non-empty problems (conv.cuh).
bool depthwise(const ConvGeometry& g) { return g.c_in == g.groups && g.n > 0 && g.c_out > 0; }

template <class T>
bool tensor_cores(const ConvGeometry& g) {
  constexpr bool k16 = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;
  return k16 && g.n > 0 && g.c_in > 0 && g.c_out > 0 && implicit_gemm_fits(g);
}

template <class T>
void fast_forward(const ConvArgs& a) {
  if (depthwise(a.g))
    depthwise_forward<T>(a);
  else if (tensor_cores<T>(a.g))
    implicit_gemm_forward<T>(a);
  else
    im2col_forward<T>(a);
}

template <class T>
void fast_backward_data(const ConvArgs& a) {
  if (depthwise(a.g))
    depthwise_backward_data<T>(a);
  else if (tensor_cores<T>(a.g))
    implicit_gemm_backward_data<T>(a);
  else
    im2col_backward_data<T>(a);
}

template <class T>
void fast_backward_weight(const ConvArgs& a) {
  if (depthwise(a.g))
    depthwise_backward_weight<T>(a);
  else if (tensor_cores<T>(a.g))
    implicit_gemm_backward_weight<T>(a);
  else
    im2col_backward_weight<T>(a);
  bias_grad<T>(a);
}

template <class T>
constexpr ConvKernels kKernels = {{&fast_forward<T>, &fast_backward_data<T>, &fast_backward_weight<T>},
                                  {&im2col_forward<T>, &im2col_backward_data<T>, &reference_backward_weight<T>}};

[[maybe_unused]] const bool kRegistered = [] {
  conv_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  conv_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  conv_kernels.set(DeviceType::CUDA, DType::Float16, &kKernels<Half>);
  conv_kernels.set(DeviceType::CUDA, DType::BFloat16, &kKernels<BFloat16>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
