// Autograd from Python: requires_grad/grad/grad_fn on tensors, backward, grad mode, hooks.
#include "convert.h"
#include "lepton/autograd/engine.h"
#include "lepton/autograd/meta.h"
#include "lepton/autograd/record.h"
#include "lepton/core/error.h"

namespace lepton::py_bind {

namespace {

namespace ag = lepton::autograd;

std::vector<Tensor> tensor_list(const py::object& obj, const char* what) {
  if (obj.is_none()) return {};
  if (py::isinstance<Tensor>(obj)) return {obj.cast<Tensor>()};
  std::vector<Tensor> out;
  for (auto item : py::reinterpret_borrow<py::iterable>(obj)) {
    if (item.is_none()) {
      out.emplace_back();
      continue;
    }
    if (!py::isinstance<Tensor>(item))
      raise(ErrorKind::Type, what, " must be tensors, got ", std::string(py::str(py::type::of(item).attr("__name__"))));
    out.push_back(item.cast<Tensor>());
  }
  return out;
}

int64_t g_next_hook_id = 0;

// A Python callable held by a graph node: the node may be freed without the GIL (or after the
// interpreter has gone), so the reference is dropped under the GIL, or leaked at exit.
std::shared_ptr<py::object> hold_callable(py::object fn) {
  return std::shared_ptr<py::object>(new py::object(std::move(fn)), [](py::object* p) {
    if (Py_IsInitialized()) {
      py::gil_scoped_acquire gil;
      delete p;
    } else {
      p->release();  // (no decref without an interpreter)
      delete p;
    }
  });
}

// lepton.autograd.Function's node: backward(grads...) is a Python callable returning one
// gradient (or None) per input.
void record_python_function(const std::string& name, const py::object& inputs, const py::object& outputs,
                            py::function backward) {
  std::vector<Tensor> ins = tensor_list(inputs, "inputs"), outs = tensor_list(outputs, "outputs");
  for (const Tensor& o : outs)
    LEPTON_CHECK(o.defined(), Value, name, ": every output of a Function must be a tensor");
  const size_t n_inputs = ins.size();
  auto fn = hold_callable(std::move(backward));
  ag::record(name.c_str(), ins, outs, [fn, n_inputs, name](const ag::Node&, ag::TensorList& grads) {
    py::gil_scoped_acquire gil;
    py::tuple args(grads.size());
    for (size_t i = 0; i < grads.size(); ++i) args[i] = py::cast(grads[i]);
    std::vector<Tensor> res = tensor_list((*fn)(*args), "gradients returned by backward");
    LEPTON_CHECK(res.size() == n_inputs, Runtime, name, ".backward returned ", res.size(), " gradients for ",
                 n_inputs, " inputs");
    return res;
  });
}

}  // namespace

void bind_autograd(py::module_& m) {
  py::class_<ag::Node, std::shared_ptr<ag::Node>>(m, "Node", "A step of the backward graph (a tensor's grad_fn)")
      .def("name", &ag::Node::name)
      .def_property_readonly("next_functions", [](const ag::Node& n) {
        py::list out;
        for (const ag::Edge& e : n.next_edges)
          out.append(py::make_tuple(e.fn ? py::cast(e.fn) : py::none(), e.input_nr));
        return py::tuple(out);
      })
      .def("__repr__", [](const ag::Node& n) { return "<" + n.name() + ">"; });

  py::class_<Tensor> cls = py::reinterpret_borrow<py::class_<Tensor>>(m.attr("Tensor"));
  cls.def_property("requires_grad", &ag::requires_grad, &ag::set_requires_grad)
      .def_property("grad", [](const Tensor& t) -> py::object {
        Tensor g = ag::grad(t);
        return g.defined() ? py::cast(g) : py::none();
      }, [](const Tensor& t, const py::object& g) { ag::set_grad(t, g.is_none() ? Tensor() : g.cast<Tensor>()); })
      .def_property_readonly("grad_fn", [](const Tensor& t) -> py::object {
        auto fn = ag::grad_fn(t);
        return fn ? py::cast(fn) : py::none();
      })
      .def_property_readonly("is_leaf", &ag::is_leaf)
      .def("requires_grad_", [](const Tensor& t, bool value) { ag::set_requires_grad(t, value); return t; },
           py::arg("requires_grad") = true)
      .def("detach_", [](const Tensor& t) {
        if (ag::AutogradMeta* meta = ag::meta(t)) {
          meta->grad_fn = nullptr;
          meta->requires_grad = false;
          meta->is_view = false;
        }
        return t;
      })
      .def("backward", [](const Tensor& t, const py::object& gradient, std::optional<bool> retain_graph, bool create_graph) {
        std::vector<Tensor> grads;
        if (!gradient.is_none()) grads.push_back(gradient.cast<Tensor>());
        ag::backward({t}, grads, retain_graph.value_or(create_graph), create_graph);
      }, py::arg("gradient") = py::none(), py::arg("retain_graph") = py::none(), py::arg("create_graph") = false)
      .def("register_post_accumulate_grad_hook", [](const Tensor& t, py::function hook) {
        LEPTON_CHECK(ag::requires_grad(t) && ag::is_leaf(t), Runtime,
                     "post accumulate grad hooks can only be registered on leaf tensors that require grad");
        const int64_t id = g_next_hook_id++;
        ag::ensure_meta(t).post_accumulate_hooks.emplace_back(id, [hook](const Tensor& leaf) { hook(leaf); });
        // The handle removes the hook again (DDP and friends unregister theirs).
        py::object handle = py::module_::import("types").attr("SimpleNamespace")();
        Tensor owner = t;
        handle.attr("remove") = py::cpp_function([owner, id]() {
          if (ag::AutogradMeta* meta = ag::meta(owner)) {
            auto& hooks = meta->post_accumulate_hooks;
            for (auto it = hooks.begin(); it != hooks.end(); ++it)
              if (it->first == id) {
                hooks.erase(it);
                break;
              }
          }
        });
        return handle;
      }, py::arg("hook"));

  m.def("_record_function", &record_python_function, py::arg("name"), py::arg("inputs"), py::arg("outputs"),
        py::arg("backward"));
  m.def("is_grad_enabled", &ag::grad_enabled);
  m.def("set_grad_enabled", &ag::set_grad_enabled, py::arg("mode"));
  m.def("_autograd_backward", [](const py::object& tensors, const py::object& grads, std::optional<bool> retain_graph,
                                 bool create_graph) {
    ag::backward(tensor_list(tensors, "tensors"), tensor_list(grads, "grad_tensors"), retain_graph.value_or(create_graph),
                 create_graph);
  }, py::arg("tensors"), py::arg("grad_tensors") = py::none(), py::arg("retain_graph") = py::none(),
     py::arg("create_graph") = false);
  m.def("_autograd_grad", [](const py::object& outputs, const py::object& inputs, const py::object& grad_outputs,
                             std::optional<bool> retain_graph, bool create_graph, bool allow_unused) {
    std::vector<Tensor> res = ag::grad(tensor_list(outputs, "outputs"), tensor_list(inputs, "inputs"),
                                       tensor_list(grad_outputs, "grad_outputs"), retain_graph.value_or(create_graph),
                                       create_graph, allow_unused);
    py::list out;
    for (const Tensor& t : res) out.append(t.defined() ? py::cast(t) : py::none());
    return py::tuple(out);
  }, py::arg("outputs"), py::arg("inputs"), py::arg("grad_outputs") = py::none(), py::arg("retain_graph") = py::none(),
     py::arg("create_graph") = false, py::arg("allow_unused") = false);
}

}  // namespace lepton::py_bind
