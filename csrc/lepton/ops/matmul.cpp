// matmul, linear, bmm and addmm: shape rules, broadcasting and validation here; the arithmetic is
// one gemm kernel call per run of batch matrices. Operands reach the kernel through their
// strides (transposed views and broadcast batch dims included), never through copies.
#include <algorithm>

#include "lepton/core/error.h"
#include "lepton/ops/autocast.h"
#include "lepton/ops/grad.h"

namespace lepton::ops {

namespace {

void check_pair(const Tensor& a, const Tensor& b, const char* op, const char* an = "input", const char* bn = "other") {
  LEPTON_CHECK(a.dtype() == b.dtype(), Type, op, ": expected ", an, " and ", bn, " to have the same dtype, got ",
               dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  LEPTON_CHECK(a.device() == b.device(), Value, op, ": expected ", an, " and ", bn, " on the same device, got ",
               a.device().str(), " and ", b.device().str());
}

[[noreturn]] void shape_error(const Tensor& a, const Tensor& b, const char* op, int64_t ka, int64_t kb) {
  raise(ErrorKind::Value, op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
        " cannot be multiplied (", ka, " != ", kb, ")");
}

// One dim of the batch, with each operand's stride (0 where it broadcasts).
struct BatchDim {
  int64_t size, sa, sb, sc;
};

// out[..., M, N] = act(alpha * a[..., M, K] · b[..., K, N] + beta * out + bias), with a and b at
// least 2-D and their batch dims already broadcast to out's. Batch dims that merge into one
// strided run go to the kernel as its batch; the rest are looped over here.
void gemm_into(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor* bias, Activation act, double alpha,
               double beta, const char* op) {
  const int64_t nb = out.dim() - 2;
  const int64_t M = out.size(-2), N = out.size(-1), K = a.size(-1);
  GemmArgs g;
  g.m = M, g.n = N, g.k = K;
  g.a_rs = a.stride(-2), g.a_cs = a.stride(-1);
  g.b_rs = b.stride(-2), g.b_cs = b.stride(-1);
  g.c_rs = out.stride(-2);
  g.alpha = alpha, g.beta = beta, g.act = act;
  Tensor bias_c;
  if (bias) {
    bias_c = contiguous(*bias);
    g.bias = bias_c.data_ptr();
  }
  auto stride_of = [&](const Tensor& t, int64_t d) {  // batch dim d of out, right-aligned in t
    int64_t td = d - (nb - (t.dim() - 2));
    return td < 0 || t.shape()[td] == 1 ? 0 : t.strides()[td];
  };
  std::vector<BatchDim> dims;
  for (int64_t d = 0; d < nb; ++d) {
    BatchDim bd{out.shape()[d], stride_of(a, d), stride_of(b, d), out.strides()[d]};
    if (bd.size == 1) continue;
    BatchDim* last = dims.empty() ? nullptr : &dims.back();
    if (last && last->sa == bd.sa * bd.size && last->sb == bd.sb * bd.size && last->sc == bd.sc * bd.size)
      last->size *= bd.size, last->sa = bd.sa, last->sb = bd.sb, last->sc = bd.sc;
    else
      dims.push_back(bd);
  }
  // A batch that shares one B and walks A and C like their rows is just a taller matrix.
  if (dims.size() == 1 && dims[0].sb == 0 && dims[0].sa == M * g.a_rs && dims[0].sc == M * g.c_rs) {
    g.m *= dims[0].size;
    dims.clear();
  }
  if (!dims.empty()) {
    g.batch = dims.back().size;
    g.a_bs = dims.back().sa, g.b_bs = dims.back().sb, g.c_bs = dims.back().sc;
    dims.pop_back();
  }
  int64_t outer = 1;
  for (const BatchDim& d : dims) outer *= d.size;
  GemmFn fn = gemm_kernels.get(out.device().type, out.dtype(), op);
  const size_t item = out.itemsize();
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rem = o, oa = 0, ob = 0, oc = 0;
    for (auto d = dims.rbegin(); d != dims.rend(); ++d) {
      int64_t i = rem % d->size;
      rem /= d->size;
      oa += i * d->sa, ob += i * d->sb, oc += i * d->sc;
    }
    GemmArgs gi = g;
    gi.a = static_cast<const char*>(a.data_ptr()) + oa * int64_t(item);
    gi.b = static_cast<const char*>(b.data_ptr()) + ob * int64_t(item);
    gi.c = static_cast<char*>(out.data_ptr()) + oc * int64_t(item);
    fn(gi);
  }
  out.bump_version();
}

// torch.matmul's rules, plus an optional fused bias (over N) and activation.
Tensor matmul_impl(const Tensor& a0, const Tensor& b0, const Tensor* bias, Activation act, const char* op) {
  check_pair(a0, b0, op);
  LEPTON_CHECK(a0.dim() > 0 && b0.dim() > 0, Value, op, ": both arguments need at least 1 dimension, got ",
               shape_str(a0.shape()), " and ", shape_str(b0.shape()));
  // 1-D operands become a row (a) or a column (b), squeezed from the result afterwards.
  const Tensor a = a0.dim() == 1 ? unsqueeze(a0, 0) : a0;
  const Tensor b = b0.dim() == 1 ? unsqueeze(b0, 1) : b0;
  const int64_t K = a.size(-1);
  if (b.size(-2) != K) shape_error(a0, b0, op, K, b.size(-2));
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape shape = broadcast_shapes(ba, bb, op);
  shape.push_back(a.size(-2));
  shape.push_back(b.size(-1));
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  if (out.numel() > 0) gemm_into(out, a, b, bias, act, 1.0, 0.0, op);
  if (b0.dim() == 1) out = squeeze(out, Dims{-1});
  if (a0.dim() == 1) out = squeeze(out, Dims{-1 - (b0.dim() > 1)});
  return out;
}

}  // namespace

namespace {
// The public products compute without recording their internal views, then record one node.
template <class F>
Tensor untracked(F compute) {
  autograd::NoGradGuard no_grad;
  return compute();
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (auto dt = autocast::target("matmul", {&a, &b})) {
    autocast::Suspend off;
    return matmul(autocast::cast(a, *dt), autocast::cast(b, *dt));
  }
  Tensor out = untracked([&] { return matmul_impl(a, b, nullptr, Activation::None, "matmul"); });
  if (autograd::needs_grad({&a, &b})) record_matmul(a, b, out, "matmul_backward");
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias, Activation act) {
  if (auto dt = autocast::target("linear", {&x, &weight, bias ? &*bias : nullptr})) {
    autocast::Suspend off;
    return linear(autocast::cast(x, *dt), autocast::cast(weight, *dt), autocast::cast(bias, *dt), act);
  }
  check_pair(x, weight, "linear", "input", "weight");
  LEPTON_CHECK(weight.dim() == 2, Value, "linear: weight must be 2-D [out_features, in_features], got ",
               shape_str(weight.shape()));
  LEPTON_CHECK(x.dim() > 0, Value, "linear: input must have at least 1 dimension, got a 0-d tensor");
  if (x.size(-1) != weight.size(1))
    raise(ErrorKind::Value, "linear: input ", shape_str(x.shape()), " and weight ", shape_str(weight.shape()),
          " cannot be multiplied (", x.size(-1), " != ", weight.size(1), ")");
  if (bias) {
    check_pair(x, *bias, "linear", "input", "bias");
    LEPTON_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), Value, "linear: bias must have shape [",
                 weight.size(0), "] to match weight ", shape_str(weight.shape()), ", got ", shape_str(bias->shape()));
  }
  const bool grad = autograd::needs_grad({&x, &weight, bias ? &*bias : &x});
  // GELU's derivative needs the pre-activation: when training, apply it as its own op.
  if (grad && act == Activation::Gelu) return unary(UnaryOp::Gelu, linear(x, weight, bias, Activation::None));
  Tensor out = untracked([&] { return matmul_impl(x, transpose(weight, 0, 1), bias ? &*bias : nullptr, act, "linear"); });
  if (grad) record_linear(x, weight, bias, act == Activation::Relu, out);
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  if (auto dt = autocast::target("bmm", {&a, &b})) {
    autocast::Suspend off;
    return bmm(autocast::cast(a, *dt), autocast::cast(b, *dt));
  }
  check_pair(a, b, "bmm");
  LEPTON_CHECK(a.dim() == 3 && b.dim() == 3, Value, "bmm: expected 3-D tensors, got ", shape_str(a.shape()), " and ",
               shape_str(b.shape()));
  LEPTON_CHECK(a.size(0) == b.size(0), Value, "bmm: batch sizes differ: ", shape_str(a.shape()), " and ",
               shape_str(b.shape()));
  if (a.size(2) != b.size(1)) shape_error(a, b, "bmm", a.size(2), b.size(1));
  Tensor out = untracked([&] { return matmul_impl(a, b, nullptr, Activation::None, "bmm"); });
  if (autograd::needs_grad({&a, &b})) record_matmul(a, b, out, "bmm_backward");
  return out;
}

