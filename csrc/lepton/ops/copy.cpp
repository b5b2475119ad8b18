// Copies: broadcasting, casting and cross-device copy_, fills, contiguous/clone/to, cat/stack.
#include <charconv>
#include <cstdint>
#include <string>

#include "lepton/core/cuda_backend.h"
#include "lepton/core/error.h"
#include "lepton/ops/grad.h"
#include "lepton/ops/iter.h"

namespace lepton::ops {

namespace {

bool overlaps(const Tensor& a, const Tensor& b) { return a.same_storage(b) && a.numel() > 0 && b.numel() > 0; }

void copy_same_device(const Tensor& dst, const Tensor& src) {
  use_device(dst.device());
  StridedIter it = make_iter(dst, {&src});
  copy_kernels.get(dst.device().type, dst.dtype(), "copy")(it, src.dtype());
}

void run_fill(const Tensor& dst, Scalar value) {
  if (dst.numel() == 0) return;
  use_device(dst.device());
  StridedIter it = make_iter(dst, {});
  fill_kernels.get(dst.device().type, dst.dtype(), "fill")(it, value);
}

// torch's rule for storing a number (c10::overflows): an integer dtype takes integers in its
// range (uint8 also -255..-1, as their two's complement) and finite floats in its range, which
// are then truncated; floating and bool dtypes take any number.
bool fits(const Scalar& v, DType dtype) {
  if (is_floating(dtype) || dtype == DType::Bool || v.kind == Scalar::Kind::Bool) return true;
  if (dtype == DType::Int64)  // (2^63 itself does not fit; torch's double comparison lets it wrap)
    return v.kind == Scalar::Kind::Int || (v.f >= -0x1p63 && v.f < 0x1p63);
  const int64_t lo = dtype == DType::UInt8 ? 0 : dtype == DType::Int8 ? INT8_MIN : INT32_MIN;
  const int64_t hi = dtype == DType::UInt8 ? UINT8_MAX : dtype == DType::Int8 ? INT8_MAX : INT32_MAX;
  if (v.kind == Scalar::Kind::Int) return v.i <= hi && v.i >= (dtype == DType::UInt8 ? -hi : lo);
  return v.f >= double(lo) && v.f <= double(hi);  // false for NaN and +-inf
}

std::string number_str(const Scalar& v) {  // shortest round-trip form, as Python prints it: 1e+20, inf
  char buf[32];
  const auto end = v.kind == Scalar::Kind::Float ? std::to_chars(buf, buf + sizeof buf, v.f).ptr
                                                 : std::to_chars(buf, buf + sizeof buf, v.i).ptr;
  return std::string(buf, end);
}

}  // namespace

void copy_(const Tensor& dst, const Tensor& src) {
  autograd::check_inplace(dst, "copy_");
  if (autograd::needs_grad({&dst, &src})) {
    // dst's values now come from src alone: its history becomes src's (broadcast, cast, moved).
    const Tensor result = to(expand(src, dst.shape()), dst.device(), dst.dtype(), true);
    {
      autograd::NoGradGuard no_grad;
      copy_(dst, result);
    }
    if (autograd::requires_grad(result)) autograd::take_history(dst, result);
    else autograd::drop_history(dst);
    return;
  }
  Shape b = broadcast_shapes(src.shape(), dst.shape(), "copy_");
  LEPTON_CHECK(b == dst.shape(), Value, "copy_: source of shape ", shape_str(src.shape()),
               " cannot be broadcast to destination of shape ", shape_str(dst.shape()));
  dst.bump_version();
  if (dst.numel() == 0) return;
  if (dst.device() == src.device()) {
    // A source that shares memory with the destination is read from a snapshot.
    copy_same_device(dst, overlaps(dst, src) ? clone(src) : src);
    return;
  }
  if (src.device().is_cuda() && dst.device().is_cuda()) {  // between two GPUs, through the host
    copy_(dst, to(src, Device{}, std::nullopt, false));
    return;
  }
  if (dst.device().is_cuda()) {
    // Cast and lay out on the host, then one transfer.
    Tensor staged = contiguous(to(expand(src, dst.shape()), std::nullopt, dst.dtype(), false));
    Tensor target = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
    require_cuda(dst.device().index)
        .memcpy(target.data_ptr(), staged.data_ptr(), staged.nbytes(), CopyKind::HostToDevice, dst.device().index);
    if (!target.same_storage(dst)) copy_same_device(dst, target);
    return;
  }
  Tensor packed = contiguous(src);  // on the GPU
  Tensor host = Tensor::empty(packed.shape(), packed.dtype(), Device{});
  require_cuda(src.device().index)
      .memcpy(host.data_ptr(), packed.data_ptr(), packed.nbytes(), CopyKind::DeviceToHost, src.device().index);
  copy_same_device(dst, host);
}

void fill_(const Tensor& dst, Scalar value) {
  LEPTON_CHECK(fits(value, dst.dtype()), Runtime, "value cannot be converted to type ", dtype_name(dst.dtype()),
               " without overflow (got ", number_str(value), ")");
  autograd::check_inplace(dst, "fill_");
  autograd::drop_history(dst);  // constant values: no gradient flows back through them
  dst.bump_version();
  run_fill(dst, value);
}

Tensor scalar_tensor(Scalar value, DType dtype, Device device) {
  Tensor t = Tensor::empty({}, dtype, device);
  run_fill(t, value);
  return t;
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  return clone(t);
}

Tensor clone(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  if (t.numel() > 0) copy_same_device(out, t);
  if (autograd::needs_grad({&t}))
    autograd::record("clone_backward", {&t}, {&out}, [](const autograd::Node&, autograd::TensorList& g) {
      return autograd::TensorList{g[0]};
    });
  return out;
}

Tensor to(const Tensor& t, std::optional<Device> device, std::optional<DType> dtype, bool copy) {
  Device dev = device.value_or(t.device());
  DType dt = dtype.value_or(t.dtype());
  if (dev == t.device() && dt == t.dtype() && !copy) return t;
  Tensor out = Tensor::empty(t.shape(), dt, dev);
  {
    autograd::NoGradGuard no_grad;
    copy_(out, t);
  }
  if (autograd::needs_grad({&t})) {
    const Device in_dev = t.device();
    const DType in_dt = t.dtype();
    autograd::record("to_backward", {&t}, {&out}, [in_dev, in_dt](const autograd::Node&, autograd::TensorList& g) {
      return autograd::TensorList{to(g[0], in_dev, in_dt, false)};
    });
  }
  return out;
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  LEPTON_CHECK(!tensors.empty(), Value, "cat: expected a non-empty list of tensors");
  const Tensor& first = tensors[0];
  LEPTON_CHECK(first.dim() > 0, Value, "cat: zero-dimensional tensors cannot be concatenated");
  const int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  DType dtype = first.dtype();
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    LEPTON_CHECK(t.device() == first.device(), Value, "cat: expected all tensors on the same device, got ",
                 first.device().str(), " and ", t.device().str(), " (tensor ", i, ")");
    LEPTON_CHECK(t.dim() == first.dim(), Value, "cat: tensor ", i, " has ", t.dim(),
                 " dimensions but tensor 0 has ", first.dim());
    for (int64_t k = 0; k < t.dim(); ++k)
      LEPTON_CHECK(k == d || t.shape()[k] == shape[k], Value, "cat: sizes must match except in dimension ", d,
                   ", but tensor ", i, " has shape ", shape_str(t.shape()), " and tensor 0 has ",
                   shape_str(first.shape()));
    total += t.shape()[d];
    dtype = promote_types(dtype, t.dtype());
  }
  shape[d] = total;
  Tensor out = Tensor::empty(shape, dtype, first.device());
  Dims sizes;
  {
    autograd::NoGradGuard no_grad;
    int64_t at = 0;
    for (const Tensor& t : tensors) {
      int64_t n = t.shape()[d];
      if (n > 0) copy_(slice(out, d, at, at + n, 1), t);
      sizes.push_back(n);
      at += n;
    }
  }
  if (autograd::needs_grad(tensors)) {
    std::vector<DType> dtypes;
    for (const Tensor& t : tensors) dtypes.push_back(t.dtype());
    autograd::record("cat_backward", tensors, {out}, [sizes, d, dtypes](const autograd::Node&, autograd::TensorList& g) {
      autograd::TensorList parts = split(g[0], sizes, d);
      for (size_t i = 0; i < parts.size(); ++i) parts[i] = to(parts[i], std::nullopt, dtypes[i], false);
      return parts;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  LEPTON_CHECK(!tensors.empty(), Value, "stack: expected a non-empty list of tensors");
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    LEPTON_CHECK(tensors[i].shape() == tensors[0].shape(), Value, "stack: expects each tensor to be equal size, but tensor 0 has shape ",
                 shape_str(tensors[0].shape()), " and tensor ", i, " has shape ", shape_str(tensors[i].shape()));
    parts.push_back(unsqueeze(tensors[i], d));
  }
  return cat(parts, d);
}

}  // namespace lepton::ops
