// Fused optimizer steps and list norms: check the tensor lists (one length, shape per index,
// one floating dtype and device, contiguous), gather their pointers and call one kernel for
// the whole list. Tensors are updated in place, outside autograd, as torch's optimizers do
// under no_grad; each one's version is bumped so stale saved tensors are still detected.
#include <cmath>
#include <string>

#include "lepton/core/error.h"
#include "lepton/ops/iter.h"
#include "lepton/ops/ops.h"

namespace lepton::ops {

namespace {

// The pointers and sizes of a group of parallel lists (params, grads, states...).
class ListPack {
 public:
  ListPack(const char* op, const std::vector<Tensor>& first, const char* first_name) : op_(op), first_(first) {
    numel_.reserve(first.size());
    for (size_t i = 0; i < first.size(); ++i) {
      const Tensor& t = first[i];
      LEPTON_CHECK(t.defined(), Value, op, ": ", first_name, "[", i, "] is None");
      LEPTON_CHECK(is_floating(t.dtype()), Type, op, ": ", first_name, "[", i, "] has dtype ",
                   dtype_name(t.dtype()), "; optimizers need floating-point tensors");
      check_one(t, first_name, i);
      numel_.push_back(t.numel());
    }
  }
  // Pointers of a list parallel to the first one (same length, shapes, dtype, device).
  std::vector<void*> add(const std::vector<Tensor>& list, const char* name, bool written = true) {
    LEPTON_CHECK(list.size() == first_.size(), Value, op_, ": expected ", first_.size(), " ", name, " (one per param), got ",
                 list.size());
    std::vector<void*> ptrs(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const Tensor& t = list[i];
      LEPTON_CHECK(t.defined(), Value, op_, ": ", name, "[", i, "] is None");
      LEPTON_CHECK(t.shape() == first_[i].shape(), Value, op_, ": ", name, "[", i, "] has shape ", shape_str(t.shape()),
                   " but params[", i, "] has shape ", shape_str(first_[i].shape()));
      check_one(t, name, i);
      ptrs[i] = t.data_ptr();
      if (written) t.bump_version();
    }
    return ptrs;
  }
  ListSizes sizes() const { return {int64_t(numel_.size()), numel_.data()}; }
  bool empty() const { return first_.empty(); }
  DType dtype() const { return first_[0].dtype(); }
  Device device() const { return first_[0].device(); }
  const OptimizerKernels& kernels(bool reference) const {
    use_device(device());
    return *(reference ? optimizer_reference_kernels : optimizer_kernels).get(device().type, dtype(), op_);
  }

 private:
  void check_one(const Tensor& t, const char* name, size_t i) const {
    const Tensor& ref = first_[0];
    LEPTON_CHECK(t.dtype() == ref.dtype(), Type, op_, ": ", name, "[", i, "] has dtype ", dtype_name(t.dtype()),
                 " but params[0] has ", dtype_name(ref.dtype()), " (one call takes one dtype)");
    LEPTON_CHECK(t.device() == ref.device(), Value, op_, ": ", name, "[", i, "] is on ", t.device().str(),
                 " but params[0] is on ", ref.device().str());
    LEPTON_CHECK(t.is_contiguous(), Value, op_, ": ", name, "[", i, "] of shape ", shape_str(t.shape()),
                 " is not contiguous");
  }

  const char* op_;
  const std::vector<Tensor>& first_;
  std::vector<int64_t> numel_;
};

}  // namespace

void fused_sgd_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& momentum_buffers, const SgdOptions& o) {
  const char* op = "_fused_sgd_";
  LEPTON_CHECK(o.momentum != 0 || momentum_buffers.empty(), Value, op, ": momentum is 0 but momentum buffers were given");
  LEPTON_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), Value, op,
               ": nesterov momentum requires a momentum and zero dampening");
  ListPack pack(op, params, "params");
  if (pack.empty()) return;
  std::vector<void*> p = pack.add(params, "params"), g = pack.add(grads, "grads", false), buf;
  if (o.momentum != 0) buf = pack.add(momentum_buffers, "momentum_buffers");
  SgdArgs a;
  a.list = pack.sizes();
  a.param = p.data();
  a.grad = g.data();
  a.momentum_buffer = buf.empty() ? nullptr : buf.data();
  a.lr = o.lr;
  a.momentum = o.momentum;
  a.dampening = o.dampening;
  a.weight_decay = o.weight_decay;
  a.nesterov = o.nesterov;
  a.maximize = o.maximize;
  a.first_step = o.first_step;
  pack.kernels(o.reference).sgd(a);
}

