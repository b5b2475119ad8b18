// The norm family on the GPU (the NormKernels contract of ops/norm_kernels.h, with the CPU
// kernels' formulas): layer_norm (a warp per row, two passes over the row: mean, then squared
// deviations), batch_norm (a block per channel for the statistics), embedding (gather; a
// deterministic backward that sums each weight row's gradients in index order), dropout
// (the same Philox words per element as the CPU kernel, so masks match bit for bit) and the
// pointwise losses.
#include <algorithm>
#include <climits>
#include <vector>

#include "lepton/core/error.h"
#include "lepton/core/philox.h"
#include "lepton/cuda/common.cuh"
#include "lepton/ops/norm_kernels.h"

namespace lepton::cuda {
namespace {

template <class T> __device__ __forceinline__ const T* in(const char* p) { return reinterpret_cast<const T*>(p); }
template <class T> __device__ __forceinline__ T* out(char* p) { return reinterpret_cast<T*>(p); }

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
template <class T>
__device__ T block_sum(T v) {
  __shared__ T partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // partial may still be read from a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : T(0);
  return warp_sum(v);
}

// Smallest position holding a bad value (int64 indices or probabilities), reported via atomicMin.
class BadPosition {
 public:
  BadPosition() : flag_(sizeof(long long)) {
    const long long none = LLONG_MAX;
    copy_and_wait(flag_.get(), &none, sizeof none, cudaMemcpyHostToDevice, "bad-position flag");
  }
  long long* device() { return static_cast<long long*>(flag_.get()); }
  int64_t get() {
    long long v = 0;
    copy_and_wait(&v, flag_.get(), sizeof v, cudaMemcpyDeviceToHost, "bad-position flag");
    return v == LLONG_MAX ? -1 : int64_t(v);
  }

 private:
  Workspace flag_;
};

constexpr int kRowsPerBlock = kThreads / 32;

// ---------------------------------------------------------------------------------------------
// layer_norm

template <class T>
__global__ void __launch_bounds__(kThreads) layer_norm_forward_kernel(LayerNormArgs a) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= a.rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t C = a.cols;
  const T* x = in<T>(a.x) + r * C;
  T* y = out<T>(a.y) + r * C;
  const T *W = in<T>(a.weight), *B = in<T>(a.bias);
  T s = 0;
  for (int64_t i = lane; i < C; i += 32) s += x[i];
  const T mean = warp_sum(s) / T(C);
  T q = 0;
  for (int64_t i = lane; i < C; i += 32) q += (x[i] - mean) * (x[i] - mean);
  const T rstd = T(1) / sqrt(warp_sum(q) / T(C) + T(a.eps));
  if (lane == 0) {
    out<T>(a.mean)[r] = mean;
    out<T>(a.rstd)[r] = rstd;
  }
  for (int64_t i = lane; i < C; i += 32) {
    T v = (x[i] - mean) * rstd;
    if (W) v *= W[i];
    if (B) v += B[i];
    y[i] = v;
  }
}

// dx = rstd·(w·g - mean(w·g) - x̂·mean(w·g·x̂)) per row.
template <class T>
__global__ void __launch_bounds__(kThreads) layer_norm_grad_x_kernel(LayerNormArgs a) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= a.rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t C = a.cols;
  const T* x = in<T>(a.x) + r * C;
  const T* g = in<T>(a.grad_y) + r * C;
  T* dx = out<T>(a.grad_x) + r * C;
  const T* W = in<T>(a.weight);
  const T mean = in<T>(a.mean)[r], rstd = in<T>(a.rstd)[r];
  T s1 = 0, s2 = 0;
  for (int64_t i = lane; i < C; i += 32) {
    const T wg = W ? W[i] * g[i] : g[i];
    s1 += wg;
    s2 += wg * (x[i] - mean) * rstd;
  }
  const T m1 = warp_sum(s1) / T(C), m2 = warp_sum(s2) / T(C);
  for (int64_t i = lane; i < C; i += 32) {
    const T wg = W ? W[i] * g[i] : g[i];
    dx[i] = rstd * (wg - m1 - (x[i] - mean) * rstd * m2);
  }
}

