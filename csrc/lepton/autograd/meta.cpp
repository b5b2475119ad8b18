#include "lepton/autograd/meta.h"

#include "lepton/autograd/accumulate.h"
#include "lepton/core/error.h"

namespace lepton::autograd {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

AutogradMeta* meta(const Tensor& t) { return t.impl()->autograd.get(); }

AutogradMeta& ensure_meta(const Tensor& t) {
  auto& m = t.impl()->autograd;
  if (!m) m = std::make_shared<AutogradMeta>();
  return *m;
}

bool requires_grad(const Tensor& t) {
  AutogradMeta* m = meta(t);
  return m && (m->requires_grad || m->grad_fn);
}

void set_requires_grad(const Tensor& t, bool value) {
  AutogradMeta* m = meta(t);
  LEPTON_CHECK(!(m && m->grad_fn), Runtime,
               "you can only change requires_grad flags of leaf tensors; use detach() to get a leaf "
               "(this tensor is the result of ", m && m->grad_fn ? m->grad_fn->name() : "", ")");
  LEPTON_CHECK(!value || is_floating(t.dtype()), Type,
               "only tensors of floating point dtype can require gradients (got ", dtype_name(t.dtype()), ")");
  if (!value && !m) return;
  ensure_meta(t).requires_grad = value;
}

bool is_leaf(const Tensor& t) {
  AutogradMeta* m = meta(t);
  return !m || !m->grad_fn;
}

std::shared_ptr<Node> grad_fn(const Tensor& t) {
  AutogradMeta* m = meta(t);
  return m ? m->grad_fn : nullptr;
}

Tensor grad(const Tensor& t) {
  AutogradMeta* m = meta(t);
  return m ? m->grad : Tensor();
}

void set_grad(const Tensor& t, const Tensor& g) {
  if (g.defined()) {
    LEPTON_CHECK(g.shape() == t.shape(), Value, "assigned grad has shape ", shape_str(g.shape()),
                 " but the tensor has shape ", shape_str(t.shape()));
    LEPTON_CHECK(g.dtype() == t.dtype() && g.device() == t.device(), Type, "assigned grad has dtype ",
                 dtype_name(g.dtype()), " on ", g.device().str(), " but the tensor has dtype ", dtype_name(t.dtype()),
                 " on ", t.device().str());
  }
  if (!g.defined() && !meta(t)) return;
  ensure_meta(t).grad = g;
}

Edge gradient_edge(const Tensor& t) {
  AutogradMeta* m = meta(t);
  if (!m) return {};
  // A view's history is fixed when it is taken, so an in-place op on its (non-leaf) base since
  // then would leave it stale and its gradients silently wrong (torch rebuilds it; we refuse).
  // A leaf base is only ever modified under no_grad, which changes no history.
  LEPTON_CHECK(!m->grad_fn || !m->is_view || m->view_of_leaf || t.storage()->version == m->view_version,
               NotImplemented, "a view whose base was modified by an in-place operation after the view was taken "
               "can't be used by autograd yet; take the view after the in-place op");
  if (m->grad_fn) return {m->grad_fn, m->output_nr};
  if (!m->requires_grad) return {};
  std::shared_ptr<Node> acc = m->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    m->grad_accumulator = acc;
  }
  return {acc, 0};
}

}  // namespace lepton::autograd
