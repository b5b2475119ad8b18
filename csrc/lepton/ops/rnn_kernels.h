// Kernel contract for the fused recurrent cells (ops/rnn_cell.cpp): the elementwise part of one
// LSTM or GRU time step, after the step's GEMM, forward and backward. Each element of a
// [batch, hidden] block is independent, so kernels may split the block any way they like.
// Gate blocks are row-strided (`*_ld` elements between rows, unit stride inside a row) so a
// step can read the GEMM's output or a time slice of the precomputed input projection in
// place; every other buffer is contiguous. Buffers are of the table's dtype.
#pragma once
#include "lepton/ops/kernels.h"

namespace lepton {

// LSTM, gates in torch's order i, f, g, o, each `hidden` columns of a [batch, 4·hidden] row:
//   c' = σ(f)·c + σ(i)·tanh(g),  h' = σ(o)·tanh(c').
// Forward reads gates and c and writes h and c_out; when `act` is set it also writes the
// activated gates σ(i), σ(f), tanh(g), σ(o) there ([batch, 4·hidden], for the backward).
// Backward reads act, c, c_out and the optional grad_h, grad_c (null: zero) and writes
// grad_gates [batch, 4·hidden] (pre-activation, contiguous) and grad_c_prev [batch, hidden].
struct LstmCellArgs {
  int64_t batch = 0, hidden = 0;
  const char* gates = nullptr;
  int64_t gates_ld = 0;
  const char* c = nullptr;
  char* h = nullptr;
  char* c_out = nullptr;
  char* act = nullptr;
  const char* grad_h = nullptr;
  const char* grad_c = nullptr;
  char* grad_gates = nullptr;
  char* grad_c_prev = nullptr;
};

// GRU, gates in torch's order r, z, n: x_gates = W_ih x + b_ih and h_gates = W_hh h + b_hh,
// each [batch, 3·hidden]:
//   r = σ(x_r + h_r),  z = σ(x_z + h_z),  n = tanh(x_n + r·h_n),  h' = (1 - z)·n + z·h.
// Forward reads x_gates, h_gates, h and writes h_out; when `saved` is set it also writes
// r, z, n, h_n there ([batch, 4·hidden], for the backward). Backward reads saved, h and
// grad_h_out and writes grad_x_gates and grad_h_gates [batch, 3·hidden] and grad_h [batch, hidden].
struct GruCellArgs {
  int64_t batch = 0, hidden = 0;
  const char* x_gates = nullptr;
  int64_t x_ld = 0;
  const char* h_gates = nullptr;
  int64_t h_ld = 0;
  const char* h = nullptr;
  char* h_out = nullptr;
  char* saved = nullptr;
  const char* grad_h_out = nullptr;
  char* grad_x_gates = nullptr;
  char* grad_h_gates = nullptr;
  char* grad_h = nullptr;
};

struct RnnCellKernels {
  void (*lstm_forward)(const LstmCellArgs&);
  void (*lstm_backward)(const LstmCellArgs&);
  void (*gru_forward)(const GruCellArgs&);
  void (*gru_backward)(const GruCellArgs&);
  const RnnCellKernels* reference;  // plain scalar loops, for tests (null where none)
};

extern KernelTable<const RnnCellKernels*> rnn_cell_kernels;

}  // namespace lepton
