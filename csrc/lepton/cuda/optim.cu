// Fused multi-tensor optimizer steps, the global norm of a tensor list and its scaling on the
// GPU. The list is cut into packs of up to kPack tensors whose pointers travel in the kernel's
// parameters (no host-to-device copy of pointer arrays): one launch per pack, blockIdx.y
// picking the tensor and a grid-stride loop over its elements. The per-element rules are the
// CPU kernels' (ops/optim_rules.h).
#include <algorithm>
#include <vector>

#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"
#include "lepton/ops/optim_rules.h"

namespace lepton::cuda {
namespace {

using namespace optim_rules;

constexpr int kPack = 32;  // keeps the largest pack well under the 4 KB of kernel parameters

// Up to kPack tensors of one list: slot k of each array names tensor first + k.
struct Pack {
  void* x[4][kPack];  // per kernel: the tensors it reads and writes (param, grad, m, v ...)
  void* extra[kPack];  // amsgrad's max_exp_avg_sq
  int64_t numel[kPack];
  double s0[kPack], s1[kPack];  // per-tensor scalars (Adam: step size, sqrt of bias correction 2)
  int count = 0;
  int64_t max_numel = 0;
};

// Calls launch(pack) for each pack of the list; fill(pack, slot, t) fills slot with tensor t.
template <class Fill, class Launch>
void for_each_pack(const ListSizes& list, Fill&& fill, Launch&& launch) {
  for (int64_t first = 0; first < list.count; first += kPack) {
    Pack p;
    p.count = int(std::min<int64_t>(kPack, list.count - first));
    for (int k = 0; k < p.count; ++k) {
      p.numel[k] = list.numel[first + k];
      p.max_numel = std::max(p.max_numel, p.numel[k]);
      fill(p, k, first + k);
    }
    if (p.max_numel > 0) launch(p);
  }
}

dim3 pack_grid(const Pack& p) { return dim3(grid_for(p.max_numel), unsigned(p.count)); }

#define LEPTON_PACK_LOOP(p, i) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel[blockIdx.y]; i += int64_t(gridDim.x) * blockDim.x)

template <class T, bool Momentum, bool Nesterov, bool FirstStep, Decay D>
__global__ void __launch_bounds__(kThreads) sgd_kernel(Pack p, SgdScalars<compute_t<T>> s) {
  using A = compute_t<T>;
  const int k = blockIdx.y;
  T* param = static_cast<T*>(p.x[0][k]);
  const T* grad = static_cast<const T*>(p.x[1][k]);
  T* buf = static_cast<T*>(p.x[2][k]);
  LEPTON_PACK_LOOP(p, i) {
    A m = Momentum && !FirstStep ? to_compute(buf[i]) : A(0);
    param[i] = from_compute<T>(sgd_step<A, Momentum, Nesterov, FirstStep, D>(to_compute(param[i]), to_compute(grad[i]), m, s));
    if constexpr (Momentum) buf[i] = from_compute<T>(m);
  }
}

template <class T, bool Amsgrad, Decay D>
__global__ void __launch_bounds__(kThreads) adam_kernel(Pack p, AdamScalars<compute_t<T>> s) {
  using A = compute_t<T>;
  const int k = blockIdx.y;
  T* param = static_cast<T*>(p.x[0][k]);
  const T* grad = static_cast<const T*>(p.x[1][k]);
  T* exp_avg = static_cast<T*>(p.x[2][k]);
  T* exp_avg_sq = static_cast<T*>(p.x[3][k]);
  T* vmax = static_cast<T*>(p.extra[k]);
  const A neg_step = A(-p.s0[k]), bc2 = A(p.s1[k]);
  LEPTON_PACK_LOOP(p, i) {
    A m = to_compute(exp_avg[i]), v = to_compute(exp_avg_sq[i]), vm = Amsgrad ? to_compute(vmax[i]) : A(0);
    param[i] = from_compute<T>(adam_step<A, Amsgrad, D>(to_compute(param[i]), to_compute(grad[i]), m, v, vm, neg_step, bc2, s));
    exp_avg[i] = from_compute<T>(m);
    exp_avg_sq[i] = from_compute<T>(v);
    if constexpr (Amsgrad) vmax[i] = from_compute<T>(vm);
  }
}

// Each block reduces its share of one tensor into partial[blockIdx.y * gridDim.x + blockIdx.x].
template <class T, NormKind K>
__global__ void __launch_bounds__(kThreads) norm_kernel(Pack p, double power, double* partial) {
  const T* x = static_cast<const T*>(p.x[0][blockIdx.y]);
  double acc = 0;
  LEPTON_PACK_LOOP(p, i) acc = norm_combine<K>(acc, norm_term<K>(double(to_compute(x[i])), power));
  __shared__ double lanes[kThreads];
  lanes[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) lanes[threadIdx.x] = norm_combine<K>(lanes[threadIdx.x], lanes[threadIdx.x + w]);
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.y * gridDim.x + blockIdx.x] = lanes[0];
}

template <class T>
__global__ void __launch_bounds__(kThreads) scale_kernel(Pack p, compute_t<T> scale) {
  T* x = static_cast<T*>(p.x[0][blockIdx.y]);
  LEPTON_PACK_LOOP(p, i) x[i] = from_compute<T>(to_compute(x[i]) * scale);
}

#undef LEPTON_PACK_LOOP

template <class T>
void sgd_cuda(const SgdArgs& a) {
  using A = compute_t<T>;
  const SgdScalars<A> s{A(a.lr), A(a.weight_decay), A(a.momentum), A(1 - a.dampening), a.maximize ? A(-1) : A(1)};
  const bool momentum = a.momentum != 0, l2 = a.weight_decay != 0;
  auto kernel = [&](auto mom, auto nest, auto first, auto decay) {
    return sgd_kernel<T, decltype(mom)::value, decltype(nest)::value, decltype(first)::value, decltype(decay)::value>;
  };
  using yes = std::true_type;
  using no = std::false_type;
  using L2 = std::integral_constant<Decay, Decay::L2>;
  using None = std::integral_constant<Decay, Decay::None>;
  auto pick = [&](auto mom, auto nest, auto first) {
    return l2 ? kernel(mom, nest, first, L2{}) : kernel(mom, nest, first, None{});
  };
  auto fn = !momentum        ? pick(no{}, no{}, no{})
            : a.first_step   ? (a.nesterov ? pick(yes{}, yes{}, yes{}) : pick(yes{}, no{}, yes{}))
                             : (a.nesterov ? pick(yes{}, yes{}, no{}) : pick(yes{}, no{}, no{}));
  for_each_pack(
      a.list,
      [&](Pack& p, int k, int64_t t) {
        p.x[0][k] = a.param[t];
        p.x[1][k] = const_cast<void*>(a.grad[t]);
        p.x[2][k] = momentum ? a.momentum_buffer[t] : nullptr;
      },
      [&](const Pack& p) {
        fn<<<pack_grid(p), kThreads, 0, current_stream()>>>(p, s);
        check_launch("sgd kernel");
      });
}

template <class T>
void adam_cuda(const AdamArgs& a) {
  using A = compute_t<T>;
  const AdamScalars<A> s{A(a.weight_decay), A(1 - a.lr * a.weight_decay), A(a.eps),  A(1 - a.beta1),
                         A(a.beta2),        A(1 - a.beta2),                a.maximize ? A(-1) : A(1)};
  const bool ams = a.max_exp_avg_sq != nullptr;
  const Decay d = a.weight_decay == 0 ? Decay::None : a.decoupled_weight_decay ? Decay::Decoupled : Decay::L2;
  auto pick = [&](auto amsgrad) {
    constexpr bool M = decltype(amsgrad)::value;
    return d == Decay::None ? adam_kernel<T, M, Decay::None>
           : d == Decay::L2 ? adam_kernel<T, M, Decay::L2>
                            : adam_kernel<T, M, Decay::Decoupled>;
  };
  auto fn = ams ? pick(std::true_type{}) : pick(std::false_type{});
  for_each_pack(
      a.list,
      [&](Pack& p, int k, int64_t t) {
        p.x[0][k] = a.param[t];
        p.x[1][k] = const_cast<void*>(a.grad[t]);
        p.x[2][k] = a.exp_avg[t];
        p.x[3][k] = a.exp_avg_sq[t];
        p.extra[k] = ams ? a.max_exp_avg_sq[t] : nullptr;
        p.s0[k] = a.step_size[t];
        p.s1[k] = a.bias_correction2_sqrt[t];
      },
      [&](const Pack& p) {
        fn<<<pack_grid(p), kThreads, 0, current_stream()>>>(p, s);
        check_launch("adam kernel");
      });
}

// Partials per block are summed on the host in a fixed order: the result does not depend on
// scheduling, and one small copy per pack is cheap next to the reads.
template <class T, NormKind K>
double norm_kind(const NormArgs& a) {
  double total = 0;
  for_each_pack(
      a.list, [&](Pack& p, int k, int64_t t) { p.x[0][k] = const_cast<void*>(a.data[t]); },
      [&](const Pack& p) {
        const dim3 grid = pack_grid(p);
        const size_t n = size_t(grid.x) * grid.y;
        Workspace partial(n * sizeof(double));
        norm_kernel<T, K><<<grid, kThreads, 0, current_stream()>>>(p, a.p, static_cast<double*>(partial.get()));
        check_launch("norm kernel");
        std::vector<double> host(n);
        copy_and_wait(host.data(), partial.get(), n * sizeof(double), cudaMemcpyDeviceToHost, "norm partials");
        for (double v : host) total = norm_combine<K>(total, v);
      });
  return total;
}

template <class T>
double norm_cuda(const NormArgs& a) {
  if (a.p == 2) return norm_kind<T, NormKind::Two>(a);
  if (a.p == 1) return norm_kind<T, NormKind::One>(a);
  if (a.p == std::numeric_limits<double>::infinity()) return norm_kind<T, NormKind::Inf>(a);
  return norm_kind<T, NormKind::General>(a);
}

template <class T>
void scale_cuda(const ScaleArgs& a) {
  const compute_t<T> scale = compute_t<T>(a.scale);
  for_each_pack(
      a.list, [&](Pack& p, int k, int64_t t) { p.x[0][k] = a.data[t]; },
      [&](const Pack& p) {
        scale_kernel<T><<<pack_grid(p), kThreads, 0, current_stream()>>>(p, scale);
        check_launch("scale kernel");
      });
}

template <class T>
constexpr OptimizerKernels kKernels = {&sgd_cuda<T>, &adam_cuda<T>, &norm_cuda<T>, &scale_cuda<T>};

[[maybe_unused]] const bool kRegistered = [] {
  optimizer_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  optimizer_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  optimizer_kernels.set(DeviceType::CUDA, DType::Float16, &kKernels<Half>);
  optimizer_kernels.set(DeviceType::CUDA, DType::BFloat16, &kKernels<BFloat16>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