// grad_weight[j] = Σ_r g·x̂, grad_bias[j] = Σ_r g: 32 columns per block, the rows split over the
// block's 8 thread rows and over gridDim.y slices whose partial sums a second pass adds in order.
constexpr int kColTile = 32, kColRows = 8;

template <class T>
__global__ void layer_norm_grad_wb_partial(LayerNormArgs a, int64_t rows_per_slice, T* part) {
  const int64_t j = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_slice, r1 = min(a.rows, r0 + rows_per_slice);
  T sw = 0, sb = 0;
  if (j < a.cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColRows) {
      const T g = in<T>(a.grad_y)[r * a.cols + j];
      sw += g * (in<T>(a.x)[r * a.cols + j] - in<T>(a.mean)[r]) * in<T>(a.rstd)[r];
      sb += g;
    }
  __shared__ T tw[kColRows][kColTile], tb[kColRows][kColTile];
  tw[threadIdx.y][threadIdx.x] = sw;
  tb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && j < a.cols) {
    for (int k = 1; k < kColRows; ++k) {
      sw += tw[k][threadIdx.x];
      sb += tb[k][threadIdx.x];
    }
    part[(int64_t(blockIdx.y) * a.cols + j) * 2] = sw;
    part[(int64_t(blockIdx.y) * a.cols + j) * 2 + 1] = sb;
  }
}

template <class T>
__global__ void layer_norm_grad_wb_finish(LayerNormArgs a, int slices, const T* part) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= a.cols) return;
  T sw = 0, sb = 0;
  for (int s = 0; s < slices; ++s) {
    sw += part[(int64_t(s) * a.cols + j) * 2];
    sb += part[(int64_t(s) * a.cols + j) * 2 + 1];
  }
  if (a.grad_weight) out<T>(a.grad_weight)[j] = sw;
  if (a.grad_bias) out<T>(a.grad_bias)[j] = sb;
}

unsigned row_blocks(int64_t rows) { return unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

template <class T>
void layer_norm_forward(const LayerNormArgs& a) {
  if (a.rows == 0) return;
  layer_norm_forward_kernel<T><<<row_blocks(a.rows), kThreads, 0, current_stream()>>>(a);
  check_launch("layer_norm kernel");
}

template <class T>
void layer_norm_backward(const LayerNormArgs& a) {
  if (a.rows == 0 || a.cols == 0) {
    // no rows: the parameter gradients are sums over nothing
    if (a.cols && a.grad_weight) check_cuda(cudaMemsetAsync(a.grad_weight, 0, a.cols * sizeof(T), current_stream()), "memset");
    if (a.cols && a.grad_bias) check_cuda(cudaMemsetAsync(a.grad_bias, 0, a.cols * sizeof(T), current_stream()), "memset");
    return;
  }
  if (a.grad_x) {
    layer_norm_grad_x_kernel<T><<<row_blocks(a.rows), kThreads, 0, current_stream()>>>(a);
    check_launch("layer_norm backward kernel");
  }
  if (a.grad_weight || a.grad_bias) {
    const int slices = int(std::min<int64_t>(64, (a.rows + 255) / 256));
    const int64_t per_slice = (a.rows + slices - 1) / slices;
    Workspace part(size_t(slices) * a.cols * 2 * sizeof(T));
    const dim3 grid(unsigned((a.cols + kColTile - 1) / kColTile), unsigned(slices));
    layer_norm_grad_wb_partial<T><<<grid, dim3(kColTile, kColRows), 0, current_stream()>>>(a, per_slice, static_cast<T*>(part.get()));
    check_launch("layer_norm weight-gradient kernel");
    layer_norm_grad_wb_finish<T><<<grid_for(a.cols), kThreads, 0, current_stream()>>>(a, slices, static_cast<const T*>(part.get()));
    check_launch("layer_norm weight-gradient kernel");
  }
}

// ---------------------------------------------------------------------------------------------
// batch_norm over [n, c, l]: block c owns channel c

template <class T>
__global__ void __launch_bounds__(kThreads) batch_norm_stats_kernel(BatchNormArgs a) {
  const int64_t c = blockIdx.x, N = a.n, C = a.c, L = a.l, count = N * L;
  const T* X = in<T>(a.x);
  auto at = [&](int64_t k) { return X[((k / L) * C + c) * L + k % L]; };
  if (!a.training) {
    if (threadIdx.x == 0) {
      out<T>(a.mean)[c] = in<T>(a.running_mean)[c];
      out<T>(a.rstd)[c] = T(1 / sqrt(double(in<T>(a.running_var)[c]) + a.eps));
    }
    return;
  }
  double s = 0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) s += double(at(k));
  const double mean = block_sum(s) / double(count);
  double q = 0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
    const double d = double(at(k)) - mean;
    q += d * d;
  }
  const double var = block_sum(q) / double(count);
  if (threadIdx.x == 0) {
    out<T>(a.mean)[c] = T(mean);
    out<T>(a.rstd)[c] = T(1 / sqrt(var + a.eps));
    if (a.running_mean) {
      T& rm = out<T>(a.running_mean)[c];
      T& rv = out<T>(a.running_var)[c];
      rm = T(a.momentum * mean + (1 - a.momentum) * double(rm));
      rv = T(a.momentum * (count > 1 ? var * double(count) / double(count - 1) : var) + (1 - a.momentum) * double(rv));
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) batch_norm_apply_kernel(BatchNormArgs a) {
  const int64_t total = a.n * a.c * a.l;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / a.l) % a.c;
    const T rstd = in<T>(a.rstd)[c], mean = in<T>(a.mean)[c];
    const T scale = a.weight ? in<T>(a.weight)[c] * rstd : rstd;
    const T shift = (a.bias ? in<T>(a.bias)[c] : T(0)) - mean * scale;
    out<T>(a.y)[i] = in<T>(a.x)[i] * scale + shift;
  }
}

