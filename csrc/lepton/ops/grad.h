// Backward formulas shared inside ops/: each records the node for one op family.
#pragma once
#include "lepton/autograd/record.h"
#include "lepton/ops/ops.h"

namespace lepton::ops {

// The gradient of a broadcast operand: sum `g` down to `shape`.
Tensor sum_to(const Tensor& g, const Shape& shape);

void record_unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1);
// a and b are the operands as computed (same dtype, before broadcasting).
void record_binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void record_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);

}  // namespace lepton::ops
