#include "convert.h"

#include "lepton/core/error.h"

namespace lepton::py_bind {

std::optional<int64_t> int64_of(const py::handle& obj) {
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow) return std::nullopt;
  return int64_t(v);
}

std::optional<Scalar> to_scalar(const py::handle& obj) {
  if (py::isinstance<py::bool_>(obj)) return Scalar::from_bool(obj.cast<bool>());
  if (py::isinstance<py::int_>(obj)) {
    if (auto v = int64_of(obj)) return Scalar::from_int(*v);
    raise(ErrorKind::Value, "integer ", std::string(py::str(obj)), " does not fit in int64");
  }
  if (py::isinstance<py::float_>(obj)) return Scalar::from_float(obj.cast<double>());
  // NumPy scalars (np.float32(1), np.int64(2), np.bool_(True)) and 0-d arrays
  if (py::hasattr(obj, "dtype") && py::hasattr(obj, "item") && !py::hasattr(obj, "__dlpack_device__") &&
      py::len(obj.attr("shape")) == 0)
    return to_scalar(obj.attr("item")());
  return std::nullopt;
}

Scalar require_scalar(const py::handle& obj, const char* what) {
  auto s = to_scalar(obj);
  if (!s) raise(ErrorKind::Type, what, " must be a number, got ", std::string(py::str(py::type::of(obj).attr("__name__"))));
  return *s;
}

namespace {

int64_t shape_entry(const py::handle& obj, const char* what) {
  auto v = int64_of(obj);
  if (!v) raise(ErrorKind::Type, what, " must contain ints that fit in int64, got ", std::string(py::str(obj)));
  return *v;
}

}  // namespace

Shape to_shape(const py::handle& obj, const char* what) {
  if (py::isinstance<py::int_>(obj)) return {shape_entry(obj, what)};
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    raise(ErrorKind::Type, what, " must be an int or a sequence of ints, got ",
          std::string(py::str(py::type::of(obj).attr("__name__"))));
  Shape shape;
  for (auto item : py::reinterpret_borrow<py::sequence>(obj)) {
    if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item))
      raise(ErrorKind::Type, what, " must contain only ints, got ", std::string(py::str(py::repr(item))));
    shape.push_back(shape_entry(item, what));
  }
  return shape;
}

Shape shape_from_args(const py::args& args, const char* what) {
  if (args.size() == 1 && !py::isinstance<py::int_>(args[0])) return to_shape(args[0], what);
  return to_shape(args, what);
}

ops::Dims to_dims(const py::handle& obj) {
  if (obj.is_none()) return {};
  return to_shape(obj, "dim");
}

DType to_dtype(const py::handle& obj) {
  if (py::isinstance<DType>(obj)) return obj.cast<DType>();
  if (py::isinstance<py::str>(obj)) return dtype_from_name(obj.cast<std::string>());
  // NumPy dtypes and types (np.float32, np.dtype('int64')) by name
  if (py::hasattr(obj, "name") || py::hasattr(obj, "__name__")) {
    py::object np = py::module_::import("numpy");
    try {
      return dtype_from_name(py::str(np.attr("dtype")(obj).attr("name")).cast<std::string>());
    } catch (const py::error_already_set&) {
    }
  }
  raise(ErrorKind::Type, "expected a dtype (such as lepton.float32 or 'float32'), got ", std::string(py::str(py::repr(obj))));
}

Device to_device(const py::handle& obj) {
  if (py::isinstance<Device>(obj)) return obj.cast<Device>();
  if (py::isinstance<py::str>(obj)) return Device::parse(obj.cast<std::string>());
  if (py::isinstance<py::int_>(obj)) return Device{DeviceType::CUDA, obj.cast<int>()};
  raise(ErrorKind::Type, "expected a device (such as 'cpu', 'cuda:0' or lepton.device), got ", std::string(py::str(py::repr(obj))));
}

std::optional<DType> opt_dtype(const py::handle& obj) {
  if (obj.is_none()) return std::nullopt;
  return to_dtype(obj);
}

std::optional<Device> opt_device(const py::handle& obj) {
  if (obj.is_none()) return std::nullopt;
  return to_device(obj);
}

std::optional<Tensor> as_tensor_operand(const py::handle& obj) {
  if (py::isinstance<Tensor>(obj)) return obj.cast<Tensor>();
  return std::nullopt;
}

py::object make_namedtuple(const char* name, const Tensor& values, const Tensor& indices) {
  static py::dict* types_ptr = new py::dict();  // never freed: outlives interpreter shutdown
  py::dict& types = *types_ptr;
  if (!types.contains(name))
    types[name] = py::module_::import("collections").attr("namedtuple")(name, py::make_tuple("values", "indices"));
  return types[name](values, indices);
}

}  // namespace lepton::py_bind
