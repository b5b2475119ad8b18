#include "lepton/autograd/accumulate.h"

#include "lepton/autograd/meta.h"
#include "lepton/ops/ops.h"

namespace lepton::autograd {

TensorList AccumulateGrad::apply(TensorList&& grads) {
  Tensor g = std::move(grads[0]);
  if (!g.defined()) return {};
  if (g.dtype() != leaf_.dtype() || g.device() != leaf_.device())
    g = ops::to(g, leaf_.device(), leaf_.dtype(), false);
  AutogradMeta& m = ensure_meta(leaf_);
  if (!m.grad.defined()) {
    // The same gradient tensor may also reach other leaves (add's backward passes it on
    // twice): keep a private copy unless this is the only reference.
    const bool shared = g.storage().use_count() > 1;
    m.grad = shared && !grad_enabled() ? ops::clone(g) : g;
  } else if (grad_enabled()) {  // create_graph: keep the sum differentiable
    m.grad = ops::binary(BinaryOp::Add, m.grad, g);
  } else {
    ops::binary_(BinaryOp::Add, m.grad, g);
  }
  for (auto& [id, hook] : m.post_accumulate_hooks) hook(leaf_);
  return {};
}

}  // namespace lepton::autograd
