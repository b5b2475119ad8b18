// A block of device memory shared by all tensors that view it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "lepton/core/device.h"

namespace lepton {

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  std::function<void(void*)> deleter;  // frees `data` (allocator, or releases a foreign owner)
  uint64_t version = 0;                // bumped by in-place writes

  Storage(void* d, size_t n, Device dev, std::function<void(void*)> del)
      : data(d), nbytes(n), device(dev), deleter(std::move(del)) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (deleter) deleter(data);
  }
};

// Allocates nbytes on `device` (64-byte aligned on the CPU; the caching allocator on CUDA).
// Raises OutOfMemory with the requested size instead of aborting.
std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device);

}  // namespace lepton
