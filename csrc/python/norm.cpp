// Bindings for the norm family: layer_norm, batch_norm, embedding, dropout and the fused
// pointwise losses (nn.functional adds torch's argument handling on top). The GIL is released
// while the kernels run.
#include "convert.h"
#include "lepton/core/error.h"
#include "lepton/ops/norm.h"

namespace lepton::py_bind {

namespace {

ops::Reduction to_reduction(const std::string& r) {
  if (r == "none") return ops::Reduction::None;
  if (r == "mean") return ops::Reduction::Mean;
  if (r == "sum") return ops::Reduction::Sum;
  raise(ErrorKind::Value, r, " is not a valid value for reduction");
}

PointwiseLoss to_loss(const std::string& name) {
  if (name == "mse") return PointwiseLoss::MSE;
  if (name == "l1") return PointwiseLoss::L1;
  if (name == "bce") return PointwiseLoss::BCE;
  if (name == "bce_with_logits") return PointwiseLoss::BCEWithLogits;
  raise(ErrorKind::Value, "unknown pointwise loss ", name, " (expected mse, l1, bce or bce_with_logits)");
}

}  // namespace

void bind_norm(py::module_& m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  m.def(
      "layer_norm",
      [](const Tensor& x, const py::object& normalized_shape, std::optional<Tensor> weight, std::optional<Tensor> bias,
         double eps) {
        const Shape shape = to_shape(normalized_shape, "layer_norm: normalized_shape");
        py::gil_scoped_release release;
        return ops::layer_norm(x, shape, weight, bias, eps);
      },
      py::arg("input"), py::arg("normalized_shape"), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
      py::arg("eps") = 1e-5, "layer normalisation over the trailing normalized_shape dims, fused");
  m.def("batch_norm", &ops::batch_norm, py::arg("input"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("training") = false,
        py::arg("momentum") = 0.1, py::arg("eps") = 1e-5, nogil(),
        "batch normalisation of [N, C, ...] per channel, fused; updates the running statistics in place when training");
  m.def("embedding", &ops::embedding, py::arg("weight"), py::arg("indices"), py::arg("padding_idx") = py::none(),
        py::arg("scale_grad_by_freq") = false, nogil(), "rows of weight at indices; dense scatter-add backward");
  m.def("embedding_renorm_", &ops::embedding_renorm_, py::arg("weight"), py::arg("indices"), py::arg("max_norm"),
        py::arg("norm_type") = 2.0, nogil(), "scales the looked-up rows whose norm exceeds max_norm, in place");
  m.def("dropout", &ops::dropout, py::arg("input"), py::arg("p"), py::arg("inplace") = false, nogil(),
        "training-mode dropout in one fused pass (the mask is made again, not stored, for the backward)");
  m.def(
      "pointwise_loss",
      [](const std::string& op, const Tensor& input, const Tensor& target, std::optional<Tensor> weight,
         std::optional<Tensor> pos_weight, const std::string& reduction) {
        const PointwiseLoss kind = to_loss(op);
        const ops::Reduction r = to_reduction(reduction);
        py::gil_scoped_release release;
        return ops::pointwise_loss(kind, input, target, weight, pos_weight, r);
      },
      py::arg("op"), py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("pos_weight") = py::none(), py::arg("reduction") = "mean",
      "fused mse / l1 / bce / bce_with_logits loss ('none', 'mean' or 'sum')");
  m.def("_set_norm_reference", &ops::set_norm_reference, py::arg("on"),
        "tests and benchmarks: run the norm family's serial reference kernels instead of the fast ones");
}

}  // namespace lepton::py_bind
