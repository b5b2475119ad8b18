// Exchange with NumPy (zero-copy both ways on the CPU) and DLPack (numpy, PyTorch, CuPy...).
#include "convert.h"
#include "dlpack.h"
#include "lepton/core/error.h"

namespace lepton::py_bind {

namespace {

// ---- NumPy

DType dtype_from_numpy(const py::dtype& dt) {
  const char kind = dt.kind();
  const size_t size = dt.itemsize();
  if (kind == 'b') return DType::Bool;
  if (kind == 'u' && size == 1) return DType::UInt8;
  if (kind == 'i' && size == 1) return DType::Int8;
  if (kind == 'i' && size == 4) return DType::Int32;
  if (kind == 'i' && size == 8) return DType::Int64;
  if (kind == 'f' && size == 2) return DType::Float16;
  if (kind == 'f' && size == 4) return DType::Float32;
  if (kind == 'f' && size == 8) return DType::Float64;
  raise(ErrorKind::Type, "can't convert a NumPy array of dtype ", std::string(py::str(dt)),
        ": Lepton has no such dtype (it has bool, uint8, int8, int32, int64, float16, float32, float64); "
        "convert the array first, e.g. arr.astype(np.int32)");
}

py::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::Bool: return py::dtype("bool");
    case DType::UInt8: return py::dtype("uint8");
    case DType::Int8: return py::dtype("int8");
    case DType::Int32: return py::dtype("int32");
    case DType::Int64: return py::dtype("int64");
    case DType::Float16: return py::dtype("float16");
    case DType::Float32: return py::dtype("float32");
    case DType::Float64: return py::dtype("float64");
    default: raise(ErrorKind::Type, "NumPy has no bfloat16: convert first, e.g. x.float().numpy()");
  }
}

// A tensor over `base + offset` with element strides; the storage keeps `owner` alive.
Tensor wrap_foreign(char* data, const Shape& shape, const Shape& strides, DType dtype, Device device,
                    std::function<void(void*)> release) {
  int64_t lo = 0, hi = 0;
  bool empty = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) empty = true;
    int64_t span = (shape[d] - 1) * strides[d];
    (span < 0 ? lo : hi) += span;
  }
  if (empty) lo = hi = 0;
  const size_t isz = itemsize(dtype);
  char* base = data + lo * int64_t(isz);
  auto storage = std::make_shared<Storage>(base, size_t(hi - lo + 1) * isz, device, std::move(release));
  return Tensor::view_of(storage, shape, strides, -lo, dtype);
}

Tensor from_numpy(const py::array& arr) {
  // The tensor shares the array's memory, so its bytes must already be in the machine's order.
  LEPTON_CHECK(arr.dtype().attr("isnative").cast<bool>(), Value, "from_numpy: the array's dtype ",
               std::string(py::str(arr.dtype())), " has a byte order different from the native byte order; "
               "conversion between byte orders is not supported: convert it first, e.g. "
               "arr.astype(arr.dtype.newbyteorder('='))");
  DType dtype = dtype_from_numpy(arr.dtype());
  // As in torch: the tensor shares the memory all the same, and writing to it is the caller's risk.
  if (!arr.writeable() &&
      PyErr_WarnEx(PyExc_UserWarning, "The given NumPy array is not writable, and Lepton does not support "
                                      "non-writable tensors: writing to this tensor writes to the array's "
                                      "read-only memory. Copy the array (arr.copy()) or make it writable "
                                      "before converting it to a tensor.", 1) < 0)
    throw py::error_already_set();
  const int64_t isz = int64_t(itemsize(dtype));
  Shape shape(arr.shape(), arr.shape() + arr.ndim()), strides(arr.ndim());
  for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
    LEPTON_CHECK(arr.strides(d) % isz == 0, Value, "from_numpy: array strides ", arr.strides(d),
                 " are not a multiple of the element size ", isz);
    strides[d] = arr.strides(d) / isz;
  }
  auto* owner = new py::object(arr);
  return wrap_foreign(static_cast<char*>(const_cast<void*>(arr.data())), shape, strides, dtype, Device{},
                      [owner](void*) {
                        py::gil_scoped_acquire gil;
                        delete owner;
                      });
}

