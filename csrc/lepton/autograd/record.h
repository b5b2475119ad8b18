// How ops join the graph: when grad mode is on and an input requires grad, an op records a
// node whose backward is a lambda over saved tensors.
#pragma once
#include <functional>
#include <initializer_list>
#include <string>

#include "lepton/autograd/meta.h"

namespace lepton::autograd {

// Backward of one op: gradients of its outputs in, gradients of its inputs out.
using BackwardFn = std::function<TensorList(const Node& self, TensorList& grads)>;

class FunctionNode : public Node {
 public:
  FunctionNode(std::string name, uint32_t num_outputs, BackwardFn fn)
      : name_(std::move(name)), num_outputs_(num_outputs), fn_(std::move(fn)) {}
  TensorList apply(TensorList&& grads) override;
  std::string name() const override { return name_; }
  uint32_t num_outputs() const override { return num_outputs_; }
  void release() override { fn_ = nullptr; }  // frees the saved tensors the lambda holds

 private:
  std::string name_;
  uint32_t num_outputs_;
  BackwardFn fn_;
};

// True when an op on these inputs must record: grad mode is on and one of them requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const TensorList& inputs);

// Records `fn` as the grad_fn of `outputs`, with edges to the inputs' histories.
void record(const char* name, std::initializer_list<const Tensor*> inputs, std::initializer_list<const Tensor*> outputs,
            BackwardFn fn);
void record(const char* name, const TensorList& inputs, const TensorList& outputs, BackwardFn fn);

// Outputs that are views of an input requiring grad (in-place changes to them are refused).
void mark_view(const Tensor& view, const Tensor& base);

// Raises for in-place changes autograd cannot follow: leaves that require grad (outside
// no_grad) and views of tensors that require grad.
void check_inplace(const Tensor& t, const char* op);
// After an in-place op computed as `result` (recorded out of place): `t` takes over its history.
void take_history(const Tensor& t, const Tensor& result);
// After an in-place overwrite by values that need no gradient: `t` leaves the graph.
void drop_history(const Tensor& t);

}  // namespace lepton::autograd
