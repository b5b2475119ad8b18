// Host memory for tensors. Large blocks are 2 MiB-aligned, backed by transparent huge pages and
// cached after use: a fresh 64 MB buffer otherwise costs ~16k page faults on every op.
#pragma once
#include <cstddef>

namespace lepton {

// Returns a 64-byte aligned block of at least nbytes; raises OutOfMemory on failure.
// `capacity` receives the size to pass back to cpu_free.
void* cpu_alloc(size_t nbytes, size_t& capacity);
void cpu_free(void* ptr, size_t capacity);
size_t cpu_cached_bytes();
void cpu_empty_cache();
// Bytes in blocks handed out to tensors (capacities), and the most of it since the last reset.
size_t cpu_allocated_bytes();
size_t cpu_peak_allocated_bytes();
void cpu_reset_peak_allocated();

}  // namespace lepton
