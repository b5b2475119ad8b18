// Kernel contract for the int8 GEMM family (dynamic quantisation for inference): symmetric
// per-row quantisation, weight packing, and u8 × s8 -> s32 GEMM with a float epilogue.
//
// Activations go in as unsigned bytes q + 128 (what AVX-512 VNNI's vpdpbusd multiplies); the
// offset is removed exactly with the weights' column sums: Σ (q_a + 128)·q_w = Σ q_a·q_w +
// 128·colsum. Weights are packed in blocks of 16 output channels × 4 consecutive k, one 64-byte
// vector per (block, k/4): packed[((j/16)·kq + k/4)·64 + (j%16)·4 + k%4], kq = ⌈k/4⌉, with zeros
// past n and k.
#pragma once
#include "lepton/ops/kernels.h"

namespace lepton {

constexpr int64_t kInt8Block = 16;  // output channels per packed block
inline int64_t int8_k_padded(int64_t k) { return (k + 3) / 4 * 4; }
inline int64_t int8_packed_size(int64_t n, int64_t k) { return (n + kInt8Block - 1) / kInt8Block * int8_k_padded(k) * kInt8Block; }

// Quantises each row of float x [m, k]: scale[i] = max|x_i| / 127 and q = round-half-even(x·127/max),
// in [-127, 127] (0 for an all-zero row); writes q + offset as bytes into out [m, ld]
// (ld ≥ k; columns k..ld-1 get `offset`, i.e. a zero).
struct QuantizeRowsArgs {
  const float* x = nullptr;
  int64_t m = 0, k = 0, ld = 0;
  int offset = 0;  // 128 for the u8 activations, 0 for s8 weights
  uint8_t* out = nullptr;
  float* scale = nullptr;
};

// C = (a - 128) · unpack(b)ᵀ over k. With c_int set it stores those exact int32 sums [m, n];
// otherwise c [m, n] = a_scale[i]·b_scale[j]·sum + bias[j] (bias may be null), then max(·, 0)
// when relu.
struct Int8GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const uint8_t* a = nullptr;     // [m, int8_k_padded(k)]
  const int8_t* b = nullptr;      // packed, int8_packed_size(n, k)
  const int32_t* colsum = nullptr;  // [n], Σ_k of the int8 weights
  int32_t* c_int = nullptr;
  float* c = nullptr;
  const float* a_scale = nullptr;  // [m]
  const float* b_scale = nullptr;  // [n]
  const float* bias = nullptr;     // [n] or null
  bool relu = false;
};

struct Int8GemmKernels {
  void (*quantize_rows)(const QuantizeRowsArgs&);
  void (*pack)(const int8_t* w, int64_t n, int64_t k, int8_t* packed, int32_t* colsum);  // w [n, k]
  void (*gemm)(const Int8GemmArgs&);            // blocked (VNNI where the CPU has it)
  void (*gemm_reference)(const Int8GemmArgs&);  // naive loop over the packed layout, for tests
  const char* gemm_name;                         // "avx512-vnni", "portable"
};

// Indexed by the weight dtype (int8).
extern KernelTable<const Int8GemmKernels*> int8_gemm_kernels;

}  // namespace lepton
