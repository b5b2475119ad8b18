// Int8 dynamic quantisation: argument checks, then the kernels of ops/int8_kernels.h (CPU and
// CUDA). No autograd: these ops exist for inference, and refuse inputs that would need a gradient.
#include "lepton/ops/int8_gemm.h"

#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/int8_kernels.h"
#include "lepton/ops/iter.h"

namespace lepton {

KernelTable<const Int8GemmKernels*> int8_gemm_kernels("int8_gemm");

}  // namespace lepton

namespace lepton::ops {

namespace {

const Int8GemmKernels* kernels(const Tensor& t, const char* op) {
  use_device(t.device());
  return int8_gemm_kernels.get(t.device().type, DType::Int8, op);
}

void check_device(const Tensor& t, const Tensor& x, const char* op, const char* what) {
  LEPTON_CHECK(t.device() == x.device(), Value, op, ": ", what, " is on ", t.device().str(), " but the input is on ",
               x.device().str());
}

void check_dtype(const Tensor& t, DType want, const char* op, const char* what) {
  LEPTON_CHECK(t.dtype() == want, Type, op, ": ", what, " must be ", dtype_name(want), ", got ", dtype_name(t.dtype()));
}

void check_no_grad(const Tensor& x, const char* op) {
  LEPTON_CHECK(!autograd::needs_grad({&x}), NotImplemented, op,
               " is inference-only and not differentiable: run it under lepton.no_grad() or inference_mode()");
}

void check_k(const PackedInt8Weight& w, int64_t k, const char* op) {
  LEPTON_CHECK(w.k == k, Value, op, ": input has ", k, " features but the packed weight is [", w.n, ", ", w.k, "]");
  LEPTON_CHECK(w.packed.numel() == int8_packed_size(w.n, w.k) && w.colsum.numel() == w.n, Value, op,
               ": the packed weight is damaged (its buffers don't match [", w.n, ", ", w.k, "])");
}

void check_weight(const PackedInt8Weight& w, const Tensor& x, int64_t k, const char* op) {
  check_k(w, k, op);
  check_device(w.packed, x, op, "the packed weight");
}

// The activations as u8 (q + 128) rows padded to a multiple of 4, with their scales.
std::pair<Tensor, Tensor> quantize_activations(const Int8GemmKernels* k, const Tensor& x2) {
  const int64_t m = x2.size(0), kk = x2.size(1), kp = int8_k_padded(kk);
  Tensor a = Tensor::empty({m, kp}, DType::UInt8, x2.device());
  Tensor s = Tensor::empty({m}, DType::Float32, x2.device());
  QuantizeRowsArgs q;
  q.x = x2.data<float>(), q.m = m, q.k = kk, q.ld = kp, q.offset = 128, q.out = a.data<uint8_t>(), q.scale = s.data<float>();
  if (m) k->quantize_rows(q);
  return {a, s};
}

}  // namespace

std::pair<Tensor, Tensor> quantize_rows_int8(const Tensor& x) {
  const char* op = "quantize_rows_int8";
  check_dtype(x, DType::Float32, op, "input");
  LEPTON_CHECK(x.dim() == 2, Value, op, ": expected a 2-D [rows, cols] tensor, got shape ", shape_str(x.shape()));
  const Int8GemmKernels* k = kernels(x, op);
  autograd::NoGradGuard no_grad;
  const Tensor xc = contiguous(x);
  Tensor q = Tensor::empty(x.shape(), DType::Int8, x.device());
  Tensor s = Tensor::empty({x.size(0)}, DType::Float32, x.device());
  QuantizeRowsArgs a;
  a.x = xc.data<float>(), a.m = x.size(0), a.k = x.size(1), a.ld = x.size(1), a.offset = 0;
  a.out = static_cast<uint8_t*>(q.data_ptr()), a.scale = s.data<float>();
  if (a.m) k->quantize_rows(a);
  return {q, s};
}

PackedInt8Weight int8_pack_weight(const Tensor& q) {
  const char* op = "int8_pack_weight";
  check_dtype(q, DType::Int8, op, "weight");
  LEPTON_CHECK(q.dim() == 2, Value, op, ": expected a 2-D [out_features, in_features] weight, got shape ",
               shape_str(q.shape()));
  const Int8GemmKernels* k = kernels(q, op);
  const Tensor qc = contiguous(q);
  const int64_t n = q.size(0), kk = q.size(1);
  Tensor packed = Tensor::empty({int8_packed_size(n, kk)}, DType::Int8, q.device());
  Tensor colsum = Tensor::empty({n}, DType::Int32, q.device());
  k->pack(qc.data<int8_t>(), n, kk, packed.data<int8_t>(), colsum.data<int32_t>());
  return {packed, colsum, n, kk};
}

Tensor int8_mm(const Tensor& a, const PackedInt8Weight& w, bool reference) {
  const char* op = "int8_mm";
  check_dtype(a, DType::Int8, op, "input");
  LEPTON_CHECK(a.dim() == 2, Value, op, ": expected a 2-D int8 input, got shape ", shape_str(a.shape()));
  const int64_t m = a.size(0), kk = a.size(1), n = w.n;
  check_weight(w, a, kk, op);
  const Int8GemmKernels* k = kernels(a, op);
  // u8 = s8 + 128, padded with 128s (zeros) to a multiple of 4
  autograd::NoGradGuard no_grad;
  Tensor u = full({m, int8_k_padded(kk)}, Scalar::from_int(128), DType::UInt8, a.device());
  copy_(slice(u, 1, 0, kk, 1), binary(BinaryOp::Add, to(a, std::nullopt, DType::Int32, false), Scalar::from_int(128)));
  Tensor c = Tensor::empty({m, n}, DType::Int32, a.device());
  Int8GemmArgs g;
  g.m = m, g.n = n, g.k = kk, g.a = u.data<uint8_t>(), g.b = w.packed.data<int8_t>(), g.colsum = w.colsum.data<int32_t>();
  g.c_int = c.data<int32_t>();
  (reference ? k->gemm_reference : k->gemm)(g);
  return c;
}

Tensor int8_linear(const Tensor& x, const PackedInt8Weight& w, const Tensor& w_scale, const std::optional<Tensor>& bias,
                   bool relu, bool reference) {
  const char* op = "int8_linear";
  check_dtype(x, DType::Float32, op, "input");
  check_no_grad(x, op);
  LEPTON_CHECK(x.dim() >= 1, Value, op, ": input must have at least one dimension, got a scalar");
  const int64_t kk = x.size(-1), n = w.n;
  check_weight(w, x, kk, op);
  check_dtype(w_scale, DType::Float32, op, "weight scale");
  check_device(w_scale, x, op, "the weight scale");
  LEPTON_CHECK(w_scale.dim() == 1 && w_scale.size(0) == n, Value, op, ": weight scale must have shape [", n, "], got ",
               shape_str(w_scale.shape()));
  if (bias) {
    check_dtype(*bias, DType::Float32, op, "bias");
    check_device(*bias, x, op, "the bias");
    LEPTON_CHECK(bias->dim() == 1 && bias->size(0) == n, Value, op, ": bias must have shape [", n, "], got ",
                 shape_str(bias->shape()));
  }
  const Int8GemmKernels* k = kernels(x, op);
  autograd::NoGradGuard no_grad;
  const int64_t m = kk ? x.numel() / kk : 0;
  Shape out_shape = x.shape();
  out_shape.back() = n;
  Tensor y = Tensor::empty(out_shape, DType::Float32, x.device());
  if (y.numel() == 0) return y;
  if (kk == 0) {  // an empty sum: the output is the bias
    fill_(y, Scalar::from_float(0.0));
    return bias ? binary(BinaryOp::Add, y, *bias) : y;
  }
  const Tensor x2 = contiguous(reshape(x, {m, kk}));
  auto [a, a_scale] = quantize_activations(k, x2);
  const Tensor ws = contiguous(w_scale);
  const std::optional<Tensor> bc = bias ? std::optional<Tensor>(contiguous(*bias)) : std::nullopt;
  Int8GemmArgs g;
  g.m = m, g.n = n, g.k = kk, g.a = a.data<uint8_t>(), g.b = w.packed.data<int8_t>(), g.colsum = w.colsum.data<int32_t>();
  g.c = y.data<float>(), g.a_scale = a_scale.data<float>(), g.b_scale = ws.data<float>();
  g.bias = bc ? bc->data<float>() : nullptr, g.relu = relu;
  (reference ? k->gemm_reference : k->gemm)(g);
  return y;
}

const char* int8_gemm_kernel_name() { return int8_gemm_kernels.get(DeviceType::CPU, DType::Int8, "int8_gemm")->gemm_name; }

}  // namespace lepton::ops
