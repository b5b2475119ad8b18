// Autocast state and policies. The lists are torch's (aten/src/ATen/autocast_mode.cpp,
// documented under "Autocast Op Reference"), restricted to the ops Lepton has.
#include "lepton/ops/autocast.h"

#include <string_view>

#include "lepton/core/error.h"
#include "lepton/ops/ops.h"

namespace lepton::autocast {
namespace {

struct State {
  bool enabled[kNumDeviceTypes] = {false, false};
  DType dtype[kNumDeviceTypes] = {DType::BFloat16, DType::Float16};
  bool suspended = false;
};
thread_local State tl_state;

// Ops that run in the autocast dtype (the same on both device types).
constexpr std::string_view kLowerPrecision[] = {"matmul", "mm", "bmm", "addmm", "linear", "conv2d",
                                                "scaled_dot_product_attention"};
// Ops that run in float32 on both device types: the losses. On the CPU that is all (softmax,
// norms and reductions keep bfloat16 there, as in torch).
constexpr std::string_view kFloat32[] = {"mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                         "nll_loss", "cross_entropy", "smooth_l1_loss", "huber_loss", "kl_div"};
// CUDA also runs these in float32: the exp/log family, pow, layer_norm and logsumexp, and
// softmax/log_softmax/sum/prod (torch's "fp32_set_opt_dtype" ops: float32 output).
constexpr std::string_view kCudaFloat32[] = {"exp", "log", "log1p", "log2", "expm1", "pow", "reciprocal", "rsqrt",
                                             "layer_norm", "softmax", "log_softmax", "sum", "prod", "logsumexp"};

template <size_t N>
bool listed(const std::string_view (&list)[N], std::string_view op) {
  for (std::string_view s : list)
    if (s == op) return true;
  return false;
}

bool eligible(const Tensor& t) { return t.defined() && is_floating(t.dtype()) && t.dtype() != DType::Float64; }

void check_device(DeviceType d) {
  LEPTON_CHECK(int(d) >= 0 && int(d) < kNumDeviceTypes, Value, "autocast: unknown device type ", int(d));
}

}  // namespace

bool is_enabled(DeviceType d) { return tl_state.enabled[int(d)]; }
void set_enabled(DeviceType d, bool on) {
  check_device(d);
  tl_state.enabled[int(d)] = on;
}
DType get_dtype(DeviceType d) { return tl_state.dtype[int(d)]; }
void set_dtype(DeviceType d, DType dtype) {
  check_device(d);
  LEPTON_CHECK(dtype == DType::Float16 || dtype == DType::BFloat16, Type,
               "autocast: the autocast dtype must be float16 or bfloat16, got ", dtype_name(dtype));
  tl_state.dtype[int(d)] = dtype;
}

Suspend::Suspend() : prev_(tl_state.suspended) { tl_state.suspended = true; }
Suspend::~Suspend() { tl_state.suspended = prev_; }
bool Suspend::set(bool suspended) {
  const bool prev = tl_state.suspended;
  tl_state.suspended = suspended;
  return prev;
}

std::optional<DType> target(const char* op, const Tensor* const* args, size_t count) {
  const State& s = tl_state;
  if (s.suspended || count == 0 || !args[0]) return std::nullopt;
  const DeviceType d = args[0]->device().type;
  if (!s.enabled[int(d)]) return std::nullopt;
  DType dtype;
  if (listed(kLowerPrecision, op)) dtype = s.dtype[int(d)];
  else if (listed(kFloat32, op) || (d == DeviceType::CUDA && listed(kCudaFloat32, op))) dtype = DType::Float32;
  else return std::nullopt;
  for (size_t i = 0; i < count; ++i)
    if (args[i] && eligible(*args[i]) && args[i]->dtype() != dtype) return dtype;
  return std::nullopt;
}

Tensor cast(const Tensor& t, DType dtype) {
  return eligible(t) && t.dtype() != dtype ? ops::to(t, std::nullopt, dtype, false) : t;
}
std::optional<Tensor> cast(const std::optional<Tensor>& t, DType dtype) {
  if (!t) return std::nullopt;
  return cast(*t, dtype);
}

}  // namespace lepton::autocast
