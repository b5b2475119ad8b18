// Caching device allocator. cudaMalloc/cudaFree are slow and synchronise the device, so freed
// blocks go to a per-device free list and are handed out again without touching the driver.
//
// Size classes: requests up to 1 MiB round up to a multiple of 512 B (waste < 512 B, and
// small tensors come in many distinct sizes); larger ones round up to a multiple of 2 MiB,
// the driver's own allocation granularity, so the rounding costs no real memory. A request
// takes the smallest cached block of at least its rounded size and at most 1/8 more, which
// lets a 98 MiB activation reuse a 100 MiB block without letting a small tensor pin a large
// one. Blocks are never split or merged; when the driver runs out, the device's cache is
// released and the allocation retried once.
//
// A block belongs to the stream that was current when it was allocated and is only handed out
// again on that stream: work queued there before the free is then ordered before any reuse.
// (A tensor used on another stream must be kept alive until that stream is done with it.)
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>
#include <unordered_map>
#include <vector>

#include "lepton/core/error.h"
#include "lepton/cuda/allocator.cuh"
#include "lepton/cuda/common.cuh"

namespace lepton::cuda {
namespace {

constexpr size_t kSmallLimit = size_t(1) << 20;
constexpr size_t kSmallUnit = 512;
constexpr size_t kLargeUnit = size_t(2) << 20;
constexpr int kMaxDevice = 1024;

double mib(size_t bytes) { return double(bytes) / double(1 << 20); }

class CachingAllocator {
 public:
  void* allocate(size_t nbytes, int device) {
    LEPTON_CHECK(device >= 0 && device < kMaxDevice, Value, "invalid CUDA device ", device);
    const size_t unit = nbytes <= kSmallLimit ? kSmallUnit : kLargeUnit;
    LEPTON_CHECK(nbytes <= ~size_t(0) - unit, OutOfMemory, "CUDA out of memory: cannot allocate ",
                 nbytes, " bytes on cuda:", device);
    const size_t size = (nbytes + unit - 1) / unit * unit;

    const uintptr_t stream = reinterpret_cast<uintptr_t>(current_stream(device));
    std::lock_guard<std::mutex> lock(mu_);
    Pool& pool = pool_of(device);
    auto hit = pool.cached.lower_bound({stream, size});
    if (hit != pool.cached.end() && hit->first.first == stream && hit->first.second <= size + size / 8) {
      void* ptr = hit->second;
      hand_out(pool, ptr, hit->first.second, device, stream);
      pool.cached.erase(hit);
      return ptr;
    }

    DeviceGuard guard(device);
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it so the next launch check does not see it
      release_cached(device, pool);
      err = cudaMalloc(&ptr, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) cudaGetLastError();
      raise(ErrorKind::OutOfMemory, "CUDA out of memory: tried to allocate ", nbytes, " bytes (",
            mib(nbytes), " MiB) on cuda:", device, "; the device has ", mib(free_bytes), " MiB free of ",
            mib(total_bytes), " MiB, Lepton holds ", mib(pool.allocated), " MiB in tensors and ",
            mib(pool.reserved), " MiB reserved");
    }
    check_cuda(err, "cudaMalloc");
    pool.reserved += size;
    hand_out(pool, ptr, size, device, stream);
    return ptr;
  }

  void release(void* ptr) noexcept {
    if (!ptr) return;
    try {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(ptr);
      if (it == live_.end()) return;  // not from this allocator: leave it alone
      const Block block = it->second;
      live_.erase(it);
      Pool& pool = pools_[block.device];
      pool.allocated -= block.size;
      pool.cached.emplace(std::make_pair(block.stream, block.size), ptr);
    } catch (const std::exception& e) {
      // Only a failing mutex or an exhausted host heap get here; the block is leaked.
      std::fprintf(stderr, "lepton: leaking a CUDA block: %s\n", e.what());
    }
  }

  size_t allocated(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    return device >= 0 && size_t(device) < pools_.size() ? pools_[device].allocated : 0;
  }

  size_t peak(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    return device >= 0 && size_t(device) < pools_.size() ? pools_[device].peak : 0;
  }

  void reset_peak(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    if (device >= 0 && size_t(device) < pools_.size()) pools_[device].peak = pools_[device].allocated;
  }

  size_t reserved(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    return device >= 0 && size_t(device) < pools_.size() ? pools_[device].reserved : 0;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t d = 0; d < pools_.size(); ++d) release_cached(int(d), pools_[d]);
  }

 private:
  struct Block {
    size_t size;
    int device;
    uintptr_t stream;
  };
  struct Pool {
    std::multimap<std::pair<uintptr_t, size_t>, void*> cached;  // (stream, size) -> free block
    size_t allocated = 0, reserved = 0, peak = 0;  // peak: the most `allocated` since the last reset
  };

  Pool& pool_of(int device) {
    if (size_t(device) >= pools_.size()) pools_.resize(size_t(device) + 1);
    return pools_[device];
  }

  void hand_out(Pool& pool, void* ptr, size_t size, int device, uintptr_t stream) {
    live_.emplace(ptr, Block{size, device, stream});
    pool.allocated += size;
    if (pool.allocated > pool.peak) pool.peak = pool.allocated;
  }

  // Cached blocks may still be read by queued kernels, hence the synchronize. Every block is
  // dropped from the books even if the driver reports an error, which is then raised: such
  // errors are sticky ones from an earlier kernel.
  void release_cached(int device, Pool& pool) {
    if (pool.cached.empty()) return;
    DeviceGuard guard(device);
    cudaError_t first = cudaDeviceSynchronize();
    for (const auto& [key, ptr] : pool.cached) {
      const cudaError_t err = cudaFree(ptr);
      if (first == cudaSuccess) first = err;
      pool.reserved -= key.second;
    }
    pool.cached.clear();
    check_cuda(first, "cudaFree");
  }

  std::mutex mu_;
  std::vector<Pool> pools_;
  std::unordered_map<void*, Block> live_;
};

// Never destroyed: tensors may be freed during interpreter shutdown, after static destructors.
CachingAllocator& allocator() {
  static CachingAllocator* instance = new CachingAllocator;
  return *instance;
}

}  // namespace

void* cached_malloc(size_t nbytes, int device) { return nbytes ? allocator().allocate(nbytes, device) : nullptr; }
void cached_free(void* ptr, int /*device: the block remembers its own*/) noexcept { allocator().release(ptr); }
size_t memory_allocated(int device) { return allocator().allocated(device); }
size_t memory_reserved(int device) { return allocator().reserved(device); }
size_t max_memory_allocated(int device) { return allocator().peak(device); }
void reset_peak_memory_stats(int device) { allocator().reset_peak(device); }
void empty_cache() { allocator().empty_cache(); }

Workspace::Workspace(size_t nbytes) : device_(current_device()) { ptr_ = cached_malloc(nbytes, device_); }
Workspace::~Workspace() { cached_free(ptr_, device_); }

}  // namespace lepton::cuda
