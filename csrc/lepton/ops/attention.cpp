// Scaled dot-product attention: checks, broadcasting and the autograd node here; the fused
// kernels (ops/attention_kernels.h) read q, k, v and the mask through per-problem offsets and
// row strides, so broadcast and transposed-batch inputs are never copied.
#include "lepton/ops/attention.h"

#include <cmath>

#include "lepton/core/error.h"
#include "lepton/ops/attention_kernels.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/grad.h"
#include "lepton/ops/iter.h"

namespace lepton {

KernelTable<const AttentionKernels*> attention_kernels("scaled_dot_product_attention");

namespace ops {

namespace {

constexpr const char* kName = "scaled_dot_product_attention";
constexpr int64_t kMaxHeadDim = 256;

Shape leading(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

// t with a unit stride along its last dim (the kernels' one layout requirement).
Tensor unit_last_stride(const Tensor& t) { return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : contiguous(t); }

// The element offset of each problem of `batch` in t (stride 0 along the dims t broadcasts).
std::vector<int64_t> problem_offsets(const Tensor& t, const Shape& batch) {
  const int64_t nb = int64_t(batch.size()), skip = nb - (t.dim() - 2);
  std::vector<int64_t> off(size_t(shape_numel(batch)), 0);
  for (size_t n = 0; n < off.size(); ++n) {
    int64_t rem = int64_t(n);
    for (int64_t d = nb - 1; d >= 0; --d) {
      const int64_t i = rem % batch[size_t(d)];
      rem /= batch[size_t(d)];
      if (d >= skip && t.shape()[size_t(d - skip)] != 1) off[n] += i * t.strides()[size_t(d - skip)];
    }
  }
  return off;
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const std::optional<Tensor>& mask,
                  double dropout_p, bool is_causal) {
  LEPTON_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, Value, kName,
               ": expected query, key and value to be at least 2-D, got query ", shape_str(q.shape()), ", key ",
               shape_str(k.shape()), " and value ", shape_str(v.shape()));
  LEPTON_CHECK(is_floating(q.dtype()) && q.dtype() == k.dtype() && q.dtype() == v.dtype(), Type, kName,
               ": expected query, key and value of one floating-point dtype, got ", dtype_name(q.dtype()), ", ",
               dtype_name(k.dtype()), " and ", dtype_name(v.dtype()));
  check_same_device(kName, {&q, &k, &v});
  LEPTON_CHECK(q.size(-1) == k.size(-1), Value, kName, ": query ", shape_str(q.shape()), " and key ",
               shape_str(k.shape()), " must have the same head dim (last dim)");
  LEPTON_CHECK(k.size(-2) == v.size(-2), Value, kName, ": key ", shape_str(k.shape()), " and value ",
               shape_str(v.shape()), " must have the same sequence length (dim -2)");
  LEPTON_CHECK(q.size(-1) <= kMaxHeadDim && v.size(-1) <= kMaxHeadDim, Value, kName, ": head dims up to ",
               kMaxHeadDim, " are supported, got query ", shape_str(q.shape()), " and value ", shape_str(v.shape()));
  LEPTON_CHECK(dropout_p >= 0 && dropout_p <= 1, Value, kName, ": dropout_p must be between 0 and 1, got ", dropout_p);
  if (!mask) return;
  LEPTON_CHECK(!is_causal, Value, kName, ": an explicit attn_mask should not be set when is_causal=True");
  LEPTON_CHECK(mask->dtype() == DType::Bool || mask->dtype() == q.dtype(), Type, kName,
               ": attn_mask must be bool or match the query dtype ", dtype_name(q.dtype()), ", got ",
               dtype_name(mask->dtype()));
  check_same_device(kName, {&q, &*mask});
}

// [*batch, L, S], or an error naming the mask's shape.
void check_mask_shape(const Tensor& mask, const Shape& batch, int64_t L, int64_t S) {
  Shape full = batch;
  full.push_back(L);
  full.push_back(S);
  bool ok = mask.dim() <= int64_t(full.size());
  for (int64_t d = 1; ok && d <= mask.dim(); ++d) {
    const int64_t m = mask.shape()[size_t(mask.dim() - d)];
    ok = m == 1 || m == full[full.size() - size_t(d)];
  }
  LEPTON_CHECK(ok, Value, kName, ": attn_mask of shape ", shape_str(mask.shape()),
               " does not broadcast to the attention shape ", shape_str(full));
}

// Everything the kernels read, kept alive together (offset arrays included).
struct Problem {
  Tensor q, k, v, mask;
  Shape batch;
  std::vector<int64_t> q_off, k_off, v_off, mask_off;
  AttentionArgs args;

