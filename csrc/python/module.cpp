// The extension module lepton._C: engine errors become Python exceptions, then each binding
// file adds its part.
#include "convert.h"
#include "lepton/core/error.h"

namespace py = pybind11;
using namespace lepton;

namespace lepton::py_bind {
void bind_amp(py::module_& m);  // autocast state and gradient scaling (amp.cpp)
void bind_rnn(py::module_& m);  // fused LSTM/GRU cells (rnn.cpp)
void bind_sort(py::module_& m);  // gather/scatter, sort, topk, cumsum (sort.cpp)
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "Lepton engine: tensors and kernels";
  static py::exception<Error> oom(m, "OutOfMemoryError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      switch (e.kind()) {
        case ErrorKind::Value: PyErr_SetString(PyExc_ValueError, e.what()); return;
        case ErrorKind::Type: PyErr_SetString(PyExc_TypeError, e.what()); return;
        case ErrorKind::Index: PyErr_SetString(PyExc_IndexError, e.what()); return;
        case ErrorKind::NotImplemented: PyErr_SetString(PyExc_NotImplementedError, e.what()); return;
        case ErrorKind::OutOfMemory: PyErr_SetString(oom.ptr(), e.what()); return;
        case ErrorKind::Runtime: PyErr_SetString(PyExc_RuntimeError, e.what()); return;
      }
    } catch (const std::bad_alloc&) {
      PyErr_SetString(oom.ptr(), "out of memory: a host allocation failed");
    }
  });
  py_bind::bind_types(m);
  py_bind::bind_tensor(m);
  py_bind::bind_functions(m);
  py_bind::bind_interop(m);
  py_bind::bind_runtime(m);
  py_bind::bind_linalg(m);
  py_bind::bind_autograd(m);
  py_bind::bind_optim(m);
  py_bind::bind_softmax(m);
  py_bind::bind_conv(m);
  py_bind::bind_norm(m);
  py_bind::bind_attention(m);
  py_bind::bind_quant(m);
  py_bind::bind_dist(m);
  py_bind::bind_amp(m);
  py_bind::bind_rnn(m);
  py_bind::bind_sort(m);
}
