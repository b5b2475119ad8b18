#include "lepton/core/cpu_allocator.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>

#include "lepton/core/error.h"

namespace lepton {

namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kLargeBlock = size_t(1) << 20;   // from here on: huge pages and caching
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kCacheLimit = size_t(2) << 30;   // cached bytes kept at most

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> blocks;  // capacity -> block
  size_t bytes = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during shutdown
  return *c;
}

std::atomic<size_t> g_allocated{0}, g_peak{0};

void count_alloc(size_t capacity) {
  const size_t now = g_allocated.fetch_add(capacity, std::memory_order_relaxed) + capacity;
  size_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void* alloc_block(size_t nbytes, size_t& capacity) {
  if (nbytes < kLargeBlock) {
    capacity = ((nbytes + kAlignment - 1) / kAlignment) * kAlignment;
    if (capacity == 0) capacity = kAlignment;
    void* p = std::aligned_alloc(kAlignment, capacity);
    if (!p) raise(ErrorKind::OutOfMemory, "out of memory: failed to allocate ", nbytes, " bytes on the CPU");
    return p;
  }
  capacity = ((nbytes + kHugePage - 1) / kHugePage) * kHugePage;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.blocks.find(capacity);
    if (it != c.blocks.end()) {
      void* p = it->second;
      c.blocks.erase(it);
      c.bytes -= capacity;
      return p;
    }
  }
  void* p = std::aligned_alloc(kHugePage, capacity);
  if (!p) {
    cpu_empty_cache();
    p = std::aligned_alloc(kHugePage, capacity);
  }
  if (!p) raise(ErrorKind::OutOfMemory, "out of memory: failed to allocate ", nbytes, " bytes on the CPU");
  madvise(p, capacity, MADV_HUGEPAGE);  // advisory: ignored where huge pages are off
  return p;
}

}  // namespace

void* cpu_alloc(size_t nbytes, size_t& capacity) {
  void* p = alloc_block(nbytes, capacity);
  count_alloc(capacity);
  return p;
}

void cpu_free(void* ptr, size_t capacity) {
  g_allocated.fetch_sub(capacity, std::memory_order_relaxed);
  if (capacity >= kLargeBlock) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.bytes + capacity <= kCacheLimit) {
      c.blocks.emplace(capacity, ptr);
      c.bytes += capacity;
      return;
    }
  }
  std::free(ptr);
}

size_t cpu_allocated_bytes() { return g_allocated.load(std::memory_order_relaxed); }
size_t cpu_peak_allocated_bytes() { return g_peak.load(std::memory_order_relaxed); }
void cpu_reset_peak_allocated() { g_peak.store(g_allocated.load(std::memory_order_relaxed), std::memory_order_relaxed); }

size_t cpu_cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.bytes;
}

void cpu_empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& kv : c.blocks) std::free(kv.second);
  c.blocks.clear();
  c.bytes = 0;
}

}  // namespace lepton
