// The normalisation family's ops, with torch's semantics: layer_norm and batch_norm (norm.cpp),
// embedding (embedding.cpp), dropout (dropout.cpp) and the pointwise losses
// (pointwise_loss.cpp). Each runs a fused kernel forward and records a hand-written backward.
#pragma once
#include <optional>

#include "lepton/autograd/node.h"
#include "lepton/ops/norm_kernels.h"
#include "lepton/ops/ops.h"

namespace lepton::ops {

// Normalises over the trailing `normalized_shape` dims of x; weight and bias have that shape.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const std::optional<Tensor>& weight,
                  const std::optional<Tensor>& bias, double eps);

// x is [N, C, ...]. training: normalises with the batch statistics and, when given, moves the
// running statistics towards them in place (momentum; unbiased variance). Otherwise normalises
// with running_mean/running_var, which are then required.
Tensor batch_norm(const Tensor& x, const std::optional<Tensor>& running_mean, const std::optional<Tensor>& running_var,
                  const std::optional<Tensor>& weight, const std::optional<Tensor>& bias, bool training,
                  double momentum, double eps);

// weight [num_embeddings, dim] rows at integer `indices` -> indices.shape + [dim]. Raises
// IndexError for an index outside [0, num_embeddings). padding_idx (negative counts from the
// end) gets no gradient.
Tensor embedding(const Tensor& weight, const Tensor& indices, std::optional<int64_t> padding_idx,
                 bool scale_grad_by_freq);
// Scales the rows of weight looked up by `indices` whose norm exceeds max_norm, in place.
void embedding_renorm_(const Tensor& weight, const Tensor& indices, double max_norm, double norm_type);

// Training-mode dropout: zeroes each element with probability p, scales the rest by 1/(1-p).
// The mask is drawn from the global generator and made again (not stored) for the backward.
Tensor dropout(const Tensor& x, double p, bool inplace);

enum class Reduction : uint8_t { None, Mean, Sum };
// input and target of one shape and dtype; weight broadcasts to it; pos_weight
// (BCEWithLogits) broadcasts along the trailing dims. Differentiable in input, and in target
// for MSE and L1; weight and pos_weight are constants here.
Tensor pointwise_loss(PointwiseLoss op, const Tensor& input, const Tensor& target, const std::optional<Tensor>& weight,
                      const std::optional<Tensor>& pos_weight, Reduction reduction);

// Test and benchmark hook: run the serial reference kernels instead of the fast ones.
void set_norm_reference(bool on);

// Inside the family: the kernels for t's device and dtype (the reference ones when set).
const NormKernels* norm_kernel(const Tensor& t, const char* op);
// A tensor's data for a kernel argument (null when undefined, for optional operands).
inline const char* in_ptr(const Tensor& t) { return t.defined() ? static_cast<const char*>(t.data_ptr()) : nullptr; }
inline char* out_ptr(const Tensor& t) { return t.defined() ? static_cast<char*>(t.data_ptr()) : nullptr; }
// An input (possibly an absent optional one) kept for the backward.
inline autograd::SavedTensor saved_input(const Tensor& t) {
  return t.defined() ? autograd::SavedTensor(t, false) : autograd::SavedTensor();
}
// Element i of t (flattened), read back from any device, for error messages.
double element_at(const Tensor& t, int64_t i);
// The fused backward kernels are not differentiable themselves.
void check_no_double_backward(const char* op);

}  // namespace lepton::ops
