// The Tensor class: geometry, views, conversions, operators and methods.
#include "convert.h"
#include "lepton/autograd/meta.h"
#include "lepton/core/error.h"

namespace lepton::py_bind {

namespace {

// `a op other` for a Tensor or number; NotImplemented lets Python try the reflected operator.
template <class F, class G>
py::object with_operand(const py::object& other, F on_tensor, G on_scalar) {
  if (auto t = as_tensor_operand(other)) return py::cast(on_tensor(*t));
  if (auto s = to_scalar(other)) return py::cast(on_scalar(*s));
  return py::reinterpret_borrow<py::object>(Py_NotImplemented);
}

py::object binary_op(BinaryOp op, const Tensor& a, const py::object& b, bool reverse) {
  return with_operand(
      b, [&](const Tensor& t) { return reverse ? ops::binary(op, t, a) : ops::binary(op, a, t); },
      [&](Scalar s) { return ops::binary(op, a, s, reverse); });
}

py::object inplace_op(BinaryOp op, const Tensor& a, const py::object& b) {
  if (auto t = as_tensor_operand(b)) ops::binary_(op, a, *t);
  else if (auto s = to_scalar(b)) ops::binary_(op, a, *s);
  else return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  return py::cast(a);
}

py::object compare_op(CompareOp op, const Tensor& a, const py::object& b) {
  return with_operand(
      b, [&](const Tensor& t) { return ops::compare(op, a, t); }, [&](Scalar s) { return ops::compare(op, a, s); });
}

// add(other, alpha=2) is a + 2 * other, as in PyTorch.
py::object scaled(const py::object& other, const py::object& alpha) {
  if (alpha.is_none()) return other;
  Scalar s = require_scalar(alpha, "alpha");
  if (auto t = as_tensor_operand(other)) return py::cast(ops::binary(BinaryOp::Mul, *t, s));
  Scalar o = require_scalar(other, "other");
  return py::float_(o.to_double() * s.to_double());
}

std::vector<ops::IndexItem> to_index_items(const py::handle& key) {
  std::vector<ops::IndexItem> items;
  py::tuple parts = py::isinstance<py::tuple>(key) ? py::reinterpret_borrow<py::tuple>(key) : py::make_tuple(key);
  for (auto k : parts) {
    ops::IndexItem it{ops::IndexItem::Kind::None};
    if (k.is_none()) {
      it.kind = ops::IndexItem::Kind::None;
    } else if (k.ptr() == Py_Ellipsis) {
      it.kind = ops::IndexItem::Kind::Ellipsis;
    } else if (py::isinstance<py::slice>(k)) {
      it.kind = ops::IndexItem::Kind::Slice;
      auto get = [&](const char* name) -> std::optional<int64_t> {
        py::object v = k.attr(name);
        if (v.is_none()) return std::nullopt;
        py::int_ i(v.attr("__index__")());
        if (auto fitting = int64_of(i)) return fitting;
        // beyond int64 a bound is past either end anyway, so it clamps (as Python's own slicing does)
        return i > py::int_(0) ? INT64_MAX : INT64_MIN;
      };
      it.start = get("start");
      it.stop = get("stop");
      it.step = get("step").value_or(1);
    } else if (py::isinstance<Tensor>(k)) {
      it.kind = ops::IndexItem::Kind::Tensor;
      it.tensor = k.cast<Tensor>();
    } else if (py::isinstance<py::bool_>(k) || (py::isinstance<py::sequence>(k) && !py::isinstance<py::str>(k)) ||
               py::hasattr(k, "__array__")) {
      // lists, NumPy arrays and bools index like tensors
      it.kind = ops::IndexItem::Kind::Tensor;
      py::object arr = py::module_::import("numpy").attr("asarray")(k);
      if (py::str(arr.attr("dtype").attr("kind")).cast<std::string>() == "f" && py::len(arr) == 0)
        arr = arr.attr("astype")("int64");
      py::object lepton = py::module_::import("lepton");
      it.tensor = lepton.attr("from_numpy")(arr.attr("copy")()).cast<Tensor>();
    } else if (py::hasattr(k, "__index__")) {
      it.kind = ops::IndexItem::Kind::Int;
      py::int_ i(k.attr("__index__")());
      auto v = int64_of(i);
      if (!v) raise(ErrorKind::Value, "index ", std::string(py::str(i)), " does not fit in int64");
      it.i = *v;
    } else {
      raise(ErrorKind::Index, "only integers, slices (':'), ellipsis ('...'), None and integer or boolean tensors are "
                              "valid indices (got ", std::string(py::str(py::type::of(k).attr("__name__"))), ")");
    }
    // a uint8 tensor indexes as a mask, deprecated (ops::index casts it), as in torch
    if (it.kind == ops::IndexItem::Kind::Tensor && it.tensor.dtype() == DType::UInt8 && it.tensor.dim() > 0 &&
        PyErr_WarnEx(PyExc_UserWarning, "indexing with dtype lepton.uint8 is now deprecated, please use a dtype "
                                        "lepton.bool instead.", 1) < 0)
      throw py::error_already_set();
    items.push_back(it);
  }
  return items;
}

py::object reduce_method(ReduceOp op, const Tensor& t, const py::object& dim, bool keepdim, const py::object& dtype) {
  Tensor in = dtype.is_none() ? t : ops::to(t, std::nullopt, to_dtype(dtype), false);
  return py::cast(ops::reduce(op, in, to_dims(dim), keepdim));
}

py::object extreme_method(const Tensor& t, const py::object& dim, bool keepdim, bool is_max) {
  if (dim.is_none()) return py::cast(ops::reduce(is_max ? ReduceOp::Max : ReduceOp::Min, t, {}, false));
  if (auto other = as_tensor_operand(dim))  // x.max(y) is maximum(x, y)
    return py::cast(ops::binary(is_max ? BinaryOp::Maximum : BinaryOp::Minimum, t, *other));
  auto [values, indices] = ops::extreme_with_index(t, dim.cast<int64_t>(), keepdim, is_max);
  return make_namedtuple(is_max ? "max" : "min", values, indices);
}

Tensor to_method(const Tensor& t, py::args args, py::kwargs kwargs) {
  std::optional<Device> device;
  std::optional<DType> dtype;
  bool copy = false;
  for (auto a : args) {
    if (py::isinstance<Tensor>(a)) {
      device = a.cast<Tensor>().device();
      dtype = a.cast<Tensor>().dtype();
    } else if (py::isinstance<DType>(a)) {
      dtype = a.cast<DType>();
    } else {
      device = to_device(a);
    }
  }
  if (kwargs.contains("device")) device = opt_device(kwargs["device"]);
  if (kwargs.contains("dtype")) dtype = opt_dtype(kwargs["dtype"]);
  if (kwargs.contains("copy")) copy = kwargs["copy"].cast<bool>();
  return ops::to(t, device, dtype, copy);
}

}  // namespace

void bind_tensor(py::module_& m) {
  py::class_<Tensor> cls(m, "Tensor", "A multi-dimensional array on the CPU or a CUDA device", tensor_type_setup());
  cls.def_property_readonly("shape", [](const Tensor& t) { return py::tuple(py::cast(t.shape())); })
      .def_property_readonly("dtype", &Tensor::dtype)
      .def_property_readonly("device", &Tensor::device)
      .def_property_readonly("ndim", &Tensor::dim)
      .def_property_readonly("is_cuda", [](const Tensor& t) { return t.device().is_cuda(); })
      .def_property_readonly("itemsize", &Tensor::itemsize)
      .def_property_readonly("nbytes", &Tensor::nbytes)
      .def_property_readonly("T", [](const Tensor& t) {
        ops::Dims rev;
        for (int64_t d = t.dim() - 1; d >= 0; --d) rev.push_back(d);
        return ops::permute(t, rev);
      })
      .def_property_readonly("mT", [](const Tensor& t) { return ops::transpose(t, -2, -1); })
      .def("size", [](const Tensor& t, std::optional<int64_t> d) -> py::object {
        if (d) return py::int_(t.size(*d));
        return py::tuple(py::cast(t.shape()));
      }, py::arg("dim") = py::none())
      .def("stride", [](const Tensor& t, std::optional<int64_t> d) -> py::object {
        if (d) return py::int_(t.stride(*d));
        return py::tuple(py::cast(t.strides()));
      }, py::arg("dim") = py::none())
      .def("dim", &Tensor::dim)
      .def("numel", &Tensor::numel)
      .def("element_size", &Tensor::itemsize)
      .def("storage_offset", &Tensor::offset)
      .def("is_contiguous", &Tensor::is_contiguous)
      .def("is_floating_point", [](const Tensor& t) { return is_floating(t.dtype()); })
      .def("data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); })
      .def("_version", [](const Tensor& t) { return t.storage()->version; })
      .def("__len__", [](const Tensor& t) {
        if (t.dim() == 0) raise(ErrorKind::Type, "len() of a 0-d tensor");
        return t.shape()[0];
      })
      .def("__hash__", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.impl()); })
      // views
      .def("view", [](const Tensor& t, py::args shape) {
        if (shape.size() == 1 && py::isinstance<DType>(shape[0])) {  // reinterpret the bytes
          const DType dt = shape[0].cast<DType>();
          LEPTON_CHECK(itemsize(dt) == t.itemsize(), NotImplemented, "view(dtype): only dtypes of the same size are "
                       "supported (", dtype_name(t.dtype()), " -> ", dtype_name(dt), ")");
          LEPTON_CHECK(!autograd::requires_grad(t), Runtime, "view(dtype) of a tensor that requires grad; detach() it first");
          return Tensor::view_of(t.storage(), t.shape(), t.strides(), t.offset(), dt);
        }
        return ops::view(t, shape_from_args(shape, "view"));
      })
      .def("reshape", [](const Tensor& t, py::args shape) { return ops::reshape(t, shape_from_args(shape, "reshape")); })
      .def("view_as", [](const Tensor& t, const Tensor& o) { return ops::view(t, o.shape()); })
      .def("reshape_as", [](const Tensor& t, const Tensor& o) { return ops::reshape(t, o.shape()); })
      .def("permute", [](const Tensor& t, py::args dims) { return ops::permute(t, shape_from_args(dims, "permute")); })
      .def("transpose", &ops::transpose, py::arg("dim0"), py::arg("dim1"))
      .def("swapaxes", &ops::transpose, py::arg("axis0"), py::arg("axis1"))
      .def("t", [](const Tensor& t) {
        if (t.dim() > 2) raise(ErrorKind::Value, "t() expects a tensor with <= 2 dimensions, but self is ", t.dim(), "D");
        return t.dim() < 2 ? t : ops::transpose(t, 0, 1);
      })
      .def("expand", [](const Tensor& t, py::args shape) { return ops::expand(t, shape_from_args(shape, "expand")); })
      .def("expand_as", [](const Tensor& t, const Tensor& o) { return ops::expand(t, o.shape()); })
      .def("squeeze", [](const Tensor& t, const py::object& dim) {
        return ops::squeeze(t, dim.is_none() ? std::nullopt : std::optional<ops::Dims>(to_dims(dim)));
      }, py::arg("dim") = py::none())
      .def("unsqueeze", &ops::unsqueeze, py::arg("dim"))
      .def("flatten", &ops::flatten, py::arg("start_dim") = 0, py::arg("end_dim") = -1)
      .def("as_strided", [](const Tensor& t, const py::object& size, const py::object& stride, std::optional<int64_t> off) {
        return ops::as_strided(t, to_shape(size, "size"), to_shape(stride, "stride"), off.value_or(t.offset()));
      }, py::arg("size"), py::arg("stride"), py::arg("storage_offset") = py::none())
      .def("split", [](const Tensor& t, const py::object& size, int64_t dim) {
        if (py::isinstance<py::int_>(size)) {
          int64_t s = size.cast<int64_t>();
          LEPTON_CHECK(s > 0, Value, "split: split_size must be positive, got ", s);
          const int64_t n = t.size(dim);
          ops::Dims sizes;
          for (int64_t at = 0; at < n; at += s) sizes.push_back(std::min(s, n - at));
          if (sizes.empty()) sizes.push_back(0);
          return ops::split(t, sizes, dim);
        }
        return ops::split(t, to_shape(size, "split_size_or_sections"), dim);
      }, py::arg("split_size_or_sections"), py::arg("dim") = 0)
      .def("chunk", &ops::chunk, py::arg("chunks"), py::arg("dim") = 0)
      .def("unbind", [](const Tensor& t, int64_t dim) {
        // split (one backward node for all pieces) and a squeeze per piece (a view, O(1))
        LEPTON_CHECK(t.dim() > 0, Index, "unbind: a 0-d tensor has no dimension to unbind");
        std::vector<Tensor> out = ops::split(t, ops::Dims(size_t(t.size(dim)), 1), dim);
        for (Tensor& piece : out) piece = ops::squeeze(piece, ops::Dims{dim});
        return out;
      }, py::arg("dim") = 0)
      .def("select", &ops::select, py::arg("dim"), py::arg("index"))
      .def("narrow", [](const Tensor& t, int64_t dim, int64_t start, int64_t length) {
        // slice() clamps its bounds; narrow() must not silently return fewer elements
        const int64_t size = t.size(dim);
        if (start < 0) start += size;
        LEPTON_CHECK(start >= 0 && length >= 0 && start + length <= size, Index, "narrow: start (", start,
                     ") + length (", length, ") exceeds dimension size (", size, ")");
        return ops::slice(t, dim, start, start + length, 1);
      })
      .def("index_select", &ops::index_select, py::arg("dim"), py::arg("index"))
      .def("nonzero", &ops::nonzero)
      .def("__getitem__", [](const Tensor& t, const py::object& key) { return ops::index(t, to_index_items(key)); })
      .def("__setitem__", [](const Tensor& t, const py::object& key, const py::object& value) {
        // a number is stored, so it must fit t's dtype (ops::full checks)
        Tensor v = as_tensor_operand(value) ? value.cast<Tensor>()
                                            : ops::full({}, require_scalar(value, "assigned value"), t.dtype(), t.device());
        ops::index_put_(t, to_index_items(key), v);
      })
      // copies and conversions
      .def("contiguous", &ops::contiguous)
      .def("clone", &ops::clone)
      .def("detach", [](const Tensor& t) { return Tensor::view_of(t.storage(), t.shape(), t.strides(), t.offset(), t.dtype()); })
      .def("to", &to_method)
      .def("cpu", [](const Tensor& t) { return ops::to(t, Device{}, std::nullopt, false); })
      .def("cuda", [](const Tensor& t, const py::object& d) {
        Device dev = d.is_none() ? Device{DeviceType::CUDA, 0} : to_device(d);
        LEPTON_CHECK(dev.is_cuda(), Value, "cuda(): expected a CUDA device, got ", dev.str());
        return ops::to(t, dev, std::nullopt, false);
      }, py::arg("device") = py::none())
      .def("type", [](const Tensor& t, const py::object& dtype) -> py::object {
        if (dtype.is_none()) return py::str(std::string("lepton.") + dtype_name(t.dtype()));
        return py::cast(ops::to(t, std::nullopt, to_dtype(dtype), false));
      }, py::arg("dtype") = py::none())
      .def("copy_", [](const Tensor& t, const Tensor& src) { ops::copy_(t, src); return t; })
      .def("fill_", [](const Tensor& t, const py::object& v) {
        ops::fill_(t, as_tensor_operand(v) ? require_scalar(py::cast(v.cast<Tensor>()).attr("item")(), "value")
                                           : require_scalar(v, "fill value"));
        return t;
      })
      .def("zero_", [](const Tensor& t) { ops::fill_(t, Scalar::from_int(0)); return t; })
      .def("uniform_", [](const Tensor& t, double a, double b) { ops::random_(t, RandomDist::Uniform, a, b); return t; },
           py::arg("from") = 0.0, py::arg("to") = 1.0)
      .def("normal_", [](const Tensor& t, double mean, double std) { ops::random_(t, RandomDist::Normal, mean, std); return t; },
           py::arg("mean") = 0.0, py::arg("std") = 1.0)
      .def("random_", [](const Tensor& t, int64_t low, std::optional<int64_t> high) {
        if (high) ops::random_(t, RandomDist::Integer, double(low), double(*high));
        else ops::random_(t, RandomDist::Integer, 0.0, double(low));
        return t;
      }, py::arg("from"), py::arg("to") = py::none())
      // operators
      .def("__neg__", [](const Tensor& t) {
        if (t.dtype() == DType::Bool) raise(ErrorKind::Type, "negation, the `-` operator, on a bool tensor is not supported; use ~ or logical_not()");
        return ops::unary(UnaryOp::Neg, t);
      })
      .def("__abs__", [](const Tensor& t) { return ops::unary(UnaryOp::Abs, t); })
      .def("__invert__", [](const Tensor& t) {
        LEPTON_CHECK(t.dtype() == DType::Bool, NotImplemented, "~ (bitwise not) is only supported for bool tensors, got ",
                     dtype_name(t.dtype()));
        return ops::logical_not(t);
      })
      .def("__bool__", [](const Tensor& t) {
        LEPTON_CHECK(t.numel() == 1, Value, "the truth value of a tensor with ", t.numel(),
                     " elements is ambiguous; use .any() or .all()");
        return py::cast(t).attr("item")().cast<bool>();
      })
      .def("__float__", [](const Tensor& t) { return py::cast(t).attr("item")().cast<double>(); })
      .def("__int__", [](const Tensor& t) { return py::int_(py::cast(t).attr("item")()); })
      .def("__index__", [](const Tensor& t) {
        LEPTON_CHECK(!is_floating(t.dtype()) && t.numel() == 1, Type, "only integer tensors of a single element can be converted to an index");
        return py::int_(py::cast(t).attr("item")());
      });

