// Runs backward passes: nodes execute once all their gradients have arrived, later-created
// nodes first, entirely in C++.
#pragma once
#include "lepton/autograd/node.h"

namespace lepton::autograd {

// Accumulates d(roots)/d(leaf) · grads into every reachable leaf's .grad. An undefined entry
// of `grads` means ones (allowed for single-element roots only).
void backward(const TensorList& roots, const TensorList& grads, bool retain_graph, bool create_graph);

// Returns d(outputs)/d(inputs) · grad_outputs without touching any .grad; an input that no
// output depends on gives an undefined tensor when allow_unused, else an error.
TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                bool retain_graph, bool create_graph, bool allow_unused);

}  // namespace lepton::autograd
