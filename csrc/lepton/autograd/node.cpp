#include <atomic>

#include "lepton/autograd/record.h"
#include "lepton/core/error.h"

namespace lepton::autograd {

namespace {
std::atomic<uint64_t> g_next_sequence_nr{0};
}

Node::Node() : sequence_nr(g_next_sequence_nr++) {}

// Dropping the last reference to a long chain would destroy it recursively, one stack frame per
// node, and overflow the stack: the nodes this one alone keeps alive are released in a loop
// instead, each first dropping its saved tensors (which may hold the same next nodes).
Node::~Node() {
  std::vector<std::shared_ptr<Node>> pending;
  auto take = [&pending](std::vector<Edge>& edges) {
    for (Edge& e : edges)
      if (e.fn && e.fn.use_count() == 1) pending.push_back(std::move(e.fn));
    edges.clear();
  };
  take(next_edges);
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    n->release();
    take(n->next_edges);
  }
}

SavedTensor::SavedTensor(const Tensor& t, bool is_output, uint32_t output_nr)
    : tensor_(is_output ? t.alias() : t), version_(t.storage()->version), is_output_(is_output), output_nr_(output_nr) {}

Tensor SavedTensor::unpack(const Node& owner) const {
  if (tensor_.defined())
    LEPTON_CHECK(tensor_.storage()->version == version_, Runtime,
                 "one of the tensors needed for gradient computation by ", owner.name(),
                 " has been modified by an in-place operation (version ", tensor_.storage()->version,
                 ", expected ", version_, ")");
  if (!is_output_ || !grad_enabled()) return tensor_;
  Tensor t = tensor_.alias();
  AutogradMeta& m = ensure_meta(t);
  m.grad_fn = std::const_pointer_cast<Node>(owner.shared_from_this());
  m.output_nr = output_nr_;
  return t;
}

TensorList FunctionNode::apply(TensorList&& grads) {
  LEPTON_CHECK(fn_ != nullptr, Runtime, "trying to backward through ", name_,
               " a second time: its saved tensors were freed after the first backward(); pass retain_graph=True "
               "to keep them");
  return fn_(*this, grads);
}

}  // namespace lepton::autograd
