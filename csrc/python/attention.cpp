// Bindings for scaled dot-product attention. The GIL is released while the kernels run.
#include "convert.h"
#include "lepton/ops/attention.h"

namespace lepton::py_bind {

void bind_attention(py::module_& m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  m.def("scaled_dot_product_attention", &ops::scaled_dot_product_attention, py::arg("query"), py::arg("key"),
        py::arg("value"), py::arg("attn_mask") = std::nullopt, py::arg("dropout_p") = 0.0,
        py::arg("is_causal") = false, py::arg("scale") = std::nullopt, py::arg("reference") = false, nogil(),
        "softmax(q·kᵀ·scale + mask)·v with fused flash-style kernels (reference=True: the plain-loop oracle)");
}

}  // namespace lepton::py_bind
