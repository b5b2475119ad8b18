// Convolution and pooling ops (conv.cpp, pool.cpp), NCHW with torch's semantics: a 3-D input
// is one unbatched image [C, H, W]. Float32 and float64; each records its backward node.
#pragma once
#include <utility>

#include "lepton/ops/ops.h"

namespace lepton::ops {

struct Conv2dOptions {
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};  // zeros on both sides of the rows / columns
  int64_t dilation[2] = {1, 1};
  int64_t groups = 1;
  // padding='same' (stride 1 only): the output keeps the input's size; `padding` is ignored and
  // an odd total padding puts the extra row/column after the input, as torch does.
  bool same = false;
};
// weight [out_channels, in_channels / groups, kH, kW], bias [out_channels].
Tensor conv2d(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias, const Conv2dOptions& o);

// Whether conv2d runs the direct-loop reference kernels instead of the fast ones (for tests);
// starts true when the environment has LEPTON_CONV=reference.
void set_conv_reference(bool on);
bool conv_reference();

struct Pool2dOptions {
  int64_t kernel[2] = {1, 1};
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};
  int64_t dilation[2] = {1, 1};  // max only
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg only
  int64_t divisor_override = 0;   // avg only; 0 means none
};
// (values, int64 flat index h·W + w of each maximum within its input plane)
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, const Pool2dOptions& o);
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& o);  // keeps indices only for backward
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& o);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace lepton::ops
