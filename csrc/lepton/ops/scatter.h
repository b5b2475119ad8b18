// The gather/scatter family (scatter.cpp), torch semantics along one dim: out-of-place ops
// with their backward; the in-place Tensor methods are these plus a copy into self.
#pragma once
#include "lepton/core/tensor.h"

namespace lepton::ops {

Tensor gather(const Tensor& input, int64_t dim, const Tensor& index);
// self with src's elements written (or added) at index along dim; src may be larger than index.
Tensor scatter(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace lepton::ops
