// Build and runtime facts (lepton.info), thread control, and the CUDA runtime functions.
#include <omp.h>

#include "convert.h"
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

}  // namespace

void bind_runtime(py::module_& m) {
  m.def("_build_info", &build_info);
  m.def("set_num_threads", [](int n) {
    LEPTON_CHECK(n >= 1, Value, "set_num_threads: expected a positive number of threads, got ", n);
    omp_set_num_threads(n);
  }, py::arg("num_threads"));
  m.def("get_num_threads", []() { return omp_get_max_threads(); });

  py::module_ cuda = m.def_submodule("_cuda", "CUDA runtime");
  cuda.def("is_compiled", []() { return cuda_backend() != nullptr; });
  cuda.def("device_count", &cuda_device_count);
  cuda.def("synchronize", [](std::optional<int> device) {
    const int d = device.value_or(0);
    require_cuda(d).synchronize(d);
  }, py::arg("device") = py::none());
  cuda.def("memory_allocated", [](int device) { return require_cuda(device).memory_allocated(device); }, py::arg("device") = 0);
  cuda.def("memory_reserved", [](int device) { return require_cuda(device).memory_reserved(device); }, py::arg("device") = 0);
  cuda.def("empty_cache", []() {
    if (cuda_backend() && cuda_device_count() > 0) cuda_backend()->empty_cache();
  });
  cuda.def("get_device_name", [](int device) { return require_cuda(device).device_name(device); }, py::arg("device") = 0);
}

}  // namespace lepton::py_bind