py::array to_numpy(const Tensor& t) {
  LEPTON_CHECK(!t.device().is_cuda(), Type, "can't convert a ", t.device().str(),
               " tensor to NumPy: copy it to the host first with .cpu()");
  py::dtype dt = numpy_dtype(t.dtype());
  std::vector<py::ssize_t> strides;
  for (int64_t s : t.strides()) strides.push_back(s * int64_t(t.itemsize()));
  auto* keep = new std::shared_ptr<Storage>(t.storage());
  py::capsule base(keep, [](void* p) { delete static_cast<std::shared_ptr<Storage>*>(p); });
  return py::array(dt, t.shape(), strides, t.data_ptr(), base);
}

py::object item(const Tensor& t) {
  LEPTON_CHECK(t.numel() == 1, Value, "a Tensor with ", t.numel(), " elements cannot be converted to a Python scalar");
  Tensor host = ops::to(t, Device{}, t.dtype() == DType::BFloat16 || t.dtype() == DType::Float16 ? DType::Float32 : t.dtype(), false);
  return to_numpy(host).attr("reshape")(-1)[py::int_(0)].attr("item")();
}

py::object tolist(const Tensor& t) {
  Tensor host = ops::to(t, Device{}, t.dtype() == DType::BFloat16 || t.dtype() == DType::Float16 ? DType::Float32 : t.dtype(), false);
  return to_numpy(host).attr("tolist")();
}

// ---- DLPack

DLDataType dl_dtype(DType t) {
  switch (t) {
    case DType::Bool: return {kDLBool, 8, 1};
    case DType::UInt8: return {kDLUInt, 8, 1};
    case DType::Int8: return {kDLInt, 8, 1};
    case DType::Int32: return {kDLInt, 32, 1};
    case DType::Int64: return {kDLInt, 64, 1};
    case DType::Float16: return {kDLFloat, 16, 1};
    case DType::BFloat16: return {kDLBfloat, 16, 1};
    case DType::Float32: return {kDLFloat, 32, 1};
    case DType::Float64: return {kDLFloat, 64, 1};
  }
  return {kDLFloat, 32, 1};
}

DType dtype_from_dl(DLDataType d) {
  LEPTON_CHECK(d.lanes == 1, Type, "from_dlpack: vector dtypes (lanes=", d.lanes, ") are not supported");
  if (d.code == kDLBool && d.bits == 8) return DType::Bool;
  if (d.code == kDLUInt && d.bits == 8) return DType::UInt8;
  if (d.code == kDLUInt && d.bits == 1) return DType::Bool;
  if (d.code == kDLInt && d.bits == 8) return DType::Int8;
  if (d.code == kDLInt && d.bits == 32) return DType::Int32;
  if (d.code == kDLInt && d.bits == 64) return DType::Int64;
  if (d.code == kDLFloat && d.bits == 16) return DType::Float16;
  if (d.code == kDLBfloat && d.bits == 16) return DType::BFloat16;
  if (d.code == kDLFloat && d.bits == 32) return DType::Float32;
  if (d.code == kDLFloat && d.bits == 64) return DType::Float64;
  raise(ErrorKind::Type, "from_dlpack: unsupported dtype (code ", int(d.code), ", bits ", int(d.bits), ")");
}

// Owns what the exported DLTensor points at: the storage and the shape/stride arrays.
struct Export {
  Tensor tensor;
  Shape shape, strides;
};

template <class Managed>
void fill_dl(Managed* m, Export* ctx) {
  const Tensor& t = ctx->tensor;
  m->manager_ctx = ctx;
  m->dl_tensor.data = t.storage()->data;
  m->dl_tensor.byte_offset = uint64_t(t.offset()) * t.itemsize();
  m->dl_tensor.device = {t.device().is_cuda() ? kDLCUDA : kDLCPU, t.device().is_cuda() ? t.device().index : 0};
  m->dl_tensor.ndim = int32_t(t.dim());
  m->dl_tensor.dtype = dl_dtype(t.dtype());
  m->dl_tensor.shape = ctx->shape.data();
  m->dl_tensor.strides = ctx->strides.data();
}

py::capsule to_dlpack(const Tensor& t, const py::object& max_version) {
  auto* ctx = new Export{t, t.shape(), t.strides()};
  bool versioned = false;
  if (!max_version.is_none()) versioned = py::len(max_version) > 0 && max_version[py::int_(0)].cast<int>() >= 1;
  if (versioned) {
    auto* m = new DLManagedTensorVersioned{};
    m->version = {1, 0};
    m->flags = 0;
    fill_dl(m, ctx);
    m->deleter = [](DLManagedTensorVersioned* self) {
      delete static_cast<Export*>(self->manager_ctx);
      delete self;
    };
    return py::capsule(m, "dltensor_versioned", [](PyObject* cap) {
      // Only an unconsumed capsule still owns the tensor.
      if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
        auto* p = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
        p->deleter(p);
      }
    });
  }
  auto* m = new DLManagedTensor{};
  fill_dl(m, ctx);
  m->deleter = [](DLManagedTensor* self) {
    delete static_cast<Export*>(self->manager_ctx);
    delete self;
  };
  return py::capsule(m, "dltensor", [](PyObject* cap) {
    if (PyCapsule_IsValid(cap, "dltensor")) {
      auto* p = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
      p->deleter(p);
    }
  });
}

