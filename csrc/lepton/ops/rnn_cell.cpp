// Fused LSTM/GRU cells: checks, dtype handling, the forward kernel, and one backward node per
// step whose kernel reads the activations the forward saved.
#include "lepton/ops/rnn_cell.h"

#include <atomic>
#include <vector>

#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/iter.h"
#include "lepton/ops/norm.h"
#include "lepton/ops/rnn_kernels.h"

namespace lepton {

KernelTable<const RnnCellKernels*> rnn_cell_kernels("rnn_cell");

namespace ops {
namespace {

std::atomic<bool> g_reference{false};

const RnnCellKernels* kernel(const Tensor& t, const char* op) {
  use_device(t.device());
  const RnnCellKernels* k = rnn_cell_kernels.get(t.device().type, t.dtype(), op);
  return g_reference && k->reference ? k->reference : k;
}

void check_2d(const char* op, const char* what, const Tensor& t, int64_t batch, int64_t cols,
              const std::string& expected) {
  LEPTON_CHECK(t.dim() == 2 && t.size(0) == batch && t.size(1) == cols, Value, op, ": expected ", what, " of shape [",
               batch, ", ", cols, "] (", expected, "), got ", shape_str(t.shape()));
}

// The operands in the dtype the kernels compute in: their common (promoted) dtype, with 16-bit
// widened to float32 where the device has no kernel for it. The casts are recorded, so
// gradients come back in each operand's own dtype. Returns the dtype the results are given in.
DType compute_dtype(const char* op, std::vector<Tensor>& ts) {
  DType common = ts[0].dtype();
  for (const Tensor& t : ts) {
    LEPTON_CHECK(is_floating(t.dtype()), Type, op, ": expected floating-point tensors, got ", dtype_name(t.dtype()));
    common = promote_types(common, t.dtype());
  }
  const DType run = autocast::is_16bit(common) && !rnn_cell_kernels.has(ts[0].device().type, common) ? DType::Float32
                                                                                                      : common;
  for (Tensor& t : ts)
    if (t.dtype() != run) t = to(t, std::nullopt, run, false);
  return common;
}

// Row-strided gate blocks (unit stride along a row) are read in place; anything else is copied
// (outside the graph: the node differentiates with respect to the caller's tensor).
Tensor row_strided(const Tensor& t) {
  if (t.stride(1) == 1 || t.size(1) <= 1) return t;
  autograd::NoGradGuard no_grad;
  return contiguous(t);
}
Tensor dense(const Tensor& t) {
  if (!t.defined() || t.is_contiguous()) return t;
  autograd::NoGradGuard no_grad;
  return contiguous(t);
}
Tensor cast_back(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : to(t, std::nullopt, dtype, false); }

}  // namespace

void set_rnn_cell_reference(bool on) { g_reference = on; }

std::pair<Tensor, Tensor> lstm_cell_fused(const Tensor& gates_in, const Tensor& c_in) {
  constexpr const char* op = "lstm_cell_fused";
  LEPTON_CHECK(c_in.dim() == 2, Value, op, ": expected c of shape [batch, hidden], got ", shape_str(c_in.shape()));
  const int64_t B = c_in.size(0), H = c_in.size(1);
  check_2d(op, "gates", gates_in, B, 4 * H, "batch, 4 * hidden for c of shape " + shape_str(c_in.shape()));
  check_same_device(op, {&gates_in, &c_in});
  std::vector<Tensor> ts{gates_in, c_in};
  const DType out_dtype = compute_dtype(op, ts);
  const Tensor &gates0 = ts[0], &c0 = ts[1];
  const Tensor gates = row_strided(gates0), c = dense(c0);
  Tensor h = Tensor::empty({B, H}, c.dtype(), c.device()), cy = Tensor::empty({B, H}, c.dtype(), c.device());
  const bool grad = autograd::needs_grad({&gates0, &c0});
  Tensor act = grad ? Tensor::empty({B, 4 * H}, c.dtype(), c.device()) : Tensor();
  LstmCellArgs a;
  a.batch = B, a.hidden = H;
  a.gates = in_ptr(gates), a.gates_ld = gates.stride(0), a.c = in_ptr(c);
  a.h = out_ptr(h), a.c_out = out_ptr(cy), a.act = out_ptr(act);
  if (B * H) kernel(c, op)->lstm_forward(a);
  if (grad) {
    const autograd::SavedTensor s_act(act, false), s_c = saved_input(c), s_cy(cy, true, 1);
    const bool need_gates = autograd::requires_grad(gates0), need_c = autograd::requires_grad(c0);
    autograd::record("lstm_cell_fused_backward", {&gates0, &c0}, {&h, &cy},
                     [s_act, s_c, s_cy, B, H, need_gates, need_c](const autograd::Node& self, autograd::TensorList& g) {
      check_no_double_backward("lstm_cell_fused");
      const Tensor act = s_act.unpack(self), c = s_c.unpack(self), cy = s_cy.unpack(self);
      const Tensor gh = dense(g[0]), gc = dense(g[1]);
      Tensor dgates = Tensor::empty({B, 4 * H}, c.dtype(), c.device());
      Tensor dc = Tensor::empty({B, H}, c.dtype(), c.device());
      LstmCellArgs b;
      b.batch = B, b.hidden = H;
      b.act = const_cast<char*>(in_ptr(act)), b.c = in_ptr(c), b.c_out = const_cast<char*>(in_ptr(cy));
      b.grad_h = in_ptr(gh), b.grad_c = in_ptr(gc);
      b.grad_gates = out_ptr(dgates), b.grad_c_prev = out_ptr(dc);
      if (B * H) kernel(c, "lstm_cell_fused")->lstm_backward(b);
      return autograd::TensorList{need_gates ? dgates : Tensor(), need_c ? dc : Tensor()};
    });
  }
  return {cast_back(h, out_dtype), cast_back(cy, out_dtype)};
}

Tensor gru_cell_fused(const Tensor& x_in, const Tensor& hg_in, const Tensor& h_in) {
  constexpr const char* op = "gru_cell_fused";
  LEPTON_CHECK(h_in.dim() == 2, Value, op, ": expected h of shape [batch, hidden], got ", shape_str(h_in.shape()));
  const int64_t B = h_in.size(0), H = h_in.size(1);
  const std::string why = "batch, 3 * hidden for h of shape " + shape_str(h_in.shape());
  check_2d(op, "x_gates", x_in, B, 3 * H, why.c_str());
  check_2d(op, "h_gates", hg_in, B, 3 * H, why.c_str());
  check_same_device(op, {&x_in, &hg_in, &h_in});
  std::vector<Tensor> ts{x_in, hg_in, h_in};
  const DType out_dtype = compute_dtype(op, ts);
  const Tensor &x0 = ts[0], &hg0 = ts[1], &h0 = ts[2];
  const Tensor x = row_strided(x0), hg = row_strided(hg0), h = dense(h0);
  Tensor hy = Tensor::empty({B, H}, h.dtype(), h.device());
  const bool grad = autograd::needs_grad({&x0, &hg0, &h0});
  Tensor saved = grad ? Tensor::empty({B, 4 * H}, h.dtype(), h.device()) : Tensor();
  GruCellArgs a;
  a.batch = B, a.hidden = H;
  a.x_gates = in_ptr(x), a.x_ld = x.stride(0), a.h_gates = in_ptr(hg), a.h_ld = hg.stride(0);
  a.h = in_ptr(h), a.h_out = out_ptr(hy), a.saved = out_ptr(saved);
  if (B * H) kernel(h, op)->gru_forward(a);
  if (grad) {
    const autograd::SavedTensor s_saved(saved, false), s_h = saved_input(h);
    const bool need_x = autograd::requires_grad(x0), need_hg = autograd::requires_grad(hg0);
    const bool need_h = autograd::requires_grad(h0);
    autograd::record("gru_cell_fused_backward", {&x0, &hg0, &h0}, {&hy},
                     [s_saved, s_h, B, H, need_x, need_hg, need_h](const autograd::Node& self,
                                                                    autograd::TensorList& g) {
      check_no_double_backward("gru_cell_fused");
      const Tensor saved = s_saved.unpack(self), h = s_h.unpack(self);
      const Tensor gy = dense(g[0]);
      if (!gy.defined()) return autograd::TensorList(3);
      Tensor dx = Tensor::empty({B, 3 * H}, h.dtype(), h.device());
      Tensor dhg = Tensor::empty({B, 3 * H}, h.dtype(), h.device());
      Tensor dh = Tensor::empty({B, H}, h.dtype(), h.device());
      GruCellArgs b;
      b.batch = B, b.hidden = H;
      b.saved = const_cast<char*>(in_ptr(saved)), b.h = in_ptr(h), b.grad_h_out = in_ptr(gy);
      b.grad_x_gates = out_ptr(dx), b.grad_h_gates = out_ptr(dhg), b.grad_h = out_ptr(dh);
      if (B * H) kernel(h, "gru_cell_fused")->gru_backward(b);
      return autograd::TensorList{need_x ? dx : Tensor(), need_hg ? dhg : Tensor(), need_h ? dh : Tensor()};
    });
  }
  return cast_back(hy, out_dtype);
}

}  // namespace ops
}  // namespace lepton
