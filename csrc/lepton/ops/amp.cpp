// Gradient scaling ops: argument checks, grouping by dtype, and the kernel calls. No autograd:
// they act on .grad tensors and scaler state in place.
#include "lepton/ops/amp.h"

#include <map>

#include "lepton/core/error.h"
#include "lepton/ops/amp_kernels.h"
#include "lepton/ops/ops.h"

namespace lepton {

KernelTable<const AmpKernels*> amp_kernels("amp");

namespace ops {
namespace {

void check_scalar(const Tensor& t, DType dtype, const Device& device, const char* op, const char* what) {
  LEPTON_CHECK(t.defined() && t.numel() == 1 && t.dtype() == dtype, Type, op, ": ", what, " must be a one-element ",
               dtype_name(dtype), " tensor, got ", t.defined() ? dtype_name(t.dtype()) : "None",
               t.defined() ? " of shape " + shape_str(t.shape()) : std::string());
  LEPTON_CHECK(t.device() == device, Value, op, ": ", what, " is on ", t.device().str(), " but expected ",
               device.str());
  LEPTON_CHECK(t.is_contiguous(), Value, op, ": ", what, " must be contiguous");
}

}  // namespace

void amp_foreach_non_finite_check_and_unscale_(const std::vector<Tensor>& tensors, const Tensor& found_inf,
                                               const Tensor& inv_scale) {
  constexpr const char* op = "_amp_foreach_non_finite_check_and_unscale_";
  LEPTON_CHECK(found_inf.defined(), Type, op, ": found_inf must be a tensor");
  const Device dev = found_inf.device();
  check_scalar(found_inf, DType::Float32, dev, op, "found_inf");
  check_scalar(inv_scale, DType::Float32, dev, op, "inv_scale");
  // Non-contiguous tensors are unscaled through a contiguous copy, written back afterwards.
  std::map<DType, std::vector<Tensor>> groups;
  std::vector<std::pair<Tensor, Tensor>> write_back;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    LEPTON_CHECK(t.defined(), Type, op, ": tensor ", i, " is None");
    LEPTON_CHECK(is_floating(t.dtype()), Type, op, ": tensor ", i, " must be floating point, got ",
                 dtype_name(t.dtype()));
    LEPTON_CHECK(t.device() == dev, Value, op, ": tensor ", i, " is on ", t.device().str(), " but found_inf is on ",
                 dev.str());
    if (t.numel() == 0) continue;
    Tensor c = t.is_contiguous() ? t : contiguous(t);
    if (!t.is_contiguous()) write_back.emplace_back(t, c);
    groups[t.dtype()].push_back(c);
  }
  for (auto& [dtype, list] : groups) {
    std::vector<int64_t> numel;
    std::vector<void*> data;
    for (const Tensor& t : list) numel.push_back(t.numel()), data.push_back(t.data_ptr());
    AmpUnscaleArgs a;
    a.count = int64_t(list.size());
    a.numel = numel.data();
    a.data = data.data();
    a.found_inf = static_cast<float*>(found_inf.data_ptr());
    a.inv_scale = static_cast<const float*>(inv_scale.data_ptr());
    amp_kernels.get(dev.type, dtype, op)->unscale(a);
    for (const Tensor& t : list) t.bump_version();
  }
  for (auto& [t, c] : write_back) copy_(t, c);
  found_inf.bump_version();
}

void amp_update_scale_(const Tensor& scale, const Tensor& growth_tracker, const Tensor& found_inf,
                       double growth_factor, double backoff_factor, int64_t growth_interval) {
  constexpr const char* op = "_amp_update_scale_";
  LEPTON_CHECK(scale.defined(), Type, op, ": scale must be a tensor");
  const Device dev = scale.device();
  check_scalar(scale, DType::Float32, dev, op, "scale");
  check_scalar(growth_tracker, DType::Int32, dev, op, "growth_tracker");
  check_scalar(found_inf, DType::Float32, dev, op, "found_inf");
  LEPTON_CHECK(growth_interval > 0, Value, op, ": growth_interval must be positive, got ", growth_interval);
  AmpUpdateArgs a;
  a.scale = static_cast<float*>(scale.data_ptr());
  a.growth_tracker = static_cast<int32_t*>(growth_tracker.data_ptr());
  a.found_inf = static_cast<const float*>(found_inf.data_ptr());
  a.growth_factor = growth_factor, a.backoff_factor = backoff_factor, a.growth_interval = growth_interval;
  amp_kernels.get(dev.type, DType::Float32, op)->update_scale(a);
  scale.bump_version();
  growth_tracker.bump_version();
}

}  // namespace ops
}  // namespace lepton
