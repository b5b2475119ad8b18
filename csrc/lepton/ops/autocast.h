// Automatic mixed precision (torch.autocast): a per-thread, per-device-type switch and dtype,
// and the casts an op applies to its arguments on entry. Each op that autocast covers asks
// `target` with its torch name; the policy comes from torch's own op lists (autocast.cpp).
// Casts are ordinary differentiable `to` ops, so gradients reach float32 parameters in float32.
// Nothing is cached: a cast costs one pass over the tensor each time an op runs.
#pragma once
#include <cstddef>
#include <initializer_list>
#include <optional>

#include "lepton/core/tensor.h"

namespace lepton::autocast {

bool is_enabled(DeviceType d);
void set_enabled(DeviceType d, bool on);
DType get_dtype(DeviceType d);      // defaults as torch: cuda float16, cpu bfloat16
void set_dtype(DeviceType d, DType dtype);  // float16 or bfloat16, else TypeError

// While alive, autocast is off on this thread: an op's own internals and the backward pass run
// on the dtypes they were given (torch excludes its Autocast dispatch key the same way).
class Suspend {
 public:
  // Lifts or restores a suspension from outside (activation checkpointing recomputes a forward
  // pass inside backward, under the autocast state that pass had); returns the previous flag.
  static bool set(bool suspended);
  Suspend();
  ~Suspend();
  Suspend(const Suspend&) = delete;
  Suspend& operator=(const Suspend&) = delete;

 private:
  bool prev_;
};

// The dtype op `op` runs in under autocast for these arguments (null ones are skipped), or
// nullopt when autocast is off for the first argument's device type, the op is on no list, or
// no eligible argument (floating, not float64; torch's is_eligible) would change.
std::optional<DType> target(const char* op, const Tensor* const* args, size_t count);
inline std::optional<DType> target(const char* op, std::initializer_list<const Tensor*> args) {
  return target(op, args.begin(), args.size());
}

// t cast to dtype when eligible (floating, not float64); otherwise t itself.
Tensor cast(const Tensor& t, DType dtype);
std::optional<Tensor> cast(const std::optional<Tensor>& t, DType dtype);

inline bool is_16bit(DType t) { return t == DType::Float16 || t == DType::BFloat16; }

}  // namespace lepton::autocast