Tensor addmm(const Tensor& input, const Tensor& a, const Tensor& b, double beta, double alpha) {
  if (auto dt = autocast::target("addmm", {&input, &a, &b})) {
    autocast::Suspend off;
    return addmm(autocast::cast(input, *dt), autocast::cast(a, *dt), autocast::cast(b, *dt), beta, alpha);
  }
  check_pair(a, b, "addmm", "mat1", "mat2");
  check_pair(input, a, "addmm", "input", "mat1");
  LEPTON_CHECK(a.dim() == 2 && b.dim() == 2, Value, "addmm: expected 2-D matrices, got ", shape_str(a.shape()),
               " and ", shape_str(b.shape()));
  if (a.size(1) != b.size(0)) shape_error(a, b, "addmm", a.size(1), b.size(0));
  Tensor out = Tensor::empty({a.size(0), b.size(1)}, a.dtype(), a.device());
  {
    autograd::NoGradGuard no_grad;
    if (beta != 0) copy_(out, expand(input, out.shape()));  // errors name the shapes if input can't broadcast
    if (out.numel() > 0) gemm_into(out, a, b, nullptr, Activation::None, alpha, beta, "addmm");
  }
  if (autograd::needs_grad({&input, &a, &b})) record_addmm(input, a, b, beta, alpha, out);
  return out;
}

}  // namespace lepton::ops
