#include "lepton/ops/iter.h"

#include "lepton/core/cuda_backend.h"
#include "lepton/core/error.h"

namespace lepton::ops {

StridedIter make_iter(const Tensor& out, std::initializer_list<const Tensor*> inputs) {
  StridedIter it;
  const Shape& shape = out.shape();
  const int64_t nd = out.dim();
  it.ntensors = 1 + int(inputs.size());
  it.numel = out.numel();
  // Per-operand byte strides over out's dims, 0 where an input is broadcast.
  std::vector<const Tensor*> ops{&out};
  ops.insert(ops.end(), inputs.begin(), inputs.end());
  std::vector<std::vector<int64_t>> st(ops.size(), std::vector<int64_t>(nd, 0));
  for (size_t k = 0; k < ops.size(); ++k) {
    const Tensor& t = *ops[k];
    const int64_t lead = nd - t.dim();
    LEPTON_CHECK(lead >= 0, Value, "internal: operand of shape ", shape_str(t.shape()),
                 " does not broadcast to ", shape_str(shape));
    for (int64_t d = 0; d < t.dim(); ++d) {
      int64_t size = t.shape()[d];
      LEPTON_CHECK(size == shape[lead + d] || size == 1, Value, "internal: operand of shape ",
                   shape_str(t.shape()), " does not broadcast to ", shape_str(shape));
      st[k][lead + d] = size == 1 ? 0 : t.strides()[d] * int64_t(t.itemsize());
    }
    it.data[k] = static_cast<char*>(t.data_ptr());
  }
  // Keep dims of size > 1, merging each into the next inner one where all operands allow it.
  int n = 0;
  for (int64_t d = 0; d < nd; ++d) {
    if (shape[d] == 1) continue;
    bool merge = n > 0;
    for (size_t k = 0; merge && k < ops.size(); ++k)
      merge = it.strides[k][n - 1] == st[k][d] * shape[d];
    if (merge) {
      it.shape[n - 1] *= shape[d];
      for (size_t k = 0; k < ops.size(); ++k) it.strides[k][n - 1] = st[k][d];
    } else {
      LEPTON_CHECK(n < kMaxDims, NotImplemented, "tensors with more than ", kMaxDims,
                   " non-mergeable dimensions are not supported (shape ", shape_str(shape), ")");
      it.shape[n] = shape[d];
      for (size_t k = 0; k < ops.size(); ++k) it.strides[k][n] = st[k][d];
      ++n;
    }
  }
  if (n == 0) {  // a single element
    it.shape[0] = 1;
    for (size_t k = 0; k < ops.size(); ++k) it.strides[k][0] = 0;
    n = 1;
  }
  it.ndim = n;
  return it;
}

void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Device first = (*tensors.begin())->device();
  for (const Tensor* t : tensors)
    LEPTON_CHECK(t->device() == first, Value, op, ": expected all tensors on the same device, got ",
                 first.str(), " and ", t->device().str());
}

void use_device(Device device) {
  if (device.is_cuda()) require_cuda(device.index).set_device(device.index);
}

}  // namespace lepton::ops
