// The CUDA runtime as seen by the device-agnostic core. The CUDA object files fill this table
// at load time; in a build without CUDA it stays empty and every use raises a clear error.
#pragma once
#include <cstddef>
#include <string>

namespace lepton {

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };

struct CudaBackend {
  int (*device_count)();  // 0 when no driver or no device
  void* (*malloc)(size_t nbytes, int device);  // caching allocator; raises OutOfMemory
  void (*free)(void* ptr, int device);
  // Ordered on the current stream; host copies return once the data is usable on the host.
  void (*memcpy)(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);
  size_t (*memory_allocated)(int device);
  size_t (*memory_reserved)(int device);
  void (*empty_cache)();
  void (*synchronize)(int device);
  std::string (*device_name)(int device);
  int (*driver_version)();  // 0 when no driver
  void (*set_device)(int device);  // makes `device` current for the kernels that follow
};

// nullptr when Lepton was built without CUDA.
const CudaBackend* cuda_backend();
void register_cuda_backend(const CudaBackend* backend);
// The backend, or a clear error when CUDA is not compiled in or no device is present.
const CudaBackend& require_cuda(int device);

}  // namespace lepton
