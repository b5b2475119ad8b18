// Fused optimizer steps and list norms (torch's names): _C._fused_sgd_, _fused_adam_,
// _fused_adamw_, _grad_norm, _foreach_mul_. Lists are converted with the GIL held, then it is
// released while the kernel runs. `masters` are the float32 master weights of 16-bit params
// (or []); `reference=True` picks the serial reference kernels.
#include "convert.h"
#include "lepton/ops/optim.h"

namespace lepton::py_bind {

namespace {

using Tensors = std::vector<Tensor>;

template <bool Decoupled>
void def_adam(py::module_& m, const char* name, const char* doc) {
  m.def(name, [](const Tensors& params, const Tensors& grads, const Tensors& exp_avgs, const Tensors& exp_avg_sqs,
                 const Tensors& max_exp_avg_sqs, const std::vector<int64_t>& state_steps, double lr, double beta1,
                 double beta2, double weight_decay, double eps, bool amsgrad, bool maximize, const Tensors& masters,
                 bool reference) {
     const AdamHyper h{lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, Decoupled};
     py::gil_scoped_release nogil;
     ops::fused_adam_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, masters, state_steps, h, reference);
   }, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("max_exp_avg_sqs"),
   py::arg("state_steps"), py::kw_only(), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("weight_decay"),
   py::arg("eps"), py::arg("amsgrad") = false, py::arg("maximize") = false, py::arg("masters") = Tensors(),
   py::arg("reference") = false, doc);
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("_fused_sgd_", [](const Tensors& params, const Tensors& grads, const Tensors& momentum_buffers, double lr,
                          double momentum, double dampening, double weight_decay, bool nesterov, bool maximize,
                          bool is_first_step, const Tensors& masters, bool reference) {
     const SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, maximize, is_first_step};
     py::gil_scoped_release nogil;
     ops::fused_sgd_(params, grads, momentum_buffers, masters, h, reference);
   }, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::kw_only(), py::arg("lr"),
   py::arg("momentum") = 0.0, py::arg("dampening") = 0.0, py::arg("weight_decay") = 0.0, py::arg("nesterov") = false,
   py::arg("maximize") = false, py::arg("is_first_step") = false, py::arg("masters") = Tensors(),
   py::arg("reference") = false,
   "One SGD step over every param (momentum_buffers: one per param, or [] without momentum)");
  def_adam<false>(m, "_fused_adam_", "One Adam step (L2 weight decay) over every param; state_steps include this step");
  def_adam<true>(m, "_fused_adamw_", "One AdamW step (decoupled weight decay) over every param");
  m.def("_grad_norm", &ops::norm_of_list, py::arg("tensors"), py::arg("norm_type") = 2.0, py::arg("reference") = false,
        py::call_guard<py::gil_scoped_release>(), "The norm of all the tensors taken together, as a float");
  m.def("_foreach_mul_", &ops::scale_list_, py::arg("tensors"), py::arg("scalar"), py::arg("reference") = false,
        py::call_guard<py::gil_scoped_release>(), "Multiplies every tensor in place by one scalar");
}

}  // namespace lepton::py_bind