void fused_adam_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& exp_avgs,
                 const std::vector<Tensor>& exp_avg_sqs, const std::vector<Tensor>& max_exp_avg_sqs,
                 const std::vector<int64_t>& steps, const AdamOptions& o) {
  const char* op = o.decoupled_weight_decay ? "_fused_adamw_" : "_fused_adam_";
  LEPTON_CHECK(o.amsgrad || max_exp_avg_sqs.empty(), Value, op, ": max_exp_avg_sqs given without amsgrad");
  LEPTON_CHECK(0 <= o.beta1 && o.beta1 < 1 && 0 <= o.beta2 && o.beta2 < 1, Value, op, ": betas must be in [0, 1), got (",
               o.beta1, ", ", o.beta2, ")");
  ListPack pack(op, params, "params");
  LEPTON_CHECK(steps.size() == params.size(), Value, op, ": expected ", params.size(), " state_steps, got ", steps.size());
  if (pack.empty()) return;
  std::vector<void*> p = pack.add(params, "params"), g = pack.add(grads, "grads", false),
                     m = pack.add(exp_avgs, "exp_avgs"), v = pack.add(exp_avg_sqs, "exp_avg_sqs"), vmax;
  if (o.amsgrad) vmax = pack.add(max_exp_avg_sqs, "max_exp_avg_sqs");
  // torch's bias corrections, in double, per tensor (a group's tensors may differ in steps)
  std::vector<double> step_size(steps.size()), bc2_sqrt(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    LEPTON_CHECK(steps[i] >= 1, Value, op, ": state_steps[", i, "] is ", steps[i], "; steps count from 1");
    step_size[i] = o.lr / (1 - std::pow(o.beta1, double(steps[i])));
    bc2_sqrt[i] = std::pow(1 - std::pow(o.beta2, double(steps[i])), 0.5);
  }
  AdamArgs a;
  a.list = pack.sizes();
  a.param = p.data();
  a.grad = g.data();
  a.exp_avg = m.data();
  a.exp_avg_sq = v.data();
  a.max_exp_avg_sq = o.amsgrad ? vmax.data() : nullptr;
  a.step_size = step_size.data();
  a.bias_correction2_sqrt = bc2_sqrt.data();
  a.lr = o.lr;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.eps = o.eps;
  a.weight_decay = o.weight_decay;
  a.decoupled_weight_decay = o.decoupled_weight_decay;
  a.maximize = o.maximize;
  pack.kernels(o.reference).adam(a);
}

double norm_of_list(const std::vector<Tensor>& tensors, double norm_type, bool reference) {
  const char* op = "_grad_norm";
  LEPTON_CHECK(norm_type > 0, Value, op, ": norm_type must be positive, got ", norm_type);
  ListPack pack(op, tensors, "tensors");
  if (pack.empty()) return 0;
  std::vector<void*> x = pack.add(tensors, "tensors", false);
  NormArgs a;
  a.list = pack.sizes();
  a.data = x.data();
  a.p = norm_type;
  const double s = pack.kernels(reference).norm(a);
  if (norm_type == 2) return std::sqrt(s);
  if (norm_type == 1 || std::isinf(norm_type)) return s;
  return std::pow(s, 1 / norm_type);
}

void scale_list_(const std::vector<Tensor>& tensors, double scale, bool reference) {
  ListPack pack("_foreach_mul_", tensors, "tensors");
  if (pack.empty()) return;
  std::vector<void*> x = pack.add(tensors, "tensors");
  ScaleArgs a;
  a.list = pack.sizes();
  a.data = x.data();
  a.scale = scale;
  pack.kernels(reference).scale(a);
}

}  // namespace lepton::ops