template <class Managed>
Tensor import_dl(Managed* m) {
  const DLTensor& dl = m->dl_tensor;
  LEPTON_CHECK(dl.device.device_type == kDLCPU || dl.device.device_type == kDLCUDA || dl.device.device_type == kDLCUDAHost, Value,
               "from_dlpack: unsupported device type ", dl.device.device_type);
  const DType dtype = dtype_from_dl(dl.dtype);
  Shape shape(dl.shape, dl.shape + dl.ndim);
  Shape strides = dl.strides ? Shape(dl.strides, dl.strides + dl.ndim) : contiguous_strides(shape);
  Device device = dl.device.device_type == kDLCUDA ? Device{DeviceType::CUDA, dl.device.device_id} : Device{};
  char* data = static_cast<char*>(dl.data) + dl.byte_offset;
  return wrap_foreign(data, shape, strides, dtype, device, [m](void*) {
    py::gil_scoped_acquire gil;  // producers such as NumPy release Python objects
    if (m->deleter) m->deleter(m);
  });
}

Tensor from_dlpack(const py::object& obj) {
  py::object cap_obj;
  if (py::hasattr(obj, "__dlpack__")) {
    py::object dev = obj.attr("__dlpack_device__")();
    const int dev_type = dev[py::int_(0)].cast<int>();
    py::dict kwargs;
    if (dev_type == kDLCUDA) kwargs["stream"] = 1;  // our kernels run on the legacy default stream
    try {
      kwargs["max_version"] = py::make_tuple(1, 0);
      cap_obj = obj.attr("__dlpack__")(**kwargs);
    } catch (const py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError)) throw;
      kwargs.attr("pop")("max_version");
      cap_obj = obj.attr("__dlpack__")(**kwargs);
    }
  } else {
    cap_obj = obj;
  }
  PyObject* cap = cap_obj.ptr();
  LEPTON_CHECK(PyCapsule_CheckExact(cap), Type, "from_dlpack: expected an object with __dlpack__ or a DLPack capsule");
  if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
    LEPTON_CHECK(m->version.major == 1, Value, "from_dlpack: unsupported DLPack version ", m->version.major);
    Tensor t = import_dl(m);
    PyCapsule_SetName(cap, "used_dltensor_versioned");
    return t;
  }
  LEPTON_CHECK(PyCapsule_IsValid(cap, "dltensor"), Value, "from_dlpack: the capsule was already consumed or is not a DLPack tensor");
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
  Tensor t = import_dl(m);
  PyCapsule_SetName(cap, "used_dltensor");
  return t;
}

}  // namespace

void bind_interop(py::module_& m) {
  m.def("from_numpy", &from_numpy, py::arg("ndarray"), "A tensor sharing memory with a NumPy array (no copy)");
  m.def("from_dlpack", &from_dlpack, py::arg("ext_tensor"), "A tensor sharing memory with any DLPack producer");
  py::class_<Tensor> cls = py::reinterpret_borrow<py::class_<Tensor>>(m.attr("Tensor"));
  cls.def("numpy", &to_numpy, "A NumPy array sharing this CPU tensor's memory")
      .def("__array__", [](const Tensor& t, const py::object& dtype, const py::object&) {
        py::array a = to_numpy(t);
        return dtype.is_none() ? py::object(a) : a.attr("astype")(dtype);
      }, py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def("item", &item)
      .def("tolist", &tolist)
      .def("__dlpack__", [](const Tensor& t, const py::object& stream, const py::object& max_version, const py::object&,
                            const py::object&) { return to_dlpack(t, max_version); },
           py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
           py::arg("copy") = py::none())
      .def("__dlpack_device__", [](const Tensor& t) {
        return py::make_tuple(t.device().is_cuda() ? int(kDLCUDA) : int(kDLCPU), t.device().is_cuda() ? t.device().index : 0);
      });
}

}  // namespace lepton::py_bind
