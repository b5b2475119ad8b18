// Bindings for the fused recurrent cells (nn.LSTM/GRU and their cells call them once per time
// step). The GIL is released while the kernels run.
#include "convert.h"
#include "lepton/ops/rnn_cell.h"

namespace lepton::py_bind {

void bind_rnn(py::module_& m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  m.def("lstm_cell_fused", &ops::lstm_cell_fused, py::arg("gates"), py::arg("c"), nogil(),
        "one LSTM step after its GEMM: gates [B, 4H] pre-activation (i, f, g, o), c [B, H] -> (h', c')");
  m.def("gru_cell_fused", &ops::gru_cell_fused, py::arg("x_gates"), py::arg("h_gates"), py::arg("h"), nogil(),
        "one GRU step after its GEMMs: x_gates = W_ih x + b_ih, h_gates = W_hh h + b_hh [B, 3H] (r, z, n), "
        "h [B, H] -> h'");
  m.def("_set_rnn_cell_reference", &ops::set_rnn_cell_reference, py::arg("on"),
        "tests and benchmarks: run the fused cells' scalar reference kernels instead of the fast ones");
}

}  // namespace lepton::py_bind
