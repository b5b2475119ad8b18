// Streams and events. Each host thread has a current stream per device, the legacy default
// stream until set; every Lepton kernel and copy is queued on it, so work put on a side stream
// (e.g. gradient all-reduces) overlaps with the compute stream and is ordered against it with
// events. Streams are created non-blocking: they do not implicitly wait for the default one.
#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"

namespace lepton::cuda {
namespace {

constexpr int kMaxDevices = 64;
thread_local cudaStream_t t_current[kMaxDevices] = {};

int checked(int device) {
  LEPTON_CHECK(device >= 0 && device < kMaxDevices, Value, "invalid CUDA device ", device);
  return device;
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
cudaEvent_t as_event(void* e) { return static_cast<cudaEvent_t>(e); }

void* create(int device, int priority) {
  DeviceGuard guard(checked(device));
  cudaStream_t s = nullptr;
  check_cuda(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, priority), "cudaStreamCreateWithPriority");
  return s;
}

// Streams are destroyed from Python finalisers: errors are dropped rather than raised there.
void destroy(void* stream, int device) {
  if (!stream) return;
  DeviceGuard guard(device);
  if (t_current[checked(device)] == as_stream(stream)) t_current[device] = nullptr;
  if (cudaStreamDestroy(as_stream(stream)) != cudaSuccess) cudaGetLastError();
}

void synchronize(void* stream, int device) {
  DeviceGuard guard(device);
  check_cuda(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

bool query(void* stream, int device) {
  DeviceGuard guard(device);
  const cudaError_t err = cudaStreamQuery(as_stream(stream));
  if (err == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  check_cuda(err, "cudaStreamQuery");
  return true;
}

void* current(int device) { return t_current[checked(device)]; }
void set_current(void* stream, int device) { t_current[checked(device)] = as_stream(stream); }

void wait_event(void* stream, void* event, int device) {
  DeviceGuard guard(device);
  check_cuda(cudaStreamWaitEvent(as_stream(stream), as_event(event), 0), "cudaStreamWaitEvent");
}

void* event_create(int device, bool timing) {
  DeviceGuard guard(checked(device));
  cudaEvent_t e = nullptr;
  check_cuda(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming), "cudaEventCreate");
  return e;
}

void event_destroy(void* event, int device) {
  if (!event) return;
  DeviceGuard guard(device);
  if (cudaEventDestroy(as_event(event)) != cudaSuccess) cudaGetLastError();
}

void event_record(void* event, void* stream, int device) {
  DeviceGuard guard(device);
  check_cuda(cudaEventRecord(as_event(event), as_stream(stream)), "cudaEventRecord");
}

void event_synchronize(void* event, int device) {
  DeviceGuard guard(device);
  check_cuda(cudaEventSynchronize(as_event(event)), "cudaEventSynchronize");
}

bool event_query(void* event, int device) {
  DeviceGuard guard(device);
  const cudaError_t err = cudaEventQuery(as_event(event));
  if (err == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  check_cuda(err, "cudaEventQuery");
  return true;
}

float event_elapsed_ms(void* start, void* end, int device) {
  DeviceGuard guard(device);
  float ms = 0;
  check_cuda(cudaEventElapsedTime(&ms, as_event(start), as_event(end)), "cudaEventElapsedTime");
  return ms;
}

const CudaStreamApi kApi = {&create,       &destroy,       &synchronize,  &query,
                            &current,      &set_current,   &wait_event,   &event_create,
                            &event_destroy, &event_record, &event_synchronize, &event_query,
                            &event_elapsed_ms};

}  // namespace

cudaStream_t current_stream(int device) { return t_current[checked(device)]; }
cudaStream_t current_stream() { return current_stream(current_device()); }

void copy_and_wait(void* dst, const void* src, size_t nbytes, cudaMemcpyKind kind, const char* what) {
  const cudaStream_t s = current_stream();
  check_cuda(cudaMemcpyAsync(dst, src, nbytes, kind, s), what);
  check_cuda(cudaStreamSynchronize(s), what);
}

const CudaStreamApi& stream_api() { return kApi; }

}  // namespace lepton::cuda