  Problem(const Tensor& q0, const Tensor& k0, const Tensor& v0, const std::optional<Tensor>& mask0, bool causal,
          double scale, double dropout_p, uint64_t seed) {
    autograd::NoGradGuard no_grad;  // layout copies are not part of the graph
    q = unit_last_stride(q0), k = unit_last_stride(k0), v = unit_last_stride(v0);
    batch = broadcast_shapes(broadcast_shapes(leading(q), leading(k), kName), leading(v), kName);
    AttentionArgs& a = args;
    a.batch = shape_numel(batch), a.L = q.size(-2), a.S = k.size(-2), a.E = q.size(-1), a.Ev = v.size(-1);
    q_off = problem_offsets(q, batch), k_off = problem_offsets(k, batch), v_off = problem_offsets(v, batch);
    a.q = q.data_ptr(), a.k = k.data_ptr(), a.v = v.data_ptr();
    a.q_off = q_off.data(), a.k_off = k_off.data(), a.v_off = v_off.data();
    a.q_rs = q.stride(-2), a.k_rs = k.stride(-2), a.v_rs = v.stride(-2);
    if (mask0) {
      check_mask_shape(*mask0, batch, a.L, a.S);
      Shape shape = mask0->shape();  // the mask's own batch dims, with L and S spelled out
      if (shape.size() < 2) shape.insert(shape.begin(), 2 - shape.size(), 1);
      shape[shape.size() - 2] = a.L, shape.back() = a.S;
      mask = unit_last_stride(expand(*mask0, shape));
      mask_off = problem_offsets(mask, batch);
      a.mask = mask.data_ptr(), a.mask_off = mask_off.data(), a.mask_rs = a.L > 1 ? mask.stride(-2) : 0;
      a.mask_kind = mask.dtype() == DType::Bool ? AttentionMask::Bool : AttentionMask::Float;
    }
    a.causal = causal, a.scale = scale, a.dropout_p = dropout_p, a.dropout_seed = seed;
  }

