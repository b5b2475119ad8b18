// The contract between ops/ and the kernels in cpu/ and cuda/: argument structs, op codes and
// the kernel tables. Nothing here depends on pybind11 or on the CUDA headers.
#pragma once
#include <cstdint>

#include "lepton/core/dispatch.h"
#include "lepton/core/scalar.h"

namespace lepton {

constexpr int kMaxDims = 16;
constexpr int kMaxOperands = 4;

// Operands walked together in row-major order over `shape` (operand 0 is the output).
// Broadcast dimensions have stride 0; size-1 dimensions are dropped and contiguous runs merged.
struct StridedIter {
  int ndim = 0;
  int ntensors = 0;
  int64_t numel = 0;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxOperands][kMaxDims];  // in bytes
  char* data[kMaxOperands];
};

enum class UnaryOp : uint8_t {
  Neg, Abs, Square, Sign, Relu,  // valid for every numeric dtype
  Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Gelu, GeluTanh, Silu, Sin, Cos, Floor, Ceil, Round,
  Reciprocal, Erf, Log1p, Expm1, Log2,  // floating point only
  Clamp,  // p0 = min (or -inf), p1 = max (or +inf)
};
enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Maximum, Minimum, Pow, FloorDivide, Remainder,
  LogicalAnd, LogicalOr, LogicalXor,
};
enum class CompareOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge };
enum class ReduceOp : uint8_t { Sum, Prod, Max, Min, All, Any };

// Reduction over the middle axis of a contiguous [outer, reduce, inner] block.
// Sum/Prod of integers write int64; All/Any write bool; the rest write the input dtype.
// With `index` set, Max/Min also write the position (int64) of the first extreme.
struct ReduceArgs {
  const char* in;
  char* out;
  int64_t* index = nullptr;
  int64_t outer, reduce, inner;
};

enum class RandomDist : uint8_t { Uniform, Normal, Integer };
// Fills `n` contiguous elements from the counter-based generator: element i draws from Philox
// counter (offset + i); Uniform in [a, b), Normal(mean a, std b), Integer in [a, b).
struct RandomArgs {
  char* out;
  int64_t n;
  uint64_t seed, offset;
  double a, b;
  RandomDist dist;
};

// Row gather/scatter for advanced indexing: row r starts at base + offsets[r] elements and
// spans a strided block of `row_shape`/`row_strides` (elements); rows are packed in `dense`.
struct RowsArgs {
  char* base;
  char* dense;
  const int64_t* offsets;
  int64_t nrows;
  int ndim;
  int64_t row_shape[kMaxDims];
  int64_t row_strides[kMaxDims];
  int64_t row_numel;
};

enum class Activation : uint8_t { None, Relu, Gelu };  // Gelu: the exact (erf) form

// Batched GEMM with a fused epilogue, for every batch index b < batch:
//   C_b = act(alpha * A_b · B_b + beta * C_b + bias)
// A_b is M×K with element (i, k) at a + b*a_bs + i*a_rs + k*a_cs; B_b is K×N with (k, j) at
// b + b*b_bs + k*b_rs + j*b_cs; C_b is M×N with (i, j) at c + b*c_bs + i*c_rs + j (unit column
// stride). All strides count elements of the dtype; op(A) = Aᵀ is the same matrix with a_rs and
// a_cs swapped, so every transpose combination reaches the kernel without a copy. A batch
// stride of 0 broadcasts that operand (never C's: C_b must not overlap). beta == 0 makes C
// write-only (NaNs already in it don't propagate). bias, when set, holds N contiguous values
// added to every row (the Linear layer's bias) before the activation. K == 0 gives
// act(beta * C + bias). Pointers are host or device memory, matching the table's device.
struct GemmArgs {
  const void* a = nullptr;
  const void* b = nullptr;
  void* c = nullptr;
  const void* bias = nullptr;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  int64_t a_rs = 0, a_cs = 0, b_rs = 0, b_cs = 0, c_rs = 0;
  int64_t a_bs = 0, b_bs = 0, c_bs = 0;
  double alpha = 1, beta = 0;
  Activation act = Activation::None;
};

// Softmax along the rows of a contiguous [rows, cols] block. Forward: out = f(x). Backward:
// x is the forward's output y, grad is dL/dy and out receives dL/dx.
enum class SoftmaxOp : uint8_t { Softmax, LogSoftmax };
struct SoftmaxArgs {
  const char* x = nullptr;
  const char* grad = nullptr;  // backward only
  char* out = nullptr;
  int64_t rows = 0, cols = 0;
};

// Cross-entropy of each row of logits [rows, cols] against an int64 class index per row, with
// label smoothing ε: loss = lse - (1-ε)·x[t] - ε/C·Σx (0 where t == ignore_index). Forward
// writes loss and lse (the row's logsumexp); backward reads lse and grad_loss and writes
// grad = (softmax - smoothed one-hot)·grad_loss (0 on ignored rows).
struct CrossEntropyArgs {
  const char* logits = nullptr;
  const int64_t* target = nullptr;
  char* loss = nullptr;
  char* lse = nullptr;
  const char* grad_loss = nullptr;
  char* grad = nullptr;
  int64_t rows = 0, cols = 0, ignore_index = -100;
  double label_smoothing = 0;
};

struct SoftmaxKernels {
  void (*forward)(SoftmaxOp op, const SoftmaxArgs& args);
  void (*backward)(SoftmaxOp op, const SoftmaxArgs& args);
  // Returns a row whose (non-ignored) target is outside [0, cols), or -1 when all are valid.
  int64_t (*cross_entropy)(const CrossEntropyArgs& args);
  void (*cross_entropy_backward)(const CrossEntropyArgs& args);
};

using UnaryFn = void (*)(UnaryOp op, const StridedIter& it, double p0, double p1);
using BinaryFn = void (*)(BinaryOp op, const StridedIter& it);
using CompareFn = void (*)(CompareOp op, const StridedIter& it);  // output bool
using WhereFn = void (*)(const StridedIter& it);                  // out, cond (bool), a, b
using CopyFn = void (*)(const StridedIter& it, DType src);        // keyed by destination dtype
using FillFn = void (*)(const StridedIter& it, Scalar value);
using ReduceFn = void (*)(ReduceOp op, const ReduceArgs& args);   // keyed by input dtype
using RandomFn = void (*)(const RandomArgs& args);
using RowsFn = void (*)(const RowsArgs& args, size_t itemsize, bool scatter);
using GemmFn = void (*)(const GemmArgs& args);                    // keyed by dtype (all operands)

extern KernelTable<UnaryFn> unary_kernels;
extern KernelTable<BinaryFn> binary_kernels;
extern KernelTable<CompareFn> compare_kernels;
extern KernelTable<WhereFn> where_kernels;
extern KernelTable<CopyFn> copy_kernels;
extern KernelTable<FillFn> fill_kernels;
extern KernelTable<ReduceFn> reduce_kernels;
extern KernelTable<RandomFn> random_kernels;
extern KernelTable<RowsFn> rows_kernels;
extern KernelTable<GemmFn> gemm_kernels;
extern KernelTable<const SoftmaxKernels*> softmax_kernels;

}  // namespace lepton
