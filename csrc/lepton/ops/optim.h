// The optimizer ops (optim.cpp): one fused in-place step over whole lists of tensors, and the
// global norm and scaling of a list (gradient clipping).
#pragma once
#include <vector>

#include "lepton/core/tensor.h"
#include "lepton/ops/optim_kernels.h"

namespace lepton::ops {

// momentum_buffers: one per param, or empty when momentum == 0. masters: one float32 master
// weight per 16-bit param (then the buffers are float32 too), or empty. `reference` picks the
// serial reference kernel (tests).
void fused_sgd_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& momentum_buffers, const std::vector<Tensor>& masters,
                const SgdHyper& options, bool reference = false);
// steps: each param's step count including this step; max_exp_avg_sqs empty unless amsgrad.
void fused_adam_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& exp_avgs,
                 const std::vector<Tensor>& exp_avg_sqs, const std::vector<Tensor>& max_exp_avg_sqs,
                 const std::vector<Tensor>& masters, const std::vector<int64_t>& steps, const AdamHyper& options,
                 bool reference = false);
// The norm of all the tensors' elements taken together (the p-norm; max |x| for p = inf).
double norm_of_list(const std::vector<Tensor>& tensors, double norm_type, bool reference = false);
void scale_list_(const std::vector<Tensor>& tensors, double scale, bool reference = false);

}  // namespace lepton::ops
