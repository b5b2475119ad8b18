// Fused recurrent cells (rnn_cell.cpp): the elementwise part of one LSTM or GRU time step in
// one kernel and one backward node, for nn.LSTM/GRU and their cells. Formulas and gate order
// are torch's (ops/rnn_kernels.h spells them out).
#pragma once
#include <utility>

#include "lepton/core/tensor.h"

namespace lepton::ops {

// gates [B, 4H] pre-activation (i, f, g, o; may be a row-strided view), c [B, H] -> (h', c').
// Differentiable in gates and c; the backward gives d(gates) as one contiguous [B, 4H] tensor.
std::pair<Tensor, Tensor> lstm_cell_fused(const Tensor& gates, const Tensor& c);

// x_gates = W_ih x + b_ih and h_gates = W_hh h + b_hh, both [B, 3H] (r, z, n), h [B, H] -> h'.
// b_hn stays inside r·(W_hn h + b_hn), as in torch. Differentiable in all three.
Tensor gru_cell_fused(const Tensor& x_gates, const Tensor& h_gates, const Tensor& h);

// Test and benchmark hook: run the scalar reference kernels instead of the fast ones.
void set_rnn_cell_reference(bool on);

}  // namespace lepton::ops
