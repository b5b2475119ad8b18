// Tensors made from a value or a range.
#include <cmath>

#include "lepton/core/error.h"
#include "lepton/ops/ops.h"

namespace lepton::ops {

Tensor full(const Shape& shape, Scalar value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  fill_(t, value);
  return t;
}

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  LEPTON_CHECK(step != 0, Value, "arange: step must be nonzero");
  LEPTON_CHECK(std::isfinite(start) && std::isfinite(end), Value, "arange: start and end must be finite, got ",
               start, " and ", end);
  LEPTON_CHECK((step > 0 && end >= start) || (step < 0 && end <= start), Value,
               "arange: upper bound and step sign are inconsistent (start=", start, ", end=", end, ", step=", step, ")");
  const double count = std::ceil((end - start) / step);
  LEPTON_CHECK(count < double(int64_t(1) << 48), Value, "arange: too many elements (", count, ")");
  const int64_t n = int64_t(count);
  // Computed on the host in double (or int64) and then cast, so every device gets the same values.
  if (is_floating(dtype)) {
    Tensor host = Tensor::empty({n}, DType::Float64, Device{});
    double* p = host.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = start + double(i) * step;
    return to(host, device, dtype, false);
  }
  Tensor host = Tensor::empty({n}, DType::Int64, Device{});
  int64_t* p = host.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = int64_t(start) + i * int64_t(step);
  return to(host, device, dtype, false);
}

Tensor linspace(double start, double end, int64_t steps, DType dtype, Device device) {
  LEPTON_CHECK(steps >= 0, Value, "linspace: number of steps must be non-negative, got ", steps);
  Tensor host = Tensor::empty({steps}, DType::Float64, Device{});
  double* p = host.data<double>();
  const double delta = steps > 1 ? (end - start) / double(steps - 1) : 0.0;
  // Fill the second half from the end so both endpoints are exact (a single step is `start`).
  for (int64_t i = 0; i < steps; ++i)
    p[i] = i < (steps + 1) / 2 ? start + delta * double(i) : end - delta * double(steps - 1 - i);
  return to(host, device, dtype, false);
}

}  // namespace lepton::ops
