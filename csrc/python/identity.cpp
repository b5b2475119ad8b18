// The registry behind Tensor identity: TensorImpl <-> the Python object wrapping it, kept while
// the object lives (its deallocator, wrapped here, removes the entry). Touched under the GIL only.
#include <unordered_map>

#include "convert.h"

namespace lepton::py_bind {

namespace {

std::unordered_map<const TensorImpl*, PyObject*>& by_impl() {
  static auto* m = new std::unordered_map<const TensorImpl*, PyObject*>();  // outlives shutdown
  return *m;
}
std::unordered_map<PyObject*, const TensorImpl*>& by_object() {
  static auto* m = new std::unordered_map<PyObject*, const TensorImpl*>();
  return *m;
}

destructor g_base_dealloc = nullptr;

void tensor_dealloc(PyObject* self) {
  auto it = by_object().find(self);
  if (it != by_object().end()) {
    auto impl_it = by_impl().find(it->second);
    if (impl_it != by_impl().end() && impl_it->second == self) by_impl().erase(impl_it);
    by_object().erase(it);
  }
  g_base_dealloc(self);
}

}  // namespace

PyObject* live_object(const TensorImpl* impl) {
  auto it = by_impl().find(impl);
  return it == by_impl().end() ? nullptr : it->second;
}

void remember_object(const TensorImpl* impl, PyObject* obj) {
  by_impl()[impl] = obj;
  by_object()[obj] = impl;
}

py::custom_type_setup tensor_type_setup() {
  return py::custom_type_setup([](PyHeapTypeObject* heap) {
    // Before PyType_Ready the slot may still be empty (inherited later from pybind11's base).
    PyTypeObject* type = &heap->ht_type;
    g_base_dealloc = type->tp_dealloc ? type->tp_dealloc : type->tp_base->tp_dealloc;
    type->tp_dealloc = tensor_dealloc;
  });
}

}  // namespace lepton::py_bind
