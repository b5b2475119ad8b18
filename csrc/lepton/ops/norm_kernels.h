// Kernel contract for the normalisation family and the layers that sit beside it in a network:
// layer_norm, batch_norm, embedding, dropout and the pointwise losses, forward and backward.
// Buffers are contiguous, of the table's dtype (float32 or float64) unless stated otherwise;
// optional pointers may be null.
#pragma once
#include "lepton/ops/kernels.h"

namespace lepton {

// Layer norm of each row of a [rows, cols] block: y = (x - mean)·rstd·weight + bias with
// rstd = 1/√(var + eps), var the biased variance. Forward writes y, mean [rows] and rstd [rows].
// Backward reads x, weight, mean, rstd and grad_y and writes whichever of grad_x, grad_weight
// [cols] and grad_bias [cols] is set.
struct LayerNormArgs {
  const char* x = nullptr;
  const char* weight = nullptr;  // null: 1
  const char* bias = nullptr;    // null: 0
  char* y = nullptr;
  char* mean = nullptr;
  char* rstd = nullptr;
  const char* grad_y = nullptr;
  char* grad_x = nullptr;
  char* grad_weight = nullptr;
  char* grad_bias = nullptr;
  int64_t rows = 0, cols = 0;
  double eps = 1e-5;
};

// Batch norm of an [n, c, l] block, per channel over its n·l values.
// Forward, training: writes the batch mean and rstd [c], then y; when running_mean/running_var
// are set they move towards the batch statistics: r = (1 - momentum)·r + momentum·s, with the
// unbiased variance. Forward, eval: mean = running_mean, rstd = 1/√(running_var + eps), written
// to mean/rstd, then y. Backward reads x, weight, mean, rstd, grad_y; with `training` the
// statistics' own dependence on x is part of grad_x.
struct BatchNormArgs {
  const char* x = nullptr;
  const char* weight = nullptr;  // null: 1
  const char* bias = nullptr;    // null: 0
  char* running_mean = nullptr;
  char* running_var = nullptr;
  char* mean = nullptr;
  char* rstd = nullptr;
  char* y = nullptr;
  const char* grad_y = nullptr;
  char* grad_x = nullptr;
  char* grad_weight = nullptr;
  char* grad_bias = nullptr;
  int64_t n = 0, c = 0, l = 0;
  double eps = 1e-5, momentum = 0.1;
  bool training = true;
};

// Embedding rows: out [count, dim] = weight [num_embeddings, dim] rows at int64 `indices`.
// Backward: grad_weight = Σ over positions of grad_out rows scattered to their index (zeros
// elsewhere), skipping padding_idx, each divided by its index's frequency with
// scale_grad_by_freq. Renorm (max_norm): rows that are looked up and whose norm_type-norm
// exceeds max_norm are scaled in place to max_norm / (norm + 1e-7), as torch does.
struct EmbeddingArgs {
  char* weight = nullptr;  // written only by renorm
  const int64_t* indices = nullptr;
  char* out = nullptr;
  const char* grad_out = nullptr;
  char* grad_weight = nullptr;
  int64_t count = 0, num_embeddings = 0, dim = 0;
  int64_t padding_idx = -1;  // -1: none
  bool scale_grad_by_freq = false;
  double max_norm = 0, norm_type = 2;
};

// out = x·keep/(1 - p) elementwise (0·x where dropped: NaN and ±inf stay NaN, as in torch). The
// mask comes from Philox words: element i uses word (i % 64) / 16 of counter
// offset + (i / 64)·16 + i % 16 and is kept when that word is >= p·2³², so a run of n elements
// takes dropout_counters(n) counters. Backward is the same kernel on the gradient.
struct DropoutArgs {
  const char* x = nullptr;
  char* out = nullptr;
  int64_t n = 0;
  uint64_t seed = 0, offset = 0;
  double p = 0.5;
};
constexpr uint64_t dropout_counters(int64_t n) { return uint64_t((n + 63) / 64) * 16; }

// Pointwise losses of input against target (n elements each), times weight when set:
//   MSE (x - y)², L1 |x - y|, BCE -(y·log x + (1 - y)·log(1 - x)) with each log clamped at -100,
//   BCEWithLogits (1 - y)·x - (1 + (pw - 1)·y)·log σ(x) with pw = pos_weight[i % pos_weight_period].
// Forward writes n losses, or with `reduce` their sum times `scale` to loss[0] (accumulated in
// double); BCE returns the first position whose input is outside [0, 1], or -1. Backward
// writes grad_input = grad_loss[i·grad_stride]·scale·∂loss/∂x (grad_stride 0: one value for all)
// and, for MSE and L1, grad_target = -grad_input when set.
enum class PointwiseLoss : uint8_t { MSE, L1, BCE, BCEWithLogits };
struct PointwiseLossArgs {
  const char* input = nullptr;
  const char* target = nullptr;
  const char* weight = nullptr;
  const char* pos_weight = nullptr;
  int64_t pos_weight_period = 1;
  int64_t n = 0;
  char* loss = nullptr;
  bool reduce = false;
  double scale = 1;
  const char* grad_loss = nullptr;
  int64_t grad_stride = 0;
  char* grad_input = nullptr;
  char* grad_target = nullptr;
};

struct NormKernels {
  void (*layer_norm_forward)(const LayerNormArgs&);
  void (*layer_norm_backward)(const LayerNormArgs&);
  void (*batch_norm_forward)(const BatchNormArgs&);
  void (*batch_norm_backward)(const BatchNormArgs&);
  // Both return the position of an index outside [0, num_embeddings), or -1 (nothing written).
  int64_t (*embedding_forward)(const EmbeddingArgs&);
  int64_t (*embedding_renorm)(const EmbeddingArgs&);
  void (*embedding_backward)(const EmbeddingArgs&);
  void (*dropout)(const DropoutArgs&);
  int64_t (*loss_forward)(PointwiseLoss op, const PointwiseLossArgs&);
  void (*loss_backward)(PointwiseLoss op, const PointwiseLossArgs&);
  // The same contract in simple serial loops, kept beside each fast kernel for the tests.
  const NormKernels* reference = nullptr;
};

extern KernelTable<const NormKernels*> norm_kernels;

}  // namespace lepton
