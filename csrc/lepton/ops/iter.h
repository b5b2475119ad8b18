// Building kernel arguments from tensors: strided iterators and device checks.
#pragma once
#include <initializer_list>

#include "lepton/core/tensor.h"
#include "lepton/ops/kernels.h"

namespace lepton::ops {

// Operand 0 is `out`; every input must broadcast to out's shape (stride 0 where broadcast).
StridedIter make_iter(const Tensor& out, std::initializer_list<const Tensor*> inputs);

// Raises unless every tensor lives on the same device as the first; names `op`.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);

// Makes `device` current for the kernels about to run (a no-op on the CPU).
void use_device(Device device);

}  // namespace lepton::ops
