// Per-tensor autograd state and the thread-local grad mode.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "lepton/autograd/node.h"

namespace lepton::autograd {

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;        // null for leaves
  uint32_t output_nr = 0;               // which output of grad_fn this tensor is
  std::weak_ptr<Node> grad_accumulator; // leaves: the AccumulateGrad node, while the graph lives
  bool is_view = false;                 // a view of a tensor that required grad
  bool view_of_leaf = false;            // views: the base (through any chain of views) is a leaf
  uint64_t view_version = 0;            // views: the storage's version when the view was taken
  // (id, hook) pairs run after each accumulation into .grad; ids let a handle remove its hook
  std::vector<std::pair<int64_t, std::function<void(const Tensor&)>>> post_accumulate_hooks;
};

AutogradMeta* meta(const Tensor& t);        // null when the tensor never took part in autograd
AutogradMeta& ensure_meta(const Tensor& t);

bool requires_grad(const Tensor& t);
void set_requires_grad(const Tensor& t, bool value);  // leaves only
bool is_leaf(const Tensor& t);
std::shared_ptr<Node> grad_fn(const Tensor& t);
Tensor grad(const Tensor& t);
void set_grad(const Tensor& t, const Tensor& g);
// The edge a gradient for `t` flows into (its grad_fn, or the leaf's accumulator).
Edge gradient_edge(const Tensor& t);

bool grad_enabled();
void set_grad_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }

 private:
  bool prev_;
};

}  // namespace lepton::autograd