// Per channel: s_g = Σ g, s_gx = Σ g·(x - mean); dbias = s_g, dweight = s_gx·rstd;
// dx = k·(g - mg - (x - mean)·c2), k = weight·rstd, mg = s_g/count and c2 = rstd²·s_gx/count
// when training (0 in eval).
template <class T>
__global__ void __launch_bounds__(kThreads) batch_norm_backward_kernel(BatchNormArgs a) {
  const int64_t c = blockIdx.x, C = a.c, L = a.l, count = a.n * L;
  const T *X = in<T>(a.x), *G = in<T>(a.grad_y);
  auto idx = [&](int64_t k) { return ((k / L) * C + c) * L + k % L; };
  const double mean = double(in<T>(a.mean)[c]), rstd = double(in<T>(a.rstd)[c]);
  double sg = 0, sgx = 0;
  if (a.training || a.grad_weight || a.grad_bias) {
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
      const double g = double(G[idx(k)]);
      sg += g;
      sgx += g * (double(X[idx(k)]) - mean);
    }
    sg = block_sum(sg);
    sgx = block_sum(sgx);
  }
  if (threadIdx.x == 0) {
    if (a.grad_bias) out<T>(a.grad_bias)[c] = T(sg);
    if (a.grad_weight) out<T>(a.grad_weight)[c] = T(sgx * rstd);
  }
  if (!a.grad_x) return;
  const T k = T((a.weight ? double(in<T>(a.weight)[c]) : 1.0) * rstd);
  const T mg = a.training ? T(sg / double(count)) : T(0), c2 = a.training ? T(rstd * rstd * sgx / double(count)) : T(0);
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
    const int64_t i = idx(j);
    out<T>(a.grad_x)[i] = k * (G[i] - mg - (X[i] - T(mean)) * c2);
  }
}

template <class T>
void batch_norm_forward(const BatchNormArgs& a) {
  if (a.c == 0) return;
  batch_norm_stats_kernel<T><<<unsigned(a.c), kThreads, 0, current_stream()>>>(a);
  check_launch("batch_norm statistics kernel");
  if (a.n * a.l == 0) return;
  batch_norm_apply_kernel<T><<<grid_for(a.n * a.c * a.l), kThreads, 0, current_stream()>>>(a);
  check_launch("batch_norm kernel");
}

