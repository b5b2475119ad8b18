// The sort family (sort.cpp): sort/argsort/topk along one dim and the running sum, torch
// semantics. Values are gathered by the sorting indices, so their gradient is gather's.
#pragma once
#include <utility>

#include "lepton/core/tensor.h"

namespace lepton::ops {

// (values, int64 indices); stable, so equal elements keep their order (torch's stable=True).
std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending);
// The k largest (or smallest) along dim, in sorted order.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest);
// Running sum along dim; integer and bool inputs give int64 (torch's promotion).
Tensor cumsum(const Tensor& x, int64_t dim);

}  // namespace lepton::ops
