// Scaled dot-product attention (attention.cpp), with torch.nn.functional's semantics.
#pragma once
#include <optional>

#include "lepton/core/tensor.h"

namespace lepton::ops {

// softmax(q·kᵀ·scale + mask)·v over q [..., L, E], k [..., S, E], v [..., S, Ev] whose leading
// dims broadcast; E, Ev <= 256. attn_mask is bool (true = may attend) or of q's dtype (added),
// broadcastable to [..., L, S]; is_causal (not with a mask) lets query i see keys j <= i. A query
// that may attend to no key gets 0 and passes no gradient (as torch does). dropout_p > 0 drops
// weights with a Philox mask that the backward regenerates instead of storing. scale defaults
// to 1/sqrt(E). reference picks the plain-loop kernels (for tests). float32 and float64.
Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const std::optional<Tensor>& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale, bool reference = false);

}  // namespace lepton::ops
