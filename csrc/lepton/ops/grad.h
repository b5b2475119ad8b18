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

// Matrix products (matmul_grad.cpp): inputs as the user passed them.
void record_matmul(const Tensor& a, const Tensor& b, const Tensor& out, const char* name);
void record_linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias, bool relu,
                   const Tensor& out);
void record_addmm(const Tensor& input, const Tensor& a, const Tensor& b, double beta, double alpha, const Tensor& out);

}  // namespace lepton::ops
