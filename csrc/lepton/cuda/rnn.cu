// The fused LSTM/GRU cells on the GPU (the RnnCellKernels contract of ops/rnn_kernels.h, with
// the CPU kernels' formulas): one thread per (row, hidden unit), reading its gates straight
// from the row-strided GEMM output.
#include "lepton/cuda/common.cuh"
#include "lepton/ops/rnn_kernels.h"

namespace lepton::cuda {
namespace {

template <class T> __device__ __forceinline__ T sigmoid(T x) { return T(1) / (T(1) + exp(-x)); }

template <class T>
__global__ void lstm_forward_kernel(LstmCellArgs a) {
  const int64_t H = a.hidden, n = a.batch * H;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / H, j = e - b * H;
    const T* g = reinterpret_cast<const T*>(a.gates) + b * a.gates_ld + j;
    const T i = sigmoid(g[0]), f = sigmoid(g[H]), gg = tanh(g[2 * H]), o = sigmoid(g[3 * H]);
    const T cy = f * reinterpret_cast<const T*>(a.c)[e] + i * gg;
    reinterpret_cast<T*>(a.c_out)[e] = cy;
    reinterpret_cast<T*>(a.h)[e] = o * tanh(cy);
    if (a.act) {
      T* act = reinterpret_cast<T*>(a.act) + b * 4 * H + j;
      act[0] = i, act[H] = f, act[2 * H] = gg, act[3 * H] = o;
    }
  }
}

template <class T>
__global__ void lstm_backward_kernel(LstmCellArgs a) {
  const int64_t H = a.hidden, n = a.batch * H;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / H, j = e - b * H;
    const T* act = reinterpret_cast<const T*>(a.act) + b * 4 * H + j;
    const T i = act[0], f = act[H], g = act[2 * H], o = act[3 * H];
    const T tc = tanh(reinterpret_cast<const T*>(a.c_out)[e]);
    const T dh = a.grad_h ? reinterpret_cast<const T*>(a.grad_h)[e] : T(0);
    const T dcy = (a.grad_c ? reinterpret_cast<const T*>(a.grad_c)[e] : T(0)) + dh * o * (T(1) - tc * tc);
    T* dg = reinterpret_cast<T*>(a.grad_gates) + b * 4 * H + j;
    dg[0] = dcy * g * i * (T(1) - i);
    dg[H] = dcy * reinterpret_cast<const T*>(a.c)[e] * f * (T(1) - f);
    dg[2 * H] = dcy * i * (T(1) - g * g);
    dg[3 * H] = dh * tc * o * (T(1) - o);
    reinterpret_cast<T*>(a.grad_c_prev)[e] = dcy * f;
  }
}

template <class T>
__global__ void gru_forward_kernel(GruCellArgs a) {
  const int64_t H = a.hidden, n = a.batch * H;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / H, j = e - b * H;
    const T* x = reinterpret_cast<const T*>(a.x_gates) + b * a.x_ld + j;
    const T* hg = reinterpret_cast<const T*>(a.h_gates) + b * a.h_ld + j;
    const T r = sigmoid(x[0] + hg[0]), z = sigmoid(x[H] + hg[H]), hn = hg[2 * H];
    const T nn = tanh(x[2 * H] + r * hn);
    reinterpret_cast<T*>(a.h_out)[e] = nn + z * (reinterpret_cast<const T*>(a.h)[e] - nn);
    if (a.saved) {
      T* s = reinterpret_cast<T*>(a.saved) + b * 4 * H + j;
      s[0] = r, s[H] = z, s[2 * H] = nn, s[3 * H] = hn;
    }
  }
}

template <class T>
__global__ void gru_backward_kernel(GruCellArgs a) {
  const int64_t H = a.hidden, n = a.batch * H;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / H, j = e - b * H;
    const T* s = reinterpret_cast<const T*>(a.saved) + b * 4 * H + j;
    const T r = s[0], z = s[H], nn = s[2 * H], hn = s[3 * H], g = reinterpret_cast<const T*>(a.grad_h_out)[e];
    const T dn = g * (T(1) - z) * (T(1) - nn * nn);
    const T dz = g * (reinterpret_cast<const T*>(a.h)[e] - nn) * z * (T(1) - z);
    const T dr = dn * hn * r * (T(1) - r);
    T* dx = reinterpret_cast<T*>(a.grad_x_gates) + b * 3 * H + j;
    T* dhg = reinterpret_cast<T*>(a.grad_h_gates) + b * 3 * H + j;
    dx[0] = dr, dx[H] = dz, dx[2 * H] = dn;
    dhg[0] = dr, dhg[H] = dz, dhg[2 * H] = dn * r;
    reinterpret_cast<T*>(a.grad_h)[e] = g * z;
  }
}

template <class Args, void (*Kernel)(Args)>
void launch(const Args& a) {
  const int64_t n = a.batch * a.hidden;
  if (n == 0) return;
  Kernel<<<grid_for(n), kThreads, 0, current_stream()>>>(a);
  check_launch("rnn cell kernel");
}

template <class T>
constexpr RnnCellKernels kKernels = {
    &launch<LstmCellArgs, lstm_forward_kernel<T>>, &launch<LstmCellArgs, lstm_backward_kernel<T>>,
    &launch<GruCellArgs, gru_forward_kernel<T>>, &launch<GruCellArgs, gru_backward_kernel<T>>, nullptr};

[[maybe_unused]] const bool kRegistered = [] {
  rnn_cell_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  rnn_cell_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
