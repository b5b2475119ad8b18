// The autograd graph: a Node turns the gradients of its outputs into gradients of its inputs
// and knows, through its edges, where to send each of them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lepton/core/tensor.h"

namespace lepton::autograd {

class Node;

// Where a gradient goes: input `input_nr` of `fn` (fn is null for inputs that need none).
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

using TensorList = std::vector<Tensor>;

class Node : public std::enable_shared_from_this<Node> {
 public:
  Node();
  virtual ~Node();
  // grads[i] is the gradient of output i (undefined when no gradient reached it); returns one
  // gradient per next edge (undefined for inputs that get none).
  virtual TensorList apply(TensorList&& grads) = 0;
  virtual std::string name() const = 0;
  virtual uint32_t num_outputs() const { return 1; }
  // Drops saved tensors after a backward pass without retain_graph.
  virtual void release() {}

  std::vector<Edge> next_edges;
  const uint64_t sequence_nr;  // creation order: later nodes run first
};

// A tensor kept for backward, with the version of its storage at save time, so that an
// in-place change in between is reported instead of silently giving wrong gradients.
// An op's own output is kept as a plain alias (holding its node would be a reference cycle)
// and reconnected to the node when unpacked, so double backward still sees its history.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t, bool is_output, uint32_t output_nr = 0);
  Tensor unpack(const Node& owner) const;

 private:
  Tensor tensor_;
  uint64_t version_ = 0;
  bool is_output_ = false;
  uint32_t output_nr_ = 0;
};

}  // namespace lepton::autograd
