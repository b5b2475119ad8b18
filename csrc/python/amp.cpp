// Mixed precision: the autocast state (_C._set_autocast_enabled, is_autocast_enabled, ...),
// _C._autocast_cast for the Python-level ops that apply autocast's policy themselves, and the
// gradient-scaling ops behind lepton.amp.GradScaler (torch's private names).
#include "convert.h"
#include "lepton/ops/amp.h"
#include "lepton/ops/autocast.h"

namespace lepton::py_bind {

namespace {

DeviceType device_type(const std::string& s) {
  if (s == "cpu") return DeviceType::CPU;
  if (s == "cuda") return DeviceType::CUDA;
  throw py::value_error("autocast: device_type must be 'cpu' or 'cuda', got '" + s + "'");
}

}  // namespace

void bind_amp(py::module_& m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  m.def("is_autocast_enabled", [](const std::string& d) { return autocast::is_enabled(device_type(d)); },
        py::arg("device_type") = "cuda", "whether autocast is on for device_type on this thread");
  m.def("_set_autocast_enabled", [](const std::string& d, bool on) { autocast::set_enabled(device_type(d), on); },
        py::arg("device_type"), py::arg("enabled"));
  m.def("_set_autocast_suspended", &autocast::Suspend::set, py::arg("suspended"));
  m.def("get_autocast_dtype", [](const std::string& d) { return autocast::get_dtype(device_type(d)); },
        py::arg("device_type"), "the dtype autocast casts to on device_type (cuda: float16, cpu: bfloat16 by default)");
  m.def("_set_autocast_dtype",
        [](const std::string& d, const py::handle& dtype) { autocast::set_dtype(device_type(d), to_dtype(dtype)); },
        py::arg("device_type"), py::arg("dtype"));
  m.def("_autocast_cast",
        [](const std::string& op, const std::vector<std::optional<Tensor>>& args) {
          std::vector<const Tensor*> ptrs;  // the first one picks the device type
          for (const auto& t : args)
            if (t) ptrs.push_back(&*t);
          const std::optional<DType> dt = autocast::target(op.c_str(), ptrs.data(), ptrs.size());
          py::tuple out(args.size());
          for (size_t i = 0; i < args.size(); ++i) {
            if (!args[i]) out[i] = py::none();
            else out[i] = py::cast(dt ? autocast::cast(*args[i], *dt) : *args[i]);
          }
          return out;
        },
        py::arg("op"), py::arg("tensors"),
        "the tensors cast as autocast's policy for op (a torch op name) says; unchanged when it does not apply");
  m.def("_amp_foreach_non_finite_check_and_unscale_", &ops::amp_foreach_non_finite_check_and_unscale_,
        py::arg("tensors"), py::arg("found_inf"), py::arg("inv_scale"), nogil(),
        "tensors *= inv_scale in place; found_inf = 1 if any element is inf or NaN (one fused pass per dtype)");
  m.def("_amp_update_scale_", &ops::amp_update_scale_, py::arg("scale"), py::arg("growth_tracker"),
        py::arg("found_inf"), py::arg("growth_factor"), py::arg("backoff_factor"), py::arg("growth_interval"), nogil(),
        "GradScaler's scale update, in place on the device");
}

}  // namespace lepton::py_bind
