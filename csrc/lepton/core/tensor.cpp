#include "lepton/core/tensor.h"

#include <sstream>

#include "lepton/core/error.h"

namespace lepton {

int64_t shape_numel(const Shape& shape) {
  for (int64_t s : shape)
    if (s == 0) return 0;
  int64_t n = 1;
  for (int64_t s : shape)
    // a wrapped product would make a huge shape look small (or empty) to the allocator
    LEPTON_CHECK(!__builtin_mul_overflow(n, s, &n), Value, "shape ", shape_str(shape), " has too many elements");
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    st[d] = acc;
    acc *= shape[d] > 1 ? shape[d] : 1;
  }
  return st;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = ndim > 0 ? ndim : 1;  // a 0-d tensor accepts dim 0 and -1, as in PyTorch
  LEPTON_CHECK(dim >= -n && dim < n, Index, op, ": dimension ", dim, " is out of range for a tensor with ",
               ndim, " dimension(s) (expected in [", -n, ", ", n - 1, "])");
  return dim < 0 ? dim + n : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    LEPTON_CHECK(da == db || da == 1 || db == 1, Value, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                 " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) LEPTON_CHECK(s >= 0, Value, "negative dimension in shape ", shape_str(shape));
  int64_t n = shape_numel(shape);
  // Guard the byte count against overflow before asking the allocator.
  LEPTON_CHECK(n <= (int64_t(1) << 60) / int64_t(lepton::itemsize(dtype)), OutOfMemory,
               "out of memory: a tensor of shape ", shape_str(shape), " is too large");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = allocate_storage(size_t(n) * lepton::itemsize(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::view_of(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
                       DType dtype) {
  LEPTON_CHECK(shape.size() == strides.size(), Value, "view: shape ", shape_str(shape), " and strides ",
               shape_str(strides), " differ in length");
  // Check the extent of the view against the storage.
  int64_t lo = offset, hi = offset;
  bool empty = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    LEPTON_CHECK(shape[d] >= 0, Value, "view: negative dimension in shape ", shape_str(shape));
    if (shape[d] == 0) empty = true;
    int64_t span = (shape[d] - 1) * strides[d];
    (span < 0 ? lo : hi) += span;
  }
  int64_t cap = int64_t(storage->nbytes / lepton::itemsize(dtype));
  LEPTON_CHECK(empty || (lo >= 0 && hi < cap), Value, "view: shape ", shape_str(shape), " with strides ",
               shape_str(strides), " and offset ", offset, " reaches outside a storage of ", cap, " elements");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

// wrap_dim lets a 0-d tensor take dim 0 (for reductions); a 0-d tensor has no size to read
int64_t Tensor::size(int64_t d) const {
  LEPTON_CHECK(dim() > 0, Index, "size: dimension specified as ", d, " but the tensor has no dimensions");
  return impl_->shape[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  LEPTON_CHECK(dim() > 0, Index, "stride: dimension specified as ", d, " but the tensor has no dimensions");
  return impl_->strides[wrap_dim(d, dim(), "stride")];
}
int64_t Tensor::numel() const { return shape_numel(impl_->shape); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (impl_->shape[d] == 1) continue;
    if (impl_->strides[d] != expected) return numel() == 0;
    expected *= impl_->shape[d];
  }
  return true;
}

}  // namespace lepton
