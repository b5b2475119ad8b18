// Fused optimizer steps and list norms: check the tensor lists (one length, shape per index,
// one floating dtype and device, contiguous), gather their pointers and call one kernel for
// the whole list. Tensors are updated in place, outside autograd, as torch's optimizers do
// under no_grad; each one's version is bumped so stale saved tensors are still detected.
#include "lepton/ops/optim.h"

#include <cmath>
#include <optional>

#include "lepton/core/error.h"
#include "lepton/ops/iter.h"

namespace lepton {

KernelTable<const OptimizerKernels*> optimizer_kernels("optimizer");
KernelTable<const OptimizerKernels*> optimizer_reference_kernels("optimizer (reference)");

namespace ops {

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
      check_one(t, first_name, i, t.dtype());
      numel_.push_back(t.numel());
    }
  }
  // Pointers of a list parallel to the first one (same length, shapes and device; the first
  // list's dtype unless `dtype` is given).
  std::vector<void*> add(const std::vector<Tensor>& list, const char* name, bool written = true,
                         std::optional<DType> dtype = std::nullopt) {
    LEPTON_CHECK(list.size() == first_.size(), Value, op_, ": expected ", first_.size(), " ", name, " (one per param), got ",
                 list.size());
    std::vector<void*> ptrs(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const Tensor& t = list[i];
      LEPTON_CHECK(t.defined(), Value, op_, ": ", name, "[", i, "] is None");
      LEPTON_CHECK(t.shape() == first_[i].shape(), Value, op_, ": ", name, "[", i, "] has shape ", shape_str(t.shape()),
                   " but params[", i, "] has shape ", shape_str(first_[i].shape()));
      check_one(t, name, i, dtype.value_or(this->dtype()));
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
  void check_one(const Tensor& t, const char* name, size_t i, DType dtype) const {
    const Tensor& ref = first_[0];
    LEPTON_CHECK(t.dtype() == dtype, Type, op_, ": ", name, "[", i, "] has dtype ", dtype_name(t.dtype()), " but ",
                 dtype == ref.dtype() ? "params[0] has " : "it must be ", dtype_name(dtype),
                 dtype == ref.dtype() ? " (one call takes one dtype)" : "");
    LEPTON_CHECK(t.device() == ref.device(), Value, op_, ": ", name, "[", i, "] is on ", t.device().str(),
                 " but params[0] is on ", ref.device().str());
    LEPTON_CHECK(t.is_contiguous(), Value, op_, ": ", name, "[", i, "] of shape ", shape_str(t.shape()),
                 " is not contiguous");
  }

  const char* op_;
  const std::vector<Tensor>& first_;
  std::vector<int64_t> numel_;
};

// The states' dtype: float32 with master weights (which only 16-bit params may have).
std::optional<DType> state_dtype(const char* op, const ListPack& pack, const std::vector<Tensor>& masters) {
  if (masters.empty()) return std::nullopt;
  LEPTON_CHECK(pack.dtype() == DType::Float16 || pack.dtype() == DType::BFloat16, Type, op,
               ": master weights are for float16 and bfloat16 params, but params have dtype ",
               dtype_name(pack.dtype()));
  return DType::Float32;
}

}  // namespace

void fused_sgd_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& momentum_buffers, const std::vector<Tensor>& masters,
                const SgdHyper& options, bool reference) {
  const char* op = "_fused_sgd_";
  LEPTON_CHECK(options.momentum != 0 || momentum_buffers.empty(), Value, op,
               ": momentum is 0 but momentum buffers were given");
  LEPTON_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0), Value, op,
               ": nesterov momentum requires a momentum and zero dampening");
  ListPack pack(op, params, "params");
  if (pack.empty()) return;
  const std::optional<DType> state = state_dtype(op, pack, masters);
  std::vector<void*> p = pack.add(params, "params"), g = pack.add(grads, "grads", false), buf, master;
  if (options.momentum != 0) buf = pack.add(momentum_buffers, "momentum_buffers", true, state);
  if (state) master = pack.add(masters, "masters", true, state);
  SgdArgs a;
  a.list = pack.sizes();
  a.param = p.data();
  a.grad = g.data();
  a.momentum_buffer = buf.empty() ? nullptr : buf.data();
  a.master = master.empty() ? nullptr : master.data();
  a.h = options;
  pack.kernels(reference).sgd(a);
}

void fused_adam_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& exp_avgs,
                 const std::vector<Tensor>& exp_avg_sqs, const std::vector<Tensor>& max_exp_avg_sqs,
                 const std::vector<Tensor>& masters, const std::vector<int64_t>& steps, const AdamHyper& options,
                 bool reference) {
  const char* op = options.decoupled_weight_decay ? "_fused_adamw_" : "_fused_adam_";
  LEPTON_CHECK(options.amsgrad || max_exp_avg_sqs.empty(), Value, op, ": max_exp_avg_sqs given without amsgrad");
  const double beta1 = options.beta1, beta2 = options.beta2;
  LEPTON_CHECK(0 <= beta1 && beta1 < 1 && 0 <= beta2 && beta2 < 1, Value, op, ": betas must be in [0, 1), got (", beta1,
               ", ", beta2, ")");
  ListPack pack(op, params, "params");
  LEPTON_CHECK(steps.size() == params.size(), Value, op, ": expected ", params.size(), " state_steps, got ", steps.size());
  if (pack.empty()) return;
  const std::optional<DType> state = state_dtype(op, pack, masters);
  std::vector<void*> p = pack.add(params, "params"), g = pack.add(grads, "grads", false),
                     m = pack.add(exp_avgs, "exp_avgs", true, state), v = pack.add(exp_avg_sqs, "exp_avg_sqs", true, state),
                     vmax, master;
  if (options.amsgrad) vmax = pack.add(max_exp_avg_sqs, "max_exp_avg_sqs", true, state);
  if (state) master = pack.add(masters, "masters", true, state);
  // torch's bias corrections, in double, per tensor (a group's tensors may differ in steps)
  std::vector<double> step_size(steps.size()), bc2_sqrt(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    LEPTON_CHECK(steps[i] >= 1, Value, op, ": state_steps[", i, "] is ", steps[i], "; steps count from 1");
    step_size[i] = options.lr / (1 - std::pow(beta1, double(steps[i])));
    bc2_sqrt[i] = std::pow(1 - std::pow(beta2, double(steps[i])), 0.5);
  }
  AdamArgs a;
  a.list = pack.sizes();
  a.param = p.data();
  a.grad = g.data();
  a.exp_avg = m.data();
  a.exp_avg_sq = v.data();
  a.max_exp_avg_sq = options.amsgrad ? vmax.data() : nullptr;
  a.master = master.empty() ? nullptr : master.data();
  a.step_size = step_size.data();
  a.bias_correction2_sqrt = bc2_sqrt.data();
  a.h = options;
  pack.kernels(reference).adam(a);
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

}  // namespace ops
}  // namespace lepton
