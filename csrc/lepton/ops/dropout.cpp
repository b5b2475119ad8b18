// Dropout as one fused kernel over counter-based random numbers: the forward takes a range of
// the global generator's counters and the backward applies the same (seed, offset) to the
// gradient, which makes the same mask again; nothing of the mask is stored.
#include <mutex>

#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/norm.h"

namespace lepton::ops {

namespace {

// The generator's (seed, offset) for a dropout of n elements, advancing it past them.
// Serialised against other dropouts; random_() takes its own lock in random.cpp, so a dropout
// and a random fill on different threads at the same moment could share counters.
std::pair<uint64_t, uint64_t> take_counters(int64_t n) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  const auto [seed, offset] = rng_state();
  set_rng_state(seed, offset + dropout_counters(n));
  return {seed, offset};
}

// out = x·mask(seed, offset)/(1-p), recorded so that its backward is the same op on the gradient
// (which makes it differentiable any number of times).
Tensor apply_mask(const Tensor& x, const Tensor& out, double p, uint64_t seed, uint64_t offset) {
  DropoutArgs a;
  a.x = in_ptr(x), a.out = out_ptr(out), a.n = x.numel(), a.seed = seed, a.offset = offset, a.p = p;
  if (a.n) norm_kernel(x, "dropout")->dropout(a);
  return out;
}

void record_dropout(const Tensor& input, const Tensor& out, double p, uint64_t seed, uint64_t offset) {
  autograd::record("dropout_backward", {&input}, {&out},
                   [p, seed, offset](const autograd::Node&, autograd::TensorList& g) {
    Tensor gy;
    {
      autograd::NoGradGuard no_grad;
      gy = contiguous(g[0]);
    }
    Tensor gx = apply_mask(gy, Tensor::empty(gy.shape(), gy.dtype(), gy.device()), p, seed, offset);
    if (autograd::needs_grad({&g[0]})) record_dropout(g[0], gx, p, seed, offset);
    return autograd::TensorList{gx};
  });
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool inplace) {
  const char* name = inplace ? "dropout_" : "dropout";
  LEPTON_CHECK(p >= 0 && p <= 1, Value, "dropout probability has to be between 0 and 1, but got ", p);
  LEPTON_CHECK(is_floating(x.dtype()), Type, name, ": input must be a floating-point tensor, got ",
               dtype_name(x.dtype()));
  if (inplace) autograd::check_inplace(x, name);
  const auto [seed, offset] = take_counters(x.numel());
  Tensor src, out;
  {
    autograd::NoGradGuard no_grad;
    src = contiguous(x);
    out = inplace && src.same_storage(x) ? src : Tensor::empty(x.shape(), x.dtype(), x.device());
  }
  apply_mask(src, out, p, seed, offset);
  if (inplace) {
    if (!out.same_storage(x)) {
      autograd::NoGradGuard no_grad;
      copy_(x, out);
    }
    x.bump_version();
    if (autograd::needs_grad({&x})) record_dropout(x, x, p, seed, offset);
    return x;
  }
  if (autograd::needs_grad({&x})) record_dropout(x, out, p, seed, offset);
  return out;
}

}  // namespace lepton::ops
