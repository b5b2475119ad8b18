#include "lepton/autograd/engine.h"

#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "lepton/autograd/accumulate.h"
#include "lepton/autograd/meta.h"
#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/ops.h"

namespace lepton::autograd {

namespace {

struct Capture {
  Node* fn;
  uint32_t input_nr;
  size_t slot;
};

struct ByLatest {
  bool operator()(const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) const {
    return a->sequence_nr < b->sequence_nr;
  }
};

void add_into(TensorList& buffer, uint32_t nr, Tensor g) {
  if (!buffer[nr].defined())
    buffer[nr] = std::move(g);
  else
    buffer[nr] = ops::binary(BinaryOp::Add, buffer[nr], g);
}

// The shared core of backward() and grad(). With captures set, matching node inputs are
// recorded into `captured` and leaves are left alone.
void run(const std::vector<Edge>& roots, const TensorList& root_grads, bool retain_graph, bool create_graph,
         const std::vector<Capture>* captures, TensorList* captured) {
  autocast::Suspend no_autocast;  // backward ops run in the dtypes the forward pass recorded
  std::unordered_map<Node*, int> deps;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (const Edge& e : roots)
    if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.valid()) continue;
      ++deps[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }
  std::unordered_map<Node*, TensorList> buffers;
  auto buffer_of = [&](Node* n) -> TensorList& {
    TensorList& b = buffers[n];
    if (b.empty()) b.resize(n->num_outputs());
    return b;
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, ByLatest> ready;
  std::unordered_set<Node*> queued;
  for (size_t i = 0; i < roots.size(); ++i) add_into(buffer_of(roots[i].fn.get()), roots[i].input_nr, root_grads[i]);
  for (const Edge& e : roots)
    if (deps[e.fn.get()] == 0 && queued.insert(e.fn.get()).second) ready.push(e.fn);

  const bool prev_mode = grad_enabled();
  set_grad_enabled(create_graph);
  try {
    while (!ready.empty()) {
      std::shared_ptr<Node> node = ready.top();
      ready.pop();
      TensorList grads = std::move(buffer_of(node.get()));
      buffers.erase(node.get());
      if (captures)
        for (const Capture& c : *captures)
          if (c.fn == node.get()) (*captured)[c.slot] = grads[c.input_nr];
      bool any = false;
      for (const Tensor& g : grads) any = any || g.defined();
      TensorList outputs;
      const bool skip = !any || (captures && dynamic_cast<AccumulateGrad*>(node.get()));
      if (!skip) outputs = node->apply(std::move(grads));
      if (!retain_graph) node->release();
      for (size_t i = 0; i < node->next_edges.size(); ++i) {
        const Edge& e = node->next_edges[i];
        if (!e.valid()) continue;
        if (i < outputs.size() && outputs[i].defined()) add_into(buffer_of(e.fn.get()), e.input_nr, outputs[i]);
        if (--deps[e.fn.get()] == 0) ready.push(e.fn);
      }
    }
  } catch (...) {
    set_grad_enabled(prev_mode);
    throw;
  }
  set_grad_enabled(prev_mode);
}

// Root edges and their seed gradients (ones for scalar roots without a given gradient).
void seed(const TensorList& roots, const TensorList& grads, std::vector<Edge>& edges, TensorList& seeds) {
  LEPTON_CHECK(grads.empty() || grads.size() == roots.size(), Value, "backward: got ", grads.size(),
               " gradients for ", roots.size(), " tensors");
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    Edge e = gradient_edge(r);
    LEPTON_CHECK(e.valid(), Runtime, "element ", i, " of tensors does not require grad and does not have a grad_fn");
    Tensor g = grads.empty() ? Tensor() : grads[i];
    if (!g.defined()) {
      LEPTON_CHECK(r.numel() == 1, Runtime, "grad can be implicitly created only for scalar outputs (got shape ",
                   shape_str(r.shape()), "); pass gradient=");
      g = ops::full(r.shape(), Scalar::from_int(1), r.dtype(), r.device());
    } else {
      LEPTON_CHECK(g.shape() == r.shape(), Value, "backward: gradient of shape ", shape_str(g.shape()),
                   " does not match the tensor's shape ", shape_str(r.shape()));
    }
    edges.push_back(e);
    seeds.push_back(g);
  }
}

}  // namespace

void backward(const TensorList& roots, const TensorList& grads, bool retain_graph, bool create_graph) {
  std::vector<Edge> edges;
  TensorList seeds;
  seed(roots, grads, edges, seeds);
  run(edges, seeds, retain_graph, create_graph, nullptr, nullptr);
}

TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                bool retain_graph, bool create_graph, bool allow_unused) {
  std::vector<Edge> edges;
  TensorList seeds;
  seed(outputs, grad_outputs, edges, seeds);
  std::vector<Capture> captures;
  for (size_t i = 0; i < inputs.size(); ++i) {
    LEPTON_CHECK(requires_grad(inputs[i]), Runtime, "grad: input ", i, " does not require grad");
    Edge e = gradient_edge(inputs[i]);
    captures.push_back({e.fn.get(), e.input_nr, i});
  }
  TensorList result(inputs.size());
  run(edges, seeds, retain_graph, create_graph, &captures, &result);
  for (size_t i = 0; i < inputs.size(); ++i)
    LEPTON_CHECK(result[i].defined() || allow_unused, Runtime, "grad: input ", i,
                 " was not used in the graph of the outputs; pass allow_unused=True to get None for it");
  return result;
}

}  // namespace lepton::autograd
