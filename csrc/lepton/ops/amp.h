// Gradient scaling for mixed precision (amp.cpp), torch's private ops behind GradScaler.
#pragma once
#include <vector>

#include "lepton/core/tensor.h"

namespace lepton::ops {

// tensors *= inv_scale in place, one fused pass per dtype; found_inf (a one-element float32 tensor) becomes 1
// when any element of any tensor is inf or NaN. All on found_inf's device; inv_scale one-element float32.
void amp_foreach_non_finite_check_and_unscale_(const std::vector<Tensor>& tensors, const Tensor& found_inf,
                                               const Tensor& inv_scale);

// scale (float32) and growth_tracker (int32), one element each, updated in place from found_inf.
void amp_update_scale_(const Tensor& scale, const Tensor& growth_tracker, const Tensor& found_inf,
                       double growth_factor, double backoff_factor, int64_t growth_interval);

}  // namespace lepton::ops
