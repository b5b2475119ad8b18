// Kernels of the gradient-scaling family (ops/amp.cpp): torch's
// _amp_foreach_non_finite_check_and_unscale_ and _amp_update_scale_. Registered by
// cpu/amp.cpp and cuda/amp.cu.
#pragma once
#include <cstdint>

#include "lepton/core/dispatch.h"

namespace lepton {

// Multiplies every element of `count` contiguous tensors of one dtype by *inv_scale in place
// (in float for 16-bit storage) and sets *found_inf = 1 when any element was inf or NaN before
// scaling. found_inf and inv_scale are float32 scalars in the tensors' device memory, so the
// GPU path never waits for the host.
struct AmpUnscaleArgs {
  int64_t count = 0;
  const int64_t* numel = nullptr;  // of each tensor
  void* const* data = nullptr;
  float* found_inf = nullptr;
  const float* inv_scale = nullptr;
};

// After a step: scale *= backoff and tracker = 0 if *found_inf; else tracker += 1 and, when it
// reaches growth_interval, scale *= growth (kept only if finite) and tracker = 0.
struct AmpUpdateArgs {
  float* scale = nullptr;
  int32_t* growth_tracker = nullptr;
  const float* found_inf = nullptr;
  double growth_factor = 2, backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

struct AmpKernels {
  void (*unscale)(const AmpUnscaleArgs&);  // keyed by the tensors' dtype
  void (*update_scale)(const AmpUpdateArgs&);
};

extern KernelTable<const AmpKernels*> amp_kernels;

}  // namespace lepton
