// Kernel contract for scaled dot-product attention over a batch of independent problems,
// forward and backward.
#pragma once
#include "lepton/ops/kernels.h"

namespace lepton {

enum class AttentionMask : uint8_t { None, Bool, Float };

// Problem n < batch reads q[n] [L, E], k[n] [S, E], v[n] [S, Ev] and mask[n] [L, S] starting at
// q + q_off[n] elements (likewise k, v, mask), rows q_rs (k_rs, v_rs, mask_rs) elements apart
// and the last dim contiguous. The offsets carry broadcast leading dims (repeated offsets) and
// any stride of those dims, so no input is copied; mask_rs == 0 shares one row between all
// queries. Score (i, j) = scale·q_i·k_j, plus mask (Float), -inf where mask is false (Bool) or
// j > i (causal, top-left aligned). A row with no allowed key gives 0 (and 0 gradients).
//
// Dropout (dropout_p > 0) keeps weight (n, i, j) when word w % 4 of philox(dropout_seed, w / 4),
// w = (n·S + j)·L + i, is >= dropout_p·2^32, and scales kept weights by 1/(1-dropout_p); the
// backward regenerates the same mask.
//
// forward writes out [batch, L, Ev] and lse [batch, L] (contiguous; float32 for 16-bit inputs,
// else q's dtype): lse is the base-2 logsumexp of each row's scores times log2(e), +inf for a
// row with no allowed key.
// backward reads out, lse and grad_out [batch, L, Ev] and writes grad_q [batch, L, E], grad_k
// [batch, S, E], grad_v [batch, S, Ev] and, when set, grad_mask [batch, L, S] (all contiguous).
struct AttentionArgs {
  int64_t batch = 0, L = 0, S = 0, E = 0, Ev = 0;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* mask = nullptr;  // bool or the dtype of q
  const int64_t* q_off = nullptr;
  const int64_t* k_off = nullptr;
  const int64_t* v_off = nullptr;
  const int64_t* mask_off = nullptr;
  int64_t q_rs = 0, k_rs = 0, v_rs = 0, mask_rs = 0;
  AttentionMask mask_kind = AttentionMask::None;
  bool causal = false;
  double scale = 1, dropout_p = 0;
  uint64_t dropout_seed = 0;
  void* out = nullptr;
  void* lse = nullptr;
  const void* grad_out = nullptr;
  void* grad_q = nullptr;
  void* grad_k = nullptr;
  void* grad_v = nullptr;
  void* grad_mask = nullptr;
};

using AttentionFn = void (*)(const AttentionArgs&);
struct AttentionFns {
  AttentionFn forward, backward;
};
struct AttentionKernels {
  AttentionFns fast;       // flash-style tiles with online softmax; no L×S matrix in memory
  AttentionFns reference;  // materialised softmax with plain loops, the oracle for tests
};

extern KernelTable<const AttentionKernels*> attention_kernels;

}  // namespace lepton