  Shape shape(int64_t rows, int64_t cols) const {
    Shape s = batch;
    s.push_back(rows);
    s.push_back(cols);
    return s;
  }
};

const AttentionFns& kernels(const Tensor& t, bool reference) {
  use_device(t.device());
  const AttentionKernels* k = attention_kernels.get(t.device().type, t.dtype(), kName);
  return reference ? k->reference : k->fast;
}

// One number from the global generator keys the Philox stream of this call's dropout mask.
uint64_t dropout_seed() {
  Tensor s = Tensor::empty({1}, DType::Int64, Device());
  random_(s, RandomDist::Integer, 0, 4611686018427387904.0);  // [0, 2^62)
  return uint64_t(s.data<int64_t>()[0]);
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const std::optional<Tensor>& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale, bool reference) {
  if (auto dt = autocast::target(kName, {&query, &key, &value, attn_mask ? &*attn_mask : nullptr})) {
    autocast::Suspend off;
    return scaled_dot_product_attention(autocast::cast(query, *dt), autocast::cast(key, *dt), autocast::cast(value, *dt),
                                        autocast::cast(attn_mask, *dt), dropout_p, is_causal, scale, reference);
  }
  // 16-bit inputs on a device without 16-bit attention kernels compute in float32 and round
  // the output once (the casts are recorded, so gradients come back in 16 bits).
  const DType qt = query.dtype();
  if (autocast::is_16bit(qt) && key.dtype() == qt && value.dtype() == qt && !attention_kernels.has(query.device().type, qt)) {
    const DType f = DType::Float32;
    return to(scaled_dot_product_attention(to(query, std::nullopt, f, false), to(key, std::nullopt, f, false),
                                           to(value, std::nullopt, f, false), autocast::cast(attn_mask, f), dropout_p,
                                           is_causal, scale, reference),
              std::nullopt, qt, false);
  }
  check_inputs(query, key, value, attn_mask, dropout_p, is_causal);
  const double sc = scale ? *scale : 1.0 / std::sqrt(double(query.size(-1)));
  const auto p = std::make_shared<const Problem>(query, key, value, attn_mask, is_causal, sc, dropout_p,
                                                 dropout_p > 0 ? dropout_seed() : 0);
  const AttentionArgs& a = p->args;
  Tensor out = Tensor::empty(p->shape(a.L, a.Ev), query.dtype(), query.device());
  const bool half = query.dtype() == DType::Float16 || query.dtype() == DType::BFloat16;  // lse keeps float32's range and bits
  Tensor lse = Tensor::empty({a.batch, a.L}, half ? DType::Float32 : query.dtype(), query.device());
  AttentionArgs fa = a;
  fa.out = out.data_ptr(), fa.lse = lse.data_ptr();
  const AttentionFns& fns = kernels(query, reference);
  if (a.batch * a.L > 0) fns.forward(fa);

  autograd::TensorList inputs{query, key, value};
  if (attn_mask && attn_mask->dtype() != DType::Bool) inputs.push_back(*attn_mask);
  if (!autograd::needs_grad(inputs)) return out;
  // q, k and v are saved for their version checks only: the kernels read them through p.
  const std::vector<autograd::SavedTensor> saved{{p->q, false}, {p->k, false}, {p->v, false}, {out, true}, {lse, false}};
  std::vector<Shape> shapes;  // of the inputs, to reduce broadcast gradients to
  for (const Tensor& t : inputs) shapes.push_back(t.shape());
  autograd::record("scaled_dot_product_attention_backward", inputs, {out},
                   [p, saved, shapes, fns](const autograd::Node& self, autograd::TensorList& g) {
    LEPTON_CHECK(!autograd::grad_enabled(), NotImplemented, kName,
                 ": double backward (create_graph=True) is not supported by the fused kernel");
    const AttentionArgs& a = p->args;
    for (int i = 0; i < 3; ++i) saved[size_t(i)].unpack(self);
    const Tensor out = saved[3].unpack(self), lse = saved[4].unpack(self), go = contiguous(g[0]);
    const DType dt = out.dtype();
    const Device dev = out.device();
    Tensor gq = Tensor::empty(p->shape(a.L, a.E), dt, dev), gk = Tensor::empty(p->shape(a.S, a.E), dt, dev);
    Tensor gv = Tensor::empty(p->shape(a.S, a.Ev), dt, dev), gm;
    const bool mask_grad = shapes.size() > 3 && self.next_edges[3].valid();
    if (mask_grad) gm = Tensor::empty(p->shape(a.L, a.S), dt, dev);
    AttentionArgs b = a;
    b.out = out.data_ptr(), b.lse = lse.data_ptr(), b.grad_out = go.data_ptr();
    b.grad_q = gq.data_ptr(), b.grad_k = gk.data_ptr(), b.grad_v = gv.data_ptr();
    b.grad_mask = mask_grad ? gm.data_ptr() : nullptr;
    if (a.batch > 0) fns.backward(b);
    autograd::TensorList grads{sum_to(gq, shapes[0]), sum_to(gk, shapes[1]), sum_to(gv, shapes[2])};
    if (shapes.size() > 3) grads.push_back(mask_grad ? sum_to(gm, shapes[3]) : Tensor());
    return grads;
  });
  return out;
}

}  // namespace ops
}  // namespace lepton
