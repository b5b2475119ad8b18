// Kernel contract for the fused multi-tensor optimizer steps, the global norm of a tensor list
// and its in-place scaling. A list holds `count` contiguous tensors of the table's dtype:
// tensor t has numel[t] elements and one pointer in each array (arrays an option does not use
// are null). Every tensor of the list is updated in one pass over its memory, following
// torch's single-tensor formulas op for op (scalars are rounded to the arithmetic type as
// torch does).
#pragma once
#include "lepton/ops/kernels.h"

namespace lepton {

struct ListSizes {
  int64_t count = 0;
  const int64_t* numel = nullptr;
};

// The options of one step, as the ops receive them.
struct SgdHyper {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false;
  bool first_step = false;  // the buffers are new: buf = grad, without dampening
};

struct AdamHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool amsgrad = false, maximize = false;
  bool decoupled_weight_decay = false;  // AdamW: p *= 1 - lr * wd; Adam: g += wd * p
};

// Master weights: when `master` is set, params and grads are 16-bit (the table's dtype) while
// the masters and every state buffer are float32. The step then reads and updates the master
// and writes it, rounded to nearest even, to the param in the same pass.
struct SgdArgs {
  ListSizes list;
  void* const* param = nullptr;
  const void* const* grad = nullptr;
  void* const* momentum_buffer = nullptr;  // null when momentum == 0
  void* const* master = nullptr;
  SgdHyper h;
};

struct AdamArgs {
  ListSizes list;
  void* const* param = nullptr;
  const void* const* grad = nullptr;
  void* const* exp_avg = nullptr;
  void* const* exp_avg_sq = nullptr;
  void* const* max_exp_avg_sq = nullptr;          // null unless amsgrad
  void* const* master = nullptr;
  const double* step_size = nullptr;              // per tensor: lr / (1 - beta1^step)
  const double* bias_correction2_sqrt = nullptr;  // per tensor: sqrt(1 - beta2^step)
  AdamHyper h;
};

// sum |x|^p over every element of the list (max |x| for p = inf), accumulated in double.
struct NormArgs {
  ListSizes list;
  const void* const* data = nullptr;
  double p = 2;
};

struct ScaleArgs {  // x *= scale for every tensor of the list
  ListSizes list;
  void* const* data = nullptr;
  double scale = 1;
};

struct OptimizerKernels {
  void (*sgd)(const SgdArgs&);
  void (*adam)(const AdamArgs&);
  double (*norm)(const NormArgs&);
  void (*scale)(const ScaleArgs&);
};

extern KernelTable<const OptimizerKernels*> optimizer_kernels;
extern KernelTable<const OptimizerKernels*> optimizer_reference_kernels;  // scalar loops, for tests

}  // namespace lepton
