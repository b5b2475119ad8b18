// Embedding: a row gather whose backward scatter-adds the output gradient into a dense weight
// gradient (torch's default, sparse=False), and the in-place max_norm renormalisation.
#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/norm.h"

namespace lepton::ops {

namespace {

void check_weight(const char* op, const Tensor& weight) {
  LEPTON_CHECK(is_floating(weight.dtype()), Type, op, ": weight must be a floating-point tensor, got ",
               dtype_name(weight.dtype()));
  LEPTON_CHECK(weight.dim() == 2, Value, op, ": weight must be 2-D [num_embeddings, embedding_dim], got shape ",
               shape_str(weight.shape()));
}

// The indices as a contiguous int64 tensor on weight's device.
Tensor int64_indices(const char* op, const Tensor& indices, const Tensor& weight) {
  LEPTON_CHECK(is_integral(indices.dtype(), false), Type, op,
               ": indices must be an integer tensor (int64 or int32), got ", dtype_name(indices.dtype()));
  autograd::NoGradGuard no_grad;
  return contiguous(to(indices, weight.device(), DType::Int64, false));
}

void check_bad(const char* op, int64_t bad, const Tensor& idx, int64_t rows) {
  if (bad >= 0)
    raise(ErrorKind::Index, op, ": index ", int64_t(element_at(idx, bad)), " is out of range for ", rows, " embeddings");
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices, std::optional<int64_t> padding_idx,
                 bool scale_grad_by_freq) {
  constexpr const char* name = "embedding";
  check_weight(name, weight);
  const int64_t V = weight.size(0), D = weight.size(1);
  if (padding_idx) {
    LEPTON_CHECK(*padding_idx >= -V && *padding_idx < V, Value, name, ": padding_idx ", *padding_idx,
                 " must be within num_embeddings (", V, ")");
    if (*padding_idx < 0) *padding_idx += V;
  }
  const Tensor idx = int64_indices(name, indices, weight);
  Tensor w;
  {
    autograd::NoGradGuard no_grad;
    w = contiguous(weight);
  }
  Shape shape = indices.shape();
  shape.push_back(D);
  Tensor out = Tensor::empty(shape, weight.dtype(), weight.device());
  EmbeddingArgs a;
  a.weight = out_ptr(w), a.indices = idx.data<int64_t>(), a.out = out_ptr(out);
  a.count = idx.numel(), a.num_embeddings = V, a.dim = D;
  a.padding_idx = padding_idx.value_or(-1), a.scale_grad_by_freq = scale_grad_by_freq;
  if (a.count) check_bad(name, norm_kernel(w, name)->embedding_forward(a), idx, V);
  if (autograd::needs_grad({&weight})) {
    const autograd::SavedTensor si = saved_input(idx);
    a.weight = nullptr, a.out = nullptr;
    const Shape wshape = weight.shape();
    const DType dt = weight.dtype();
    const Device dev = weight.device();
    autograd::record("embedding_backward", {&weight}, {&out},
                     [si, a, wshape, dt, dev](const autograd::Node& self, autograd::TensorList& g) {
      check_no_double_backward("embedding");
      const Tensor idx = si.unpack(self), gy = contiguous(g[0]);
      Tensor gw = Tensor::empty(wshape, dt, dev);
      EmbeddingArgs b = a;
      b.indices = idx.data<int64_t>(), b.grad_out = in_ptr(gy), b.grad_weight = out_ptr(gw);
      if (gw.numel()) norm_kernel(gw, "embedding")->embedding_backward(b);
      return autograd::TensorList{gw};
    });
  }
  return out;
}

void embedding_renorm_(const Tensor& weight, const Tensor& indices, double max_norm, double norm_type) {
  constexpr const char* name = "embedding_renorm_";
  check_weight(name, weight);
  LEPTON_CHECK(weight.is_contiguous(), Value, name, ": weight must be contiguous to be renormalised in place");
  LEPTON_CHECK(max_norm >= 0, Value, name, ": max_norm must be non-negative, got ", max_norm);
  LEPTON_CHECK(norm_type > 0, Value, name, ": norm_type must be positive, got ", norm_type);
  const Tensor idx = int64_indices(name, indices, weight);
  EmbeddingArgs a;
  a.weight = out_ptr(weight), a.indices = idx.data<int64_t>();
  a.count = idx.numel(), a.num_embeddings = weight.size(0), a.dim = weight.size(1);
  a.max_norm = max_norm, a.norm_type = norm_type;
  weight.bump_version();
  if (a.count) check_bad(name, norm_kernel(weight, name)->embedding_renorm(a), idx, a.num_embeddings);
}

}  // namespace lepton::ops
