// Build and runtime facts (lepton.info), thread control, and the CUDA runtime functions.
#include <omp.h>

#include "convert.h"
#include "lepton/core/cpu_allocator.h"
#include "lepton/core/cuda_backend.h"
#include "lepton/core/error.h"
#include "lepton/cpu/kernel_set.h"

#ifndef LEPTON_VERSION
#define LEPTON_VERSION "0.0.0"
#endif

namespace lepton::py_bind {

namespace {

int cuda_device_count() {
  const CudaBackend* cuda = cuda_backend();
  return cuda ? cuda->device_count() : 0;
}

py::dict build_info() {
  py::dict d;
  d["version"] = LEPTON_VERSION;
#ifdef LEPTON_CXX_COMPILER
  d["compiler"] = LEPTON_CXX_COMPILER;
#endif
  d["cpu_isa"] = cpu::active_isa();
  d["num_threads"] = omp_get_max_threads();
#ifdef LEPTON_WITH_CUDA
  d["cuda_compiled"] = true;
  d["cuda_archs"] = LEPTON_CUDA_ARCHS;
  d["cuda_version"] = LEPTON_CUDA_VERSION;
#else
  d["cuda_compiled"] = false;
  d["cuda_archs"] = "";
  d["cuda_version"] = "";
#endif
  const CudaBackend* cuda = cuda_backend();
  const int n = cuda_device_count();
  d["cuda_available"] = n > 0;
  d["cuda_driver_version"] = cuda ? cuda->driver_version() : 0;
  py::list names;
  for (int i = 0; i < n; ++i) names.append(cuda->device_name(i));
  d["cuda_devices"] = names;
  return d;
}

// Streams and events cross into Python as integer handles owned by lepton.cuda.Stream/Event.
void bind_streams(py::module_& cuda) {
  using Handle = uintptr_t;
  auto api = [](int device) -> const CudaStreamApi& { return *require_cuda(device).streams; };
  auto ptr = [](Handle h) { return reinterpret_cast<void*>(h); };
  cuda.def("stream_create", [=](int device, int priority) { return Handle(api(device).create(device, priority)); });
  cuda.def("stream_destroy", [=](Handle s, int device) { api(device).destroy(ptr(s), device); });
  cuda.def("stream_synchronize", [=](Handle s, int device) {
    py::gil_scoped_release nogil;
    api(device).synchronize(ptr(s), device);
  });
  cuda.def("stream_query", [=](Handle s, int device) { return api(device).query(ptr(s), device); });
  cuda.def("current_stream", [=](int device) { return Handle(api(device).current(device)); });
  cuda.def("set_stream", [=](Handle s, int device) { api(device).set_current(ptr(s), device); });
  cuda.def("stream_wait_event", [=](Handle s, Handle e, int device) { api(device).wait_event(ptr(s), ptr(e), device); });
  cuda.def("event_create", [=](int device, bool timing) { return Handle(api(device).event_create(device, timing)); });
  cuda.def("event_destroy", [=](Handle e, int device) { api(device).event_destroy(ptr(e), device); });
  cuda.def("event_record", [=](Handle e, Handle s, int device) { api(device).event_record(ptr(e), ptr(s), device); });
  cuda.def("event_synchronize", [=](Handle e, int device) {
    py::gil_scoped_release nogil;
    api(device).event_synchronize(ptr(e), device);
  });
  cuda.def("event_query", [=](Handle e, int device) { return api(device).event_query(ptr(e), device); });
  cuda.def("event_elapsed_ms", [=](Handle a, Handle b, int device) { return api(device).event_elapsed_ms(ptr(a), ptr(b), device); });
}

}  // namespace

void bind_runtime(py::module_& m) {
  m.def("_build_info", &build_info);
  m.def("set_num_threads", [](int n) {
    LEPTON_CHECK(n >= 1, Value, "set_num_threads: expected a positive number of threads, got ", n);
    omp_set_num_threads(n);
  }, py::arg("num_threads"));
  m.def("get_num_threads", []() { return omp_get_max_threads(); });
  m.def("_cpu_memory_allocated", &cpu_allocated_bytes);
  m.def("_cpu_max_memory_allocated", &cpu_peak_allocated_bytes);
  m.def("_cpu_reset_peak_memory_stats", &cpu_reset_peak_allocated);
  m.def("_cpu_empty_cache", &cpu_empty_cache);

  py::module_ cuda = m.def_submodule("_cuda", "CUDA runtime");
  cuda.def("is_compiled", []() { return cuda_backend() != nullptr; });
  cuda.def("device_count", &cuda_device_count);
  cuda.def("synchronize", [](std::optional<int> device) {
    const int d = device.value_or(0);
    require_cuda(d).synchronize(d);
  }, py::arg("device") = py::none());
  cuda.def("memory_allocated", [](int device) { return require_cuda(device).memory_allocated(device); }, py::arg("device") = 0);
  cuda.def("memory_reserved", [](int device) { return require_cuda(device).memory_reserved(device); }, py::arg("device") = 0);
  cuda.def("max_memory_allocated", [](int device) { return require_cuda(device).max_memory_allocated(device); },
           py::arg("device") = 0);
  cuda.def("reset_peak_memory_stats", [](int device) { require_cuda(device).reset_peak_memory_stats(device); },
           py::arg("device") = 0);
  cuda.def("empty_cache", []() {
    if (cuda_backend() && cuda_device_count() > 0) cuda_backend()->empty_cache();
  });
  cuda.def("get_device_name", [](int device) { return require_cuda(device).device_name(device); }, py::arg("device") = 0);
  cuda.def("set_device", [](int device) { require_cuda(device).set_device(device); }, py::arg("device"));
  bind_streams(cuda);
}

}  // namespace lepton::py_bind
