// The CUDA runtime as seen by the device-agnostic core. The CUDA object files fill this table
// at load time; in a build without CUDA it stays empty and every use raises a clear error.
#pragma once
#include <cstddef>
#include <string>

namespace lepton {

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };

// Streams and events as opaque handles (cudaStream_t, cudaEvent_t); the null stream is the
// legacy default stream. Each host thread has its own current stream per device.
struct CudaStreamApi {
  void* (*create)(int device, int priority);  // non-blocking; lower priority numbers run first
  void (*destroy)(void* stream, int device);
  void (*synchronize)(void* stream, int device);
  bool (*query)(void* stream, int device);  // true when everything queued on it has finished
  void* (*current)(int device);
  void (*set_current)(void* stream, int device);
  void (*wait_event)(void* stream, void* event, int device);  // later work on stream waits for event
  void* (*event_create)(int device, bool timing);
  void (*event_destroy)(void* event, int device);
  void (*event_record)(void* event, void* stream, int device);
  void (*event_synchronize)(void* event, int device);
  bool (*event_query)(void* event, int device);
  float (*event_elapsed_ms)(void* start, void* end, int device);
};

struct CudaBackend {
  int (*device_count)();  // 0 when no driver or no device
  void* (*malloc)(size_t nbytes, int device);  // caching allocator; raises OutOfMemory
  void (*free)(void* ptr, int device);
  // Ordered on the current stream; host copies return once the data is usable on the host.
  void (*memcpy)(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);
  size_t (*memory_allocated)(int device);
  size_t (*memory_reserved)(int device);
  size_t (*max_memory_allocated)(int device);
  void (*reset_peak_memory_stats)(int device);
  void (*empty_cache)();
  void (*synchronize)(int device);
  std::string (*device_name)(int device);
  int (*driver_version)();  // 0 when no driver
  void (*set_device)(int device);  // makes `device` current for the kernels that follow
  const CudaStreamApi* streams;
};

// nullptr when Lepton was built without CUDA.
const CudaBackend* cuda_backend();
void register_cuda_backend(const CudaBackend* backend);
// The backend, or a clear error when CUDA is not compiled in or no device is present.
const CudaBackend& require_cuda(int device);

}  // namespace lepton