template <class T>
void batch_norm_backward(const BatchNormArgs& a) {
  if (a.c == 0) return;
  batch_norm_backward_kernel<T><<<unsigned(a.c), kThreads, 0, current_stream()>>>(a);
  check_launch("batch_norm backward kernel");
}

// ---------------------------------------------------------------------------------------------
// embedding

__global__ void check_indices_kernel(EmbeddingArgs a, long long* bad) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.count; i += int64_t(gridDim.x) * blockDim.x)
    if (a.indices[i] < 0 || a.indices[i] >= a.num_embeddings) atomicMin(bad, (long long)i);
}

int64_t first_bad_index(const EmbeddingArgs& a) {
  if (a.count == 0) return -1;
  BadPosition bad;
  check_indices_kernel<<<grid_for(a.count), kThreads, 0, current_stream()>>>(a, bad.device());
  check_launch("embedding index check");
  return bad.get();
}

template <class T>
__global__ void __launch_bounds__(kThreads) embedding_gather_kernel(EmbeddingArgs a) {
  const int64_t total = a.count * a.dim;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out<T>(a.out)[i] = in<T>(a.weight)[a.indices[i / a.dim] * a.dim + i % a.dim];
}

template <class T>
int64_t embedding_forward(const EmbeddingArgs& a) {
  const int64_t bad = first_bad_index(a);
  if (bad >= 0 || a.count * a.dim == 0) return bad;
  embedding_gather_kernel<T><<<grid_for(a.count * a.dim), kThreads, 0, current_stream()>>>(a);
  check_launch("embedding kernel");
  return -1;
}

// A warp per looked-up row; a row looked up twice is scaled by both warps to the same values.
template <class T>
__global__ void __launch_bounds__(kThreads) embedding_renorm_kernel(EmbeddingArgs a) {
  const int64_t i = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (i >= a.count) return;
  const int lane = threadIdx.x % 32;
  T* w = out<T>(a.weight) + a.indices[i] * a.dim;
  double acc = 0;
  for (int64_t d = lane; d < a.dim; d += 32) acc += pow(fabs(double(w[d])), a.norm_type);
  const double norm = pow(warp_sum(acc), 1.0 / a.norm_type);
  __syncwarp();
  if (norm > a.max_norm) {
    const T scale = T(a.max_norm / (norm + 1e-7));
    for (int64_t d = lane; d < a.dim; d += 32) w[d] *= scale;
  }
}

template <class T>
int64_t embedding_renorm(const EmbeddingArgs& a) {
  const int64_t bad = first_bad_index(a);
  if (bad >= 0 || a.count == 0) return bad;
  embedding_renorm_kernel<T><<<row_blocks(a.count), kThreads, 0, current_stream()>>>(a);
  check_launch("embedding renorm kernel");
  return -1;
}

// Row `order[b]` of the weight gradient is the sum, in position order, of the gradient rows at
// positions order_pos[start[b] .. start[b+1]): one block per distinct index.
template <class T>
__global__ void __launch_bounds__(kThreads) embedding_backward_kernel(EmbeddingArgs a, const int64_t* rows,
                                                                      const int64_t* start, const int64_t* positions) {
  const int64_t row = rows[blockIdx.x], b = start[blockIdx.x], e = start[blockIdx.x + 1];
  const T scale = a.scale_grad_by_freq ? T(1) / T(e - b) : T(1);
  T* gw = out<T>(a.grad_weight) + row * a.dim;
  for (int64_t d = threadIdx.x; d < a.dim; d += blockDim.x) {
    T s = 0;
    for (int64_t k = b; k < e; ++k) s += in<T>(a.grad_out)[positions[k] * a.dim + d] * scale;
    gw[d] = s;
  }
}

