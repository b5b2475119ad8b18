// The CUDA runtime behind the core's CudaBackend table: devices, copies, synchronisation and
// error reporting. Registered at load time; with no driver every query answers "no device"
// instead of failing, so the module imports and runs on the CPU.
#include <atomic>
#include <string>

#include "lepton/core/cuda_backend.h"
#include "lepton/core/error.h"
#include "lepton/cuda/allocator.cuh"
#include "lepton/cuda/common.cuh"

namespace lepton::cuda {

[[noreturn]] void raise_cuda(cudaError_t err, const char* what) {
  cudaGetLastError();
  raise(ErrorKind::Runtime, "CUDA error in ", what, ": ", cudaGetErrorString(err), " (",
        cudaGetErrorName(err), ")");
}

int current_device() {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  return device;
}

int sm_count() {
  constexpr int kCached = 64;
  static std::atomic<int> cache[kCached] = {};
  const int device = current_device();
  int n = device < kCached ? cache[device].load(std::memory_order_relaxed) : 0;
  if (n == 0) {
    check_cuda(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device),
               "cudaDeviceGetAttribute(MultiProcessorCount)");
    if (device < kCached) cache[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

DeviceGuard::DeviceGuard(int device) : previous_(current_device()) {
  if (previous_ != device) {
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    switched_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  if (switched_ && cudaSetDevice(previous_) != cudaSuccess) cudaGetLastError();
}

namespace {

int device_count() {
  // Asked on every allocation, answered once: the set of devices is fixed for the process.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

int driver_version() {
  int version = 0;
  if (cudaDriverGetVersion(&version) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return version;
}

// Copies run on the current stream; those touching host memory wait for it, since the host
// buffer may be pageable and reused, and device-to-host data must be complete on return.
void copy_memory(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  if (nbytes == 0) return;
  DeviceGuard guard(device);
  switch (kind) {
    case CopyKind::HostToDevice:
      copy_and_wait(dst, src, nbytes, cudaMemcpyHostToDevice, "host to device");
      break;
    case CopyKind::DeviceToHost:
      copy_and_wait(dst, src, nbytes, cudaMemcpyDeviceToHost, "device to host");
      break;
    case CopyKind::DeviceToDevice:
      check_cuda(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, current_stream()),
                 "cudaMemcpyAsync (device to device)");
      break;
  }
}

void synchronize(int device) {
  DeviceGuard guard(device);
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

std::string device_name(int device) {
  cudaDeviceProp prop;
  check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

void set_device(int device) { check_cuda(cudaSetDevice(device), "cudaSetDevice"); }

const CudaBackend kBackend = {
    &device_count,         &cached_malloc,           &cached_free,  &copy_memory,  &memory_allocated,
    &memory_reserved,      &max_memory_allocated,    &reset_peak_memory_stats,     &empty_cache,
    &synchronize,          &device_name,             &driver_version,              &set_device,
    &stream_api(),
};
[[maybe_unused]] const bool kRegistered = (register_cuda_backend(&kBackend), true);

}  // namespace
}  // namespace lepton::cuda
