// dtype and device objects.
#include "convert.h"

namespace lepton::py_bind {

void bind_types(py::module_& m) {
  py::enum_<DType> dtype(m, "dtype", "Element type of a tensor");
  for (int i = 0; i < kNumDTypes; ++i) dtype.value(dtype_name(DType(i)), DType(i));
  // prepend: enum_ already defines __repr__/__str__, and a plain def would only add an overload
  dtype.def("__repr__", [](DType t) { return std::string("lepton.") + dtype_name(t); }, py::prepend())
      .def("__str__", [](DType t) { return std::string("lepton.") + dtype_name(t); }, py::prepend())
      .def_property_readonly("itemsize", [](DType t) { return itemsize(t); })
      .def_property_readonly("is_floating_point", [](DType t) { return is_floating(t); })
      .def_property_readonly("name", [](DType t) { return std::string(dtype_name(t)); });
  m.def("promote_types", &promote_types, py::arg("type1"), py::arg("type2"));

  py::class_<Device>(m, "device", "Where a tensor lives: lepton.device('cpu') or lepton.device('cuda:0')")
      .def(py::init([](const py::object& spec, std::optional<int> index) {
             Device d = to_device(spec);
             if (index) {
               if (!d.is_cuda())
                 raise(ErrorKind::Value, "device index ", *index, " given for a CPU device");
               d.index = *index;
             }
             return d;
           }),
           py::arg("type"), py::arg("index") = py::none())
      .def_property_readonly("type", [](const Device& d) { return d.is_cuda() ? "cuda" : "cpu"; })
      .def_property_readonly("index", [](const Device& d) -> py::object {
        return d.is_cuda() ? py::object(py::int_(d.index)) : py::object(py::none());
      })
      .def("__str__", &Device::str)
      .def("__repr__", [](const Device& d) { return "device(type='" + std::string(d.is_cuda() ? "cuda" : "cpu") +
                                                     (d.is_cuda() ? "', index=" + std::to_string(d.index) + ")" : "')"); })
      .def("__eq__", [](const Device& a, const py::object& b) {
        try {
          return a == to_device(b);
        } catch (const Error&) {
          return false;
        }
      })
      .def("__hash__", [](const Device& d) { return int(d.type) * 4096 + d.index; });
}

}  // namespace lepton::py_bind
