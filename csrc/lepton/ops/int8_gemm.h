// Int8 dynamic quantisation ops (int8_gemm.cpp) for inference, on CPU and CUDA; not differentiable.
#pragma once
#include <optional>
#include <utility>

#include "lepton/ops/ops.h"

namespace lepton::ops {

// Symmetric quantisation of each row of a float32 [rows, cols] matrix:
// (q int8 [rows, cols] = round(x·127/max|row|), scale float32 [rows] = max|row| / 127).
std::pair<Tensor, Tensor> quantize_rows_int8(const Tensor& x);

// Int8 weights [n, k] in the GEMM's blocked layout (ops/int8_kernels.h) with their column sums.
struct PackedInt8Weight {
  Tensor packed;  // int8 [int8_packed_size(n, k)]
  Tensor colsum;  // int32 [n]
  int64_t n = 0, k = 0;
};
PackedInt8Weight int8_pack_weight(const Tensor& q);

// Exact int32 product a·wᵀ of int8 a [m, k] and packed int8 weights [n, k].
Tensor int8_mm(const Tensor& a, const PackedInt8Weight& w, bool reference);

// y [..., n] = dequant(quant(x) · wᵀ)·scales + bias, relu optional: x float32 [..., k] is
// quantised per row on the fly; w_scale float32 [n] are the per-output-channel weight scales.
Tensor int8_linear(const Tensor& x, const PackedInt8Weight& w, const Tensor& w_scale, const std::optional<Tensor>& bias,
                   bool relu, bool reference);

// Which GEMM kernel int8_linear runs on the CPU: "avx512-vnni" or "portable".
const char* int8_gemm_kernel_name();

}  // namespace lepton::ops
