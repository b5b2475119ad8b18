// Fused multi-tensor optimizer steps, the global norm of a tensor list and its scaling on the
// GPU, one kernel launch per call however many tensors: the host cuts the list into chunks of
// at most kChunk elements and uploads a table of the tensors' Slots (their buffers, as in
// ops/optim_rules.h) and of the chunks; block b processes chunk b. The per-element updates
// are the CPU kernels' (ops/optim_rules.h).
#include <algorithm>
#include <cstring>
#include <vector>

#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"
#include "lepton/ops/optim_rules.h"

namespace lepton::cuda {
namespace {

using namespace optim_rules;

constexpr int64_t kChunk = 1 << 14;  // elements per block: 64 per thread, thousands of blocks at 100M

struct Chunk {
  int64_t tensor, begin, end;
};

// The list's Slots and chunks in device memory (one upload per call).
class ChunkTable {
 public:
  template <class Args>
  explicit ChunkTable(const Args& a) : ChunkTable(build(a)) {}

  unsigned blocks() const { return unsigned(chunks_); }
  const Slot* slots() const { return static_cast<const Slot*>(mem_.get()); }
  const Chunk* chunks() const {
    return reinterpret_cast<const Chunk*>(static_cast<const char*>(mem_.get()) + chunk_offset_);
  }

 private:
  struct Host {
    std::vector<Slot> slots;
    std::vector<Chunk> chunks;
  };

  template <class Args>
  static Host build(const Args& a) {
    Host h;
    h.slots.reserve(a.list.count);
    for (int64_t t = 0; t < a.list.count; ++t) {
      h.slots.push_back(slot_of(a, t));
      for (int64_t b = 0; b < a.list.numel[t]; b += kChunk) h.chunks.push_back({t, b, std::min(a.list.numel[t], b + kChunk)});
    }
    return h;
  }

  explicit ChunkTable(Host h)
      : chunks_(h.chunks.size()),
        chunk_offset_(h.slots.size() * sizeof(Slot)),
        mem_(std::max<size_t>(1, chunk_offset_ + chunks_ * sizeof(Chunk))) {
    std::vector<char> bytes(chunk_offset_ + chunks_ * sizeof(Chunk));
    if (bytes.empty()) return;
    std::memcpy(bytes.data(), h.slots.data(), chunk_offset_);
    std::memcpy(bytes.data() + chunk_offset_, h.chunks.data(), chunks_ * sizeof(Chunk));
    // From pageable memory the copy is staged before cudaMemcpyAsync returns, so `bytes` may
    // go; the kernels that read the table follow it on the same stream, without a host wait.
    check_cuda(cudaMemcpyAsync(mem_.get(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice, current_stream()),
               "optimizer chunk table");
  }

  size_t chunks_, chunk_offset_;
  Workspace mem_;
};

// Applies an update of optim_rules.h to every element of the list: one block per chunk.
template <class Update>
__global__ void __launch_bounds__(kThreads)
    update_kernel(const Slot* slots, const Chunk* chunks, typename Update::Scalars s) {
  const Chunk c = chunks[blockIdx.x];
  const Update u(slots[c.tensor], s);
  for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x) u(i);
}

template <class Update, class Args>
void apply(const Args& a, const typename Update::Scalars& s, const char* what) {
  const ChunkTable table(a);
  if (table.blocks() == 0) return;
  update_kernel<Update><<<table.blocks(), kThreads, 0, current_stream()>>>(table.slots(), table.chunks(), s);
  check_launch(what);
}

template <class T>
void sgd_cuda(const SgdArgs& a) {
  with_sgd_update<T>(a, [&](auto tag) {
    using U = typename decltype(tag)::type;
    apply<U>(a, sgd_scalars<typename U::A>(a.h), "sgd kernel");
  });
}

template <class T>
void adam_cuda(const AdamArgs& a) {
  with_adam_update<T>(a, [&](auto tag) {
    using U = typename decltype(tag)::type;
    apply<U>(a, adam_scalars<typename U::A>(a.h), "adam kernel");
  });
}

template <class T>
void scale_cuda(const ScaleArgs& a) {
  apply<ScaleUpdate<T>>(a, compute_t<T>(a.scale), "scale kernel");
}

// Each block reduces its chunk into partial[blockIdx.x].
template <class T, NormKind K>
__global__ void __launch_bounds__(kThreads)
    norm_kernel(const Slot* slots, const Chunk* chunks, double power, double* partial) {
  const Chunk c = chunks[blockIdx.x];
  const T* x = static_cast<const T*>(slots[c.tensor].param);
  double acc = 0;
  for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x)
    acc = norm_combine<K>(acc, norm_term<K>(double(to_compute(x[i])), power));
  __shared__ double lanes[kThreads];
  lanes[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) lanes[threadIdx.x] = norm_combine<K>(lanes[threadIdx.x], lanes[threadIdx.x + w]);
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = lanes[0];
}

// The per-chunk partials are combined on the host in chunk order: the result does not depend
// on scheduling, and the one copy back is small next to the reads.
template <class T>
double norm_cuda(const NormArgs& a) {
  const ChunkTable table(a);
  if (table.blocks() == 0) return 0;
  Workspace partial(table.blocks() * sizeof(double));
  std::vector<double> host(table.blocks());
  return with_norm_kind(a.p, [&](auto kind) {
    constexpr NormKind K = decltype(kind)::value;
    norm_kernel<T, K><<<table.blocks(), kThreads, 0, current_stream()>>>(table.slots(), table.chunks(), a.p,
                                                                           static_cast<double*>(partial.get()));
    check_launch("norm kernel");
    copy_and_wait(host.data(), partial.get(), host.size() * sizeof(double), cudaMemcpyDeviceToHost, "norm partials");
    double total = 0;
    for (double v : host) total = norm_combine<K>(total, v);
    return total;
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
