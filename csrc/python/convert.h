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

}  // namespace lepton::py_bind
