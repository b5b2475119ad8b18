#include "lepton/core/storage.h"

#include "lepton/core/cpu_allocator.h"
#include "lepton/core/cuda_backend.h"
#include "lepton/core/error.h"

namespace lepton {

namespace {
const CudaBackend* g_cuda = nullptr;
}  // namespace

const CudaBackend* cuda_backend() { return g_cuda; }
void register_cuda_backend(const CudaBackend* backend) { g_cuda = backend; }

const CudaBackend& require_cuda(int device) {
  LEPTON_CHECK(g_cuda != nullptr, Runtime,
               "Lepton was built without CUDA support (rebuild with LEPTON_CUDA=ON and nvcc on PATH)");
  int n = g_cuda->device_count();
  LEPTON_CHECK(n > 0, Runtime, "CUDA is not available: no CUDA driver or no CUDA device was found");
  LEPTON_CHECK(device >= 0 && device < n, Value, "invalid CUDA device cuda:", device, " (", n,
               " device(s) available)");
  return *g_cuda;
}

std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device) {
  if (device.is_cuda()) {
    const CudaBackend& cuda = require_cuda(device.index);
    void* p = nbytes ? cuda.malloc(nbytes, device.index) : nullptr;
    int idx = device.index;
    auto free_fn = cuda.free;
    return std::make_shared<Storage>(p, nbytes, device, [free_fn, idx](void* q) {
      if (q) free_fn(q, idx);
    });
  }
  size_t capacity = 0;
  void* p = cpu_alloc(nbytes, capacity);
  return std::make_shared<Storage>(p, nbytes, device, [capacity](void* q) { cpu_free(q, capacity); });
}

}  // namespace lepton