// The indices are grouped on the host (a counting sort keeps each group in position order), so
// every sum has a fixed order and no two blocks write the same row: deterministic, no atomics.
template <class T>
void embedding_backward(const EmbeddingArgs& a) {
  check_cuda(cudaMemsetAsync(a.grad_weight, 0, size_t(a.num_embeddings * a.dim) * sizeof(T), current_stream()),
             "cudaMemsetAsync (embedding gradient)");
  if (a.count == 0 || a.dim == 0) return;
  std::vector<int64_t> idx(a.count);
  copy_and_wait(idx.data(), a.indices, idx.size() * sizeof(int64_t), cudaMemcpyDeviceToHost, "embedding indices");
  std::vector<int64_t> counts(a.num_embeddings + 1, 0);
  for (int64_t j : idx) ++counts[j + 1];
  if (a.padding_idx >= 0) counts[a.padding_idx + 1] = 0;
  std::vector<int64_t> rows, start{0};
  for (int64_t j = 0; j < a.num_embeddings; ++j)
    if (counts[j + 1]) {
      rows.push_back(j);
      start.push_back(start.back() + counts[j + 1]);
    }
  if (rows.empty()) return;
  for (int64_t j = 0; j < a.num_embeddings; ++j) counts[j + 1] += counts[j];  // first slot of each row
  std::vector<int64_t> positions(start.back());
  for (int64_t i = 0; i < a.count; ++i)
    if (idx[i] != a.padding_idx) positions[counts[idx[i]]++] = i;
  const size_t nr = rows.size(), ns = start.size(), np = positions.size();
  Workspace buf((nr + ns + np) * sizeof(int64_t));
  int64_t* dev = static_cast<int64_t*>(buf.get());
  std::vector<int64_t> packed;
  packed.reserve(nr + ns + np);
  packed.insert(packed.end(), rows.begin(), rows.end());
  packed.insert(packed.end(), start.begin(), start.end());
  packed.insert(packed.end(), positions.begin(), positions.end());
  copy_and_wait(dev, packed.data(), packed.size() * sizeof(int64_t), cudaMemcpyHostToDevice, "embedding groups");
  const int threads = int(std::min<int64_t>(kThreads, (a.dim + 31) / 32 * 32));
  embedding_backward_kernel<T><<<unsigned(nr), threads, 0, current_stream()>>>(a, dev, dev + nr, dev + nr + ns);
  check_launch("embedding backward kernel");
}

// ---------------------------------------------------------------------------------------------
// dropout: element i of block b = i / 64 uses word (i % 64) / 16 of Philox(seed, offset + 16b + i % 16)

template <class T>
__global__ void __launch_bounds__(kThreads) dropout_kernel(DropoutArgs a, uint32_t threshold, T scale) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox(a.seed, a.offset + uint64_t(i / 64) * 16 + uint64_t(i % 16));
    out<T>(a.out)[i] = in<T>(a.x)[i] * (r.v[(i % 64) / 16] >= threshold ? scale : T(0));
  }
}

template <class T>
void dropout(const DropoutArgs& a) {
  if (a.n == 0) return;
  const bool all = a.p >= 1;  // p = 1 drops everything: scale 0, every word passes
  const uint32_t threshold = all ? 0u : uint32_t(a.p * 4294967296.0);
  dropout_kernel<T><<<grid_for(a.n), kThreads, 0, current_stream()>>>(a, threshold, all ? T(0) : T(1 / (1 - a.p)));
  check_launch("dropout kernel");
}

// ---------------------------------------------------------------------------------------------
// pointwise losses

