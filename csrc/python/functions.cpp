// Module-level functions: creation, random numbers, joining tensors.
#include "convert.h"
#include "lepton/core/error.h"

namespace lepton::py_bind {

namespace {

DType dtype_or(const py::object& dtype, DType fallback) { return dtype.is_none() ? fallback : to_dtype(dtype); }
Device device_or_cpu(const py::object& device) { return device.is_none() ? Device{} : to_device(device); }

Tensor random_tensor(const Shape& shape, RandomDist dist, double a, double b, const py::object& dtype, const py::object& device,
                     DType fallback) {
  Tensor t = Tensor::empty(shape, dtype_or(dtype, fallback), device_or_cpu(device));
  ops::random_(t, dist, a, b);
  return t;
}

}  // namespace

void bind_functions(py::module_& m) {
  m.def("empty", [](py::args shape, const py::object& dtype, const py::object& device) {
     return Tensor::empty(shape_from_args(shape, "size"), dtype_or(dtype, DType::Float32), device_or_cpu(device));
   }, py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none());
  m.def("zeros", [](py::args shape, const py::object& dtype, const py::object& device) {
     return ops::full(shape_from_args(shape, "size"), Scalar::from_int(0), dtype_or(dtype, DType::Float32), device_or_cpu(device));
   }, py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none());
  m.def("ones", [](py::args shape, const py::object& dtype, const py::object& device) {
     return ops::full(shape_from_args(shape, "size"), Scalar::from_int(1), dtype_or(dtype, DType::Float32), device_or_cpu(device));
   }, py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none());
  m.def("full", [](const py::object& shape, const py::object& value, const py::object& dtype, const py::object& device) {
     Scalar v = require_scalar(value, "fill_value");
     return ops::full(to_shape(shape, "size"), v, dtype_or(dtype, v.natural_dtype()), device_or_cpu(device));
   }, py::arg("size"), py::arg("fill_value"), py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none());
  m.def("arange", [](const py::object& a, const py::object& b, const py::object& step, const py::object& dtype, const py::object& device) {
     Scalar start = require_scalar(a, "start");
     Scalar end = b.is_none() ? start : require_scalar(b, "end");
     if (b.is_none()) start = Scalar::from_int(0);
     Scalar st = require_scalar(step, "step");
     const bool any_float = start.kind == Scalar::Kind::Float || end.kind == Scalar::Kind::Float || st.kind == Scalar::Kind::Float;
     return ops::arange(start.to_double(), end.to_double(), st.to_double(),
                        dtype_or(dtype, any_float ? DType::Float32 : DType::Int64), device_or_cpu(device));
   }, py::arg("start"), py::arg("end") = py::none(), py::arg("step") = 1, py::kw_only(), py::arg("dtype") = py::none(),
   py::arg("device") = py::none());
  m.def("linspace", [](double start, double end, int64_t steps, const py::object& dtype, const py::object& device) {
     return ops::linspace(start, end, steps, dtype_or(dtype, DType::Float32), device_or_cpu(device));
   }, py::arg("start"), py::arg("end"), py::arg("steps"), py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none());

  m.def("rand", [](py::args shape, const py::object& dtype, const py::object& device) {
     return random_tensor(shape_from_args(shape, "size"), RandomDist::Uniform, 0, 1, dtype, device, DType::Float32);
   }, py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none());
  m.def("randn", [](py::args shape, const py::object& dtype, const py::object& device) {
     return random_tensor(shape_from_args(shape, "size"), RandomDist::Normal, 0, 1, dtype, device, DType::Float32);
   }, py::kw_only(), py::arg("dtype") = py::none(), py::arg("device") = py::none());
  m.def("randint", [](int64_t low, py::object high, py::object size, const py::object& dtype, const py::object& device) {
     if (size.is_none() && !high.is_none() && !py::isinstance<py::int_>(high)) std::swap(high, size);  // randint(high, size)
     LEPTON_CHECK(!size.is_none(), Type, "randint: missing required argument 'size'");
     int64_t lo = high.is_none() ? 0 : low, hi = high.is_none() ? low : require_scalar(high, "high").to_int();
     return random_tensor(to_shape(size, "size"), RandomDist::Integer, double(lo), double(hi), dtype, device, DType::Int64);
   }, py::arg("low"), py::arg("high") = py::none(), py::arg("size") = py::none(), py::kw_only(), py::arg("dtype") = py::none(),
   py::arg("device") = py::none());
  m.def("manual_seed", [](int64_t seed) { ops::manual_seed(uint64_t(seed)); }, py::arg("seed"));
  m.def("initial_seed", &ops::initial_seed);
  m.def("get_rng_state", [](){ auto s = ops::rng_state(); return py::make_tuple(s.first, s.second); });
  m.def("set_rng_state", [](const py::tuple& state) {
    LEPTON_CHECK(py::len(state) == 2, Value, "set_rng_state: expected (seed, offset), got ", std::string(py::str(state)));
    ops::set_rng_state(state[0].cast<uint64_t>(), state[1].cast<uint64_t>());
  }, py::arg("state"));

  m.def("cat", &ops::cat, py::arg("tensors"), py::arg("dim") = 0);
  m.def("stack", &ops::stack, py::arg("tensors"), py::arg("dim") = 0);
  m.def("where", [](const Tensor& cond, const py::object& a, const py::object& b) {
    auto as_t = [&](const py::object& o, const char* what) {
      if (auto t = as_tensor_operand(o)) return *t;
      Scalar s = require_scalar(o, what);
      return ops::scalar_tensor(s, s.natural_dtype(), cond.device());
    };
    return ops::where(cond, as_t(a, "input"), as_t(b, "other"));
  }, py::arg("condition"), py::arg("input"), py::arg("other"));
}

}  // namespace lepton::py_bind
