// Fused softmax family: _C.softmax, _C.log_softmax and _C.cross_entropy_rows (per-row losses
// of logits [N, C] against int64 class indices). The GIL is released while the kernels run.
#include "convert.h"

namespace lepton::py_bind {

void bind_softmax(py::module_& m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  m.def("softmax", &ops::softmax, py::arg("input"), py::arg("dim"), nogil(), "softmax along dim in one fused pass");
  m.def("log_softmax", &ops::log_softmax, py::arg("input"), py::arg("dim"), nogil(),
        "log_softmax along dim in one fused pass");
  m.def("cross_entropy_rows", &ops::cross_entropy_rows, py::arg("logits"), py::arg("target"),
        py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0, nogil(),
        "per-row softmax cross-entropy of logits [N, C] against int64 class indices [N] (0 where ignored)");
}

}  // namespace lepton::py_bind