template <class T>
__device__ __forceinline__ T sigmoid_of(T x) {
  const T e = exp(-fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <class T>
__device__ __forceinline__ T loss_of(PointwiseLoss op, T x, T y, T pw) {
  switch (op) {
    case PointwiseLoss::MSE: return (x - y) * (x - y);
    case PointwiseLoss::L1: return fabs(x - y);
    case PointwiseLoss::BCE: {  // torch's form, logs clamped at -100
      const T log_x = max(log(x), T(-100)), log_1mx = max(log1p(-x), T(-100));
      return (y - T(1)) * log_1mx - y * log_x;
    }
    default:
      return (T(1) - y) * x + (T(1) + (pw - T(1)) * y) * (log1p(exp(-fabs(x))) + (x < T(0) ? -x : T(0)));
  }
}

template <class T>
__device__ __forceinline__ T grad_of(PointwiseLoss op, T x, T y, T pw) {
  switch (op) {
    case PointwiseLoss::MSE: return T(2) * (x - y);
    case PointwiseLoss::L1: return x > y ? T(1) : (x < y ? T(-1) : T(0));
    case PointwiseLoss::BCE: return (x - y) / max((T(1) - x) * x, T(1e-12));
    default: return (T(1) + (pw - T(1)) * y) * sigmoid_of(x) - pw * y;
  }
}

template <class T>
__device__ __forceinline__ T weighted_loss(PointwiseLoss op, const PointwiseLossArgs& a, int64_t i) {
  const T pw = a.pos_weight ? in<T>(a.pos_weight)[i % a.pos_weight_period] : T(1);
  const T v = loss_of(op, in<T>(a.input)[i], in<T>(a.target)[i], pw);
  return a.weight ? v * in<T>(a.weight)[i] : v;
}

// Writes the losses, or (reduce) each block's sum in double to partial[blockIdx.x].
template <class T>
__global__ void __launch_bounds__(kThreads) loss_forward_kernel(PointwiseLoss op, PointwiseLossArgs a, double* partial,
                                                                long long* bad) {
  double s = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += int64_t(gridDim.x) * blockDim.x) {
    if (op == PointwiseLoss::BCE) {
      const T x = in<T>(a.input)[i];
      if (!(x >= T(0) && x <= T(1))) atomicMin(bad, (long long)i);
    }
    const T v = weighted_loss<T>(op, a, i);
    if (a.reduce)
      s += double(v);
    else
      out<T>(a.loss)[i] = v;
  }
  if (a.reduce) {
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) loss_backward_kernel(PointwiseLoss op, PointwiseLossArgs a) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += int64_t(gridDim.x) * blockDim.x) {
    const T pw = a.pos_weight ? in<T>(a.pos_weight)[i % a.pos_weight_period] : T(1);
    T g = grad_of(op, in<T>(a.input)[i], in<T>(a.target)[i], pw) * in<T>(a.grad_loss)[i * a.grad_stride] * T(a.scale);
    if (a.weight) g *= in<T>(a.weight)[i];
    out<T>(a.grad_input)[i] = g;
    if (a.grad_target) out<T>(a.grad_target)[i] = -g;
  }
}

template <class T>
int64_t loss_forward(PointwiseLoss op, const PointwiseLossArgs& a) {
  BadPosition bad;
  const unsigned blocks = grid_for(a.n);
  Workspace partial(blocks * sizeof(double));
  if (a.n > 0) {
    loss_forward_kernel<T><<<blocks, kThreads, 0, current_stream()>>>(op, a, static_cast<double*>(partial.get()), bad.device());
    check_launch("pointwise loss kernel");
  }
  const int64_t first_bad = bad.get();
  if (first_bad >= 0 || !a.reduce) return first_bad;
  // Block sums are added on the host in block order: the result does not depend on scheduling.
  std::vector<double> host(a.n > 0 ? blocks : 0);
  if (!host.empty())
    copy_and_wait(host.data(), partial.get(), host.size() * sizeof(double), cudaMemcpyDeviceToHost, "loss partials");
  double total = 0;
  for (double v : host) total += v;
  const T result = T(total * a.scale);
  copy_and_wait(a.loss, &result, sizeof result, cudaMemcpyHostToDevice, "loss");
  return -1;
}

template <class T>
void loss_backward(PointwiseLoss op, const PointwiseLossArgs& a) {
  if (a.n == 0) return;
  loss_backward_kernel<T><<<grid_for(a.n), kThreads, 0, current_stream()>>>(op, a);
  check_launch("pointwise loss backward kernel");
}

template <class T>
constexpr NormKernels kKernels = {&layer_norm_forward<T>, &layer_norm_backward<T>, &batch_norm_forward<T>,
                                  &batch_norm_backward<T>, &embedding_forward<T>,  &embedding_renorm<T>,
                                  &embedding_backward<T>,  &dropout<T>,            &loss_forward<T>,
                                  &loss_backward<T>,       nullptr};

[[maybe_unused]] const bool kRegistered = [] {
  norm_kernels.set(DeviceType::CUDA, DType::Float32, &kKernels<float>);
  norm_kernels.set(DeviceType::CUDA, DType::Float64, &kKernels<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
