// Tensor: a strided view (shape, strides, offset, dtype) of a shared Storage.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lepton/core/dtype.h"
#include "lepton/core/storage.h"

namespace lepton {

using Shape = std::vector<int64_t>;

namespace autograd {
struct AutogradMeta;
}

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::shared_ptr<autograd::AutogradMeta> autograd;  // null until the tensor takes part in autograd
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  // A new contiguous tensor with fresh storage.
  static Tensor empty(const Shape& shape, DType dtype, Device device);
  // A view of `storage` with the given geometry (checked against the storage size).
  static Tensor view_of(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
                        DType dtype);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device; }
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }
  int64_t dim() const { return int64_t(impl_->shape.size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  size_t itemsize() const { return lepton::itemsize(dtype()); }
  size_t nbytes() const { return size_t(numel()) * itemsize(); }
  bool is_contiguous() const;
  void* data_ptr() const {
    return static_cast<char*>(impl_->storage->data) + impl_->offset * int64_t(itemsize());
  }
  template <class T>
  T* data() const { return static_cast<T*>(data_ptr()); }
  TensorImpl* impl() const { return impl_.get(); }
  // How many Tensor handles share this tensor (autograd keeps a gradient only if it alone has it).
  long use_count() const { return impl_.use_count(); }
  bool same_storage(const Tensor& o) const { return impl_->storage == o.impl_->storage; }
  // Another tensor over the same memory without autograd history.
  Tensor alias() const { return view_of(impl_->storage, impl_->shape, impl_->strides, impl_->offset, impl_->dtype); }
  void bump_version() const { ++impl_->storage->version; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

Shape contiguous_strides(const Shape& shape);
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);                // "[2, 3]"
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);  // checks range, wraps negatives
// Broadcast two shapes NumPy-style, naming `op` in the error.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace lepton
