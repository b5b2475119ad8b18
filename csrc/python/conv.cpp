// Bindings for conv2d and 2-d pooling, with torch's argument forms: an int or a pair for each
// size, padding='same'/'valid' for conv2d, stride=None meaning the kernel size for pooling. The
// GIL is released while the kernels run.
#include "convert.h"
#include "lepton/core/error.h"
#include "lepton/ops/conv.h"

namespace lepton::py_bind {

namespace {

// An int or a sequence of one or two ints, as (rows, columns).
void to_pair(const py::handle& obj, const char* op, const char* what, int64_t (&out)[2]) {
  const std::string name = std::string(op) + ": " + what;
  const Shape s = to_shape(obj, name.c_str());
  LEPTON_CHECK(s.size() == 1 || s.size() == 2, Value, name, " must be an int or a pair of ints, got ",
               std::string(py::str(py::repr(obj))));
  out[0] = s[0], out[1] = s.back();
}

ops::Pool2dOptions pool_options(const char* op, const py::object& kernel_size, const py::object& stride,
                                const py::object& padding, bool ceil_mode) {
  ops::Pool2dOptions o;
  to_pair(kernel_size, op, "kernel_size", o.kernel);
  // stride=None (or an empty sequence, as torch allows) means the kernel size
  const bool default_stride = stride.is_none() || (py::isinstance<py::sequence>(stride) &&
                                                   !py::isinstance<py::str>(stride) && py::len(stride) == 0);
  to_pair(default_stride ? kernel_size : stride, op, "stride", o.stride);
  to_pair(padding, op, "padding", o.padding);
  o.ceil_mode = ceil_mode;
  return o;
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d", [](const Tensor& x, const Tensor& w, std::optional<Tensor> b, const py::object& stride,
                     const py::object& padding, const py::object& dilation, int64_t groups) {
     ops::Conv2dOptions o;
     to_pair(stride, "conv2d", "stride", o.stride);
     to_pair(dilation, "conv2d", "dilation", o.dilation);
     if (py::isinstance<py::str>(padding)) {
       const std::string p = padding.cast<std::string>();
       LEPTON_CHECK(p == "same" || p == "valid", Value, "conv2d: invalid padding string '", p,
                    "', should be one of 'valid', 'same'");
       o.same = p == "same";
     } else {
       to_pair(padding, "conv2d", "padding", o.padding);
     }
     o.groups = groups;
     py::gil_scoped_release nogil;
     return ops::conv2d(x, w, b, o);
   }, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
   py::arg("dilation") = 1, py::arg("groups") = 1,
   "2-d convolution of input [N, C_in, H, W] (or [C_in, H, W]) with weight [C_out, C_in / groups, kH, kW]");

  m.def("max_pool2d", [](const Tensor& x, const py::object& kernel_size, const py::object& stride,
                         const py::object& padding, const py::object& dilation, bool ceil_mode, bool return_indices) {
     ops::Pool2dOptions o = pool_options("max_pool2d", kernel_size, stride, padding, ceil_mode);
     to_pair(dilation, "max_pool2d", "dilation", o.dilation);
     std::pair<Tensor, Tensor> r;
     {
       py::gil_scoped_release nogil;
       if (return_indices) r = ops::max_pool2d_with_indices(x, o);
       else r.first = ops::max_pool2d(x, o);
     }
     return return_indices ? py::object(py::make_tuple(r.first, r.second)) : py::cast(r.first);
   }, py::arg("input"), py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
   py::arg("dilation") = 1, py::arg("ceil_mode") = false, py::arg("return_indices") = false,
   "max over each window; with return_indices also the int64 position h·W + w of each maximum in its plane");

  m.def("avg_pool2d", [](const Tensor& x, const py::object& kernel_size, const py::object& stride,
                         const py::object& padding, bool ceil_mode, bool count_include_pad,
                         std::optional<int64_t> divisor_override) {
     ops::Pool2dOptions o = pool_options("avg_pool2d", kernel_size, stride, padding, ceil_mode);
     o.count_include_pad = count_include_pad;
     if (divisor_override) {
       LEPTON_CHECK(*divisor_override != 0, Value, "avg_pool2d: divisor_override must be non-zero");
       o.divisor_override = *divisor_override;
     }
     py::gil_scoped_release nogil;
     return ops::avg_pool2d(x, o);
   }, py::arg("input"), py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
   py::arg("ceil_mode") = false, py::arg("count_include_pad") = true, py::arg("divisor_override") = py::none(),
   "mean over each window");

  m.def("adaptive_avg_pool2d", [](const Tensor& x, const py::object& output_size) {
     // None in output_size keeps that dimension's input size
     py::object size = output_size;
     if (py::isinstance<py::sequence>(output_size) && !py::isinstance<py::str>(output_size) && x.dim() >= 2) {
       py::list items(output_size);
       for (size_t d = 0; d < items.size() && d < 2; ++d)
         if (items[d].is_none()) items[d] = py::int_(x.size(-2 + int64_t(d)));
       size = items;
     }
     int64_t out[2];
     to_pair(size, "adaptive_avg_pool2d", "output_size", out);
     py::gil_scoped_release nogil;
     return ops::adaptive_avg_pool2d(x, out[0], out[1]);
   }, py::arg("input"), py::arg("output_size"),
   "mean over the windows [floor(i·H/out_h), ceil((i+1)·H/out_h)) that tile the input into output_size");

  m.def("set_conv_reference", &ops::set_conv_reference, py::arg("enabled"),
        "run conv2d on the direct-loop reference kernels (True) or the fast ones (False), for tests");
  m.def("conv_reference", &ops::conv_reference, "whether conv2d runs the reference kernels");
}

}  // namespace lepton::py_bind
