// The node at a leaf: adds the incoming gradient into leaf.grad and runs the leaf's hooks.
#pragma once
#include "lepton/autograd/node.h"

namespace lepton::autograd {

class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(const Tensor& leaf) : leaf_(leaf) {}
  TensorList apply(TensorList&& grads) override;
  std::string name() const override { return "AccumulateGrad"; }

 private:
  Tensor leaf_;
};

}  // namespace lepton::autograd