  struct BinSpec { const char* name; const char* rname; const char* iname; const char* method; BinaryOp op; };
  static const BinSpec bins[] = {
      {"__add__", "__radd__", "__iadd__", "add", BinaryOp::Add},
      {"__sub__", "__rsub__", "__isub__", "sub", BinaryOp::Sub},
      {"__mul__", "__rmul__", "__imul__", "mul", BinaryOp::Mul},
      {"__truediv__", "__rtruediv__", "__itruediv__", "div", BinaryOp::Div},
      {"__floordiv__", "__rfloordiv__", "__ifloordiv__", "floor_divide", BinaryOp::FloorDivide},
      {"__mod__", "__rmod__", "__imod__", "remainder", BinaryOp::Remainder},
      {"__pow__", "__rpow__", "__ipow__", "pow", BinaryOp::Pow},
      {"__and__", "__rand__", "__iand__", "logical_and", BinaryOp::LogicalAnd},
      {"__or__", "__ror__", "__ior__", "logical_or", BinaryOp::LogicalOr},
      {"__xor__", "__rxor__", "__ixor__", "logical_xor", BinaryOp::LogicalXor},
  };
  for (const BinSpec& b : bins) {
    BinaryOp op = b.op;
    const bool logical = op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr || op == BinaryOp::LogicalXor;
    auto check_logical = [logical](const Tensor& t) {
      if (logical)
        LEPTON_CHECK(t.dtype() == DType::Bool, NotImplemented, "&, | and ^ are only supported for bool tensors, got ",
                     dtype_name(t.dtype()), " (use logical_and/or/xor for others)");
    };
    cls.def(b.name, [op, check_logical](const Tensor& a, const py::object& o) { check_logical(a); return binary_op(op, a, o, false); });
    cls.def(b.rname, [op, check_logical](const Tensor& a, const py::object& o) { check_logical(a); return binary_op(op, a, o, true); });
    cls.def(b.iname, [op, check_logical](const Tensor& a, const py::object& o) { check_logical(a); return inplace_op(op, a, o); });
    if (logical) {
      cls.def(b.method, [op](const Tensor& a, const py::object& o) { return binary_op(op, a, o, false); });
      continue;
    }
    const bool has_alpha = op == BinaryOp::Add || op == BinaryOp::Sub;
    std::string inplace = std::string(b.method) + "_";
    if (has_alpha) {
      cls.def(b.method, [op](const Tensor& a, const py::object& o, const py::object& alpha) {
        py::object r = binary_op(op, a, scaled(o, alpha), false);
        if (r.is(py::reinterpret_borrow<py::object>(Py_NotImplemented))) require_scalar(o, "other");
        return r;
      }, py::arg("other"), py::kw_only(), py::arg("alpha") = py::none());
      cls.def(inplace.c_str(), [op](const Tensor& a, const py::object& o, const py::object& alpha) {
        py::object r = inplace_op(op, a, scaled(o, alpha));
        if (r.is(py::reinterpret_borrow<py::object>(Py_NotImplemented))) require_scalar(o, "other");
        return r;
      }, py::arg("other"), py::kw_only(), py::arg("alpha") = py::none());
    } else {
      cls.def(b.method, [op](const Tensor& a, const py::object& o) {
        py::object r = binary_op(op, a, o, false);
        if (r.is(py::reinterpret_borrow<py::object>(Py_NotImplemented))) require_scalar(o, "other");
        return r;
      });
      cls.def(inplace.c_str(), [op](const Tensor& a, const py::object& o) {
        py::object r = inplace_op(op, a, o);
        if (r.is(py::reinterpret_borrow<py::object>(Py_NotImplemented))) require_scalar(o, "other");
        return r;
      });
    }
  }
  cls.def("maximum", [](const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Maximum, a, b); })
      .def("minimum", [](const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Minimum, a, b); })
      .def("true_divide", [](const Tensor& a, const py::object& b) { return binary_op(BinaryOp::Div, a, b, false); });

  struct CmpSpec { const char* dunder; const char* method; CompareOp op; };
  static const CmpSpec cmps[] = {{"__eq__", "eq", CompareOp::Eq}, {"__ne__", "ne", CompareOp::Ne},
                                 {"__lt__", "lt", CompareOp::Lt}, {"__le__", "le", CompareOp::Le},
                                 {"__gt__", "gt", CompareOp::Gt}, {"__ge__", "ge", CompareOp::Ge}};
  for (const CmpSpec& c : cmps) {
    CompareOp op = c.op;
    cls.def(c.dunder, [op](const Tensor& a, const py::object& b) { return compare_op(op, a, b); });
    cls.def(c.method, [op](const Tensor& a, const py::object& b) { return compare_op(op, a, b); });
  }
  cls.def("logical_not", &ops::logical_not);

  for (int i = 0; i <= int(UnaryOp::Log2); ++i) {
    UnaryOp op = UnaryOp(i);
    std::string name = ops::unary_name(op);
    cls.def(name.c_str(), [op](const Tensor& t) { return ops::unary(op, t); });
    cls.def((name + "_").c_str(), [op](const Tensor& t) { ops::unary_(op, t); return t; });
  }
  cls.def("clamp", [](const Tensor& t, const py::object& lo, const py::object& hi) {
       return ops::clamp(t, lo.is_none() ? std::nullopt : std::optional<Scalar>(require_scalar(lo, "min")),
                         hi.is_none() ? std::nullopt : std::optional<Scalar>(require_scalar(hi, "max")));
     }, py::arg("min") = py::none(), py::arg("max") = py::none())
      .def("clamp_", [](const Tensor& t, const py::object& lo, const py::object& hi) {
        ops::clamp_(t, lo.is_none() ? std::nullopt : std::optional<Scalar>(require_scalar(lo, "min")),
                    hi.is_none() ? std::nullopt : std::optional<Scalar>(require_scalar(hi, "max")));
        return t;
      }, py::arg("min") = py::none(), py::arg("max") = py::none())
      .def("where", [](const Tensor& t, const Tensor& cond, const py::object& other) {
        Tensor o = as_tensor_operand(other) ? other.cast<Tensor>() : ops::scalar_tensor(require_scalar(other, "other"), t.dtype(), t.device());
        return ops::where(cond, t, o);
      });

  // reductions
  struct RedSpec { const char* name; ReduceOp op; };
  static const RedSpec reds[] = {{"sum", ReduceOp::Sum}, {"prod", ReduceOp::Prod}, {"amax", ReduceOp::Max},
                                 {"amin", ReduceOp::Min}, {"all", ReduceOp::All}, {"any", ReduceOp::Any}};
  for (const RedSpec& r : reds) {
    ReduceOp op = r.op;
    cls.def(r.name, [op](const Tensor& t, const py::object& dim, bool keepdim, const py::object& dtype) {
      return reduce_method(op, t, dim, keepdim, dtype);
    }, py::arg("dim") = py::none(), py::arg("keepdim") = false, py::kw_only(), py::arg("dtype") = py::none());
  }
  cls.def("mean", [](const Tensor& t, const py::object& dim, bool keepdim, const py::object& dtype) {
       Tensor in = dtype.is_none() ? t : ops::to(t, std::nullopt, to_dtype(dtype), false);
       return ops::mean(in, to_dims(dim), keepdim);
     }, py::arg("dim") = py::none(), py::arg("keepdim") = false, py::kw_only(), py::arg("dtype") = py::none())
      .def("var", [](const Tensor& t, const py::object& dim, std::optional<double> correction, bool keepdim, std::optional<bool> unbiased) {
        double c = correction.value_or(unbiased.value_or(true) ? 1.0 : 0.0);
        return ops::var(t, to_dims(dim), c, keepdim);
      }, py::arg("dim") = py::none(), py::kw_only(), py::arg("correction") = py::none(), py::arg("keepdim") = false,
         py::arg("unbiased") = py::none())
      .def("std", [](const Tensor& t, const py::object& dim, std::optional<double> correction, bool keepdim, std::optional<bool> unbiased) {
        double c = correction.value_or(unbiased.value_or(true) ? 1.0 : 0.0);
        return ops::unary(UnaryOp::Sqrt, ops::var(t, to_dims(dim), c, keepdim));
      }, py::arg("dim") = py::none(), py::kw_only(), py::arg("correction") = py::none(), py::arg("keepdim") = false,
         py::arg("unbiased") = py::none())
      .def("logsumexp", [](const Tensor& t, const py::object& dim, bool keepdim) {
        return ops::logsumexp(t, to_dims(dim), keepdim);
      }, py::arg("dim"), py::arg("keepdim") = false)
      .def("max", [](const Tensor& t, const py::object& dim, bool keepdim) { return extreme_method(t, dim, keepdim, true); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("min", [](const Tensor& t, const py::object& dim, bool keepdim) { return extreme_method(t, dim, keepdim, false); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("argmax", [](const Tensor& t, std::optional<int64_t> dim, bool keepdim) { return ops::arg_extreme(t, dim, keepdim, true); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("argmin", [](const Tensor& t, std::optional<int64_t> dim, bool keepdim) { return ops::arg_extreme(t, dim, keepdim, false); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false);
}

}  // namespace lepton::py_bind
