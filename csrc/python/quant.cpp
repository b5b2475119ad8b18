// Bindings for the int8 inference ops (lepton.quant builds on them). The GIL is released while
// the kernels run, so a server's threads can overlap requests.
#include "convert.h"
#include "lepton/ops/int8_gemm.h"

namespace lepton::py_bind {

void bind_quant(py::module_& m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  m.def("quantize_rows_int8", &ops::quantize_rows_int8, py::arg("input"), nogil(),
        "symmetric int8 quantisation of each row of a float32 [rows, cols] matrix: (int8 values, float32 scales)");
  py::class_<ops::PackedInt8Weight>(m, "PackedInt8Weight",
                                    "int8 weights [out_features, in_features] packed for the int8 GEMM")
      .def_readonly("packed", &ops::PackedInt8Weight::packed)
      .def_readonly("colsum", &ops::PackedInt8Weight::colsum)
      .def_readonly("out_features", &ops::PackedInt8Weight::n)
      .def_readonly("in_features", &ops::PackedInt8Weight::k)
      .def("__repr__", [](const ops::PackedInt8Weight& w) {
        return "PackedInt8Weight(out_features=" + std::to_string(w.n) + ", in_features=" + std::to_string(w.k) + ")";
      });
  m.def("int8_pack_weight", &ops::int8_pack_weight, py::arg("weight"), nogil(),
        "packs int8 weights [out, in] for int8_mm / int8_linear");
  m.def("int8_mm", &ops::int8_mm, py::arg("input"), py::arg("weight"), py::arg("reference") = false, nogil(),
        "exact int32 product of int8 input [m, k] and packed int8 weights [n, k]");
  m.def("int8_linear", &ops::int8_linear, py::arg("input"), py::arg("weight"), py::arg("weight_scale"), py::arg("bias") = py::none(), py::arg("relu") = false, py::arg("reference") = false,
        nogil(), "linear layer with int8 weights and dynamically int8-quantised activations (float32 in and out)");
  m.def("int8_gemm_kernel", &ops::int8_gemm_kernel_name, "the int8 GEMM kernel in use: 'avx512-vnni' or 'portable'");
}

}  // namespace lepton::py_bind
