// Conversions between Python objects and engine types, shared by the binding files.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "lepton/core/scalar.h"
#include "lepton/core/tensor.h"
#include "lepton/ops/ops.h"

namespace lepton::py_bind {

namespace py = pybind11;

// One Python object per tensor while that object lives (identity.cpp): ops that hand back a
// tensor Python already knows (x.add_(1), x.contiguous(), hook arguments) return that same
// object, as in PyTorch, so `is`, id() and Python-side attributes stay stable.
PyObject* live_object(const TensorImpl* impl);
void remember_object(const TensorImpl* impl, PyObject* obj);
py::custom_type_setup tensor_type_setup();

}  // namespace lepton::py_bind

namespace pybind11::detail {
template <>
struct type_caster<lepton::Tensor> : public type_caster_base<lepton::Tensor> {
  using base = type_caster_base<lepton::Tensor>;
  template <class T>
  static handle cast(T&& src, return_value_policy policy, handle parent) {
    if (!src.defined()) return none().release();
    if (PyObject* obj = lepton::py_bind::live_object(src.impl())) return handle(obj).inc_ref();
    const lepton::TensorImpl* impl = src.impl();
    handle h = base::cast(std::forward<T>(src), policy, parent);
    lepton::py_bind::remember_object(impl, h.ptr());
    return h;
  }
  static handle cast(const lepton::Tensor* src, return_value_policy policy, handle parent) {
    return src ? cast(*src, policy, parent) : none().release();
  }
};
}  // namespace pybind11::detail

namespace lepton::py_bind {

// A Python int (or an object with __index__) as int64; nullopt when its value does not fit.
std::optional<int64_t> int64_of(const py::handle& obj);
// A Python bool/int/float (or NumPy scalar) as a Scalar; nullopt for anything else.
std::optional<Scalar> to_scalar(const py::handle& obj);
Scalar require_scalar(const py::handle& obj, const char* what);
// int or sequence of ints (also accepts a lepton Size/tuple/list); `what` names it in errors.
Shape to_shape(const py::handle& obj, const char* what);
// shape given either as one sequence or as several ints: f(2, 3) or f((2, 3))
Shape shape_from_args(const py::args& args, const char* what);
ops::Dims to_dims(const py::handle& obj);  // None -> {} (all dims), int or sequence
DType to_dtype(const py::handle& obj);     // lepton dtype or its name
Device to_device(const py::handle& obj);   // lepton device, "cpu", "cuda:1", or an int (CUDA ordinal)
std::optional<DType> opt_dtype(const py::handle& obj);    // None -> nullopt
std::optional<Device> opt_device(const py::handle& obj);  // None -> nullopt

// A tensor from another operand: a Tensor as is, a number as a 0-d tensor like `like`'s device.
std::optional<Tensor> as_tensor_operand(const py::handle& obj);

py::object make_namedtuple(const char* name, const Tensor& values, const Tensor& indices);

void bind_types(py::module_& m);
void bind_tensor(py::module_& m);
void bind_functions(py::module_& m);
void bind_interop(py::module_& m);
void bind_runtime(py::module_& m);
void bind_linalg(py::module_& m);  // after bind_tensor: adds Tensor methods
void bind_autograd(py::module_& m);
void bind_optim(py::module_& m);
void bind_softmax(py::module_& m);
void bind_conv(py::module_& m);  // conv2d and pooling
void bind_norm(py::module_& m);
void bind_attention(py::module_& m);
void bind_quant(py::module_& m);  // int8 quantisation and GEMM
void bind_dist(py::module_& m);  // NCCL communicators (lepton._C._dist)

}  // namespace lepton::py_bind
