// Matrix products: Tensor.__matmul__/matmul, lepton.matmul/bmm/addmm and _C.linear (the fused
// Linear layer: x · Wᵀ + b, then an activation). The GIL is released while the GEMM runs.
#include "convert.h"
#include "lepton/core/error.h"

namespace lepton::py_bind {

namespace {

Activation to_activation(const std::string& name) {
  if (name == "none") return Activation::None;
  if (name == "relu") return Activation::Relu;
  if (name == "gelu") return Activation::Gelu;
  raise(ErrorKind::Value, "linear: activation must be 'none', 'relu' or 'gelu', got '", name, "'");
}

py::object matmul_operand(const Tensor& a, const py::object& other, bool reverse) {
  if (!py::isinstance<Tensor>(other)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  const Tensor& b = other.cast<const Tensor&>();
  Tensor r;
  {
    py::gil_scoped_release nogil;
    r = reverse ? ops::matmul(b, a) : ops::matmul(a, b);
  }
  return py::cast(r);
}

}  // namespace

void bind_linalg(py::module_& m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  auto cls = py::reinterpret_borrow<py::class_<Tensor>>(m.attr("Tensor"));
  cls.def("__matmul__", [](const Tensor& a, const py::object& b) { return matmul_operand(a, b, false); })
      .def("__rmatmul__", [](const Tensor& a, const py::object& b) { return matmul_operand(a, b, true); })
      .def("matmul", &ops::matmul, py::arg("other"), nogil())
      .def("bmm", &ops::bmm, py::arg("mat2"), nogil())
      .def("addmm", &ops::addmm, py::arg("mat1"), py::arg("mat2"), py::kw_only(), py::arg("beta") = 1.0,
           py::arg("alpha") = 1.0, nogil());
  m.def("linear", [](const Tensor& x, const Tensor& w, std::optional<Tensor> b, const std::string& activation) {
     Activation act = to_activation(activation);
     py::gil_scoped_release nogil;
     return ops::linear(x, w, b, act);
   }, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("activation") = "none",
   "act(input · weightᵀ + bias) in one pass; weight is [out_features, in_features]");
}

}  // namespace lepton::py_bind
