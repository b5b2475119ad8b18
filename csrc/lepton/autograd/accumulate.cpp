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
    // Keep the incoming gradient only when nothing else sees it and it can be accumulated into
    // in place: it may also reach other leaves (add's backward passes it on twice), be the
    // caller's own tensor (clone's backward passes it through) or a broadcast view (sum's
    // backward), and under create_graph it is copied in the graph, as torch does.
    const bool private_dense = !grad_enabled() && g.use_count() == 1 && g.storage().use_count() == 1 &&
                               g.is_contiguous();
    m.grad = private_dense ? g : ops::clone(g);
  } else if (grad_enabled()) {  // create_graph: keep the sum differentiable
    m.grad = ops::binary(BinaryOp::Add, m.grad, g);
  } else {
    ops::binary_(BinaryOp::Add, m.grad, g);
  }
  for (auto& [id, hook] : m.post_accumulate_hooks) hook(leaf_);
  return {};
}

}  // namespace lepton::autograd
