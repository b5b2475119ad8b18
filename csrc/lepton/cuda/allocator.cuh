// The caching device allocator (allocator.cu), as used by the backend table and Workspace.
#pragma once
#include <cstddef>

namespace lepton::cuda {

// Raises ErrorKind::OutOfMemory when the driver cannot provide the block even after the
// cache of `device` has been released. Returns nullptr for 0 bytes.
void* cached_malloc(size_t nbytes, int device);
// Returns the block to its device's cache; never throws, never calls the driver.
void cached_free(void* ptr, int device) noexcept;
size_t memory_allocated(int device);  // bytes in blocks handed out (block sizes, rounded)
size_t memory_reserved(int device);   // bytes held from the driver (handed out + cached)
size_t max_memory_allocated(int device);  // the most memory_allocated since the last reset
void reset_peak_memory_stats(int device);
void empty_cache();                   // cudaFree every cached block on every device

}  // namespace lepton::cuda
