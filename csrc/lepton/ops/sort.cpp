// sort, topk and cumsum along one dim: the kernels see a contiguous [outer, n, inner] block.
// cumsum's gradient is the reversed running sum of the output gradient.
#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/ops.h"
#include "lepton/ops/scatter.h"
#include "lepton/ops/sort.h"
#include "lepton/ops/sort_kernels.h"

namespace lepton {
KernelTable<const SortKernels*> sort_kernels("sort");
}

namespace lepton::ops {

namespace {

struct Lines {
  Tensor x;  // contiguous
  int64_t dim, outer = 1, n = 1, inner = 1;
};

Lines lines_of(const Tensor& x, int64_t dim, const char* op) {
  Lines l;
  l.dim = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), op);
  {
    autograd::NoGradGuard no_grad;
    l.x = contiguous(x);
  }
  for (int64_t d = 0; d < x.dim(); ++d) (d < l.dim ? l.outer : d == l.dim ? l.n : l.inner) *= x.size(d);
  return l;
}

// The first k (all when k < 0) positions of each line in sorted order, shaped like x with k along dim.
Tensor sort_indices(const Tensor& x, int64_t dim, bool descending, const char* op, int64_t k = -1) {
  const Lines l = lines_of(x, dim, op);
  Shape shape = x.shape();
  if (k >= 0 && x.dim()) shape[size_t(l.dim)] = k;
  Tensor index = Tensor::empty(shape, DType::Int64, x.device());
  if (index.numel()) {
    SortArgs a;
    a.x = static_cast<const char*>(l.x.data_ptr()), a.index = index.data<int64_t>();
    a.outer = l.outer, a.n = l.n, a.inner = l.inner, a.k = k < 0 ? l.n : k, a.descending = descending;
    sort_kernels.get(x.device().type, x.dtype(), op)->sort(a);
  }
  return index;
}

Tensor scan(const Tensor& x, int64_t dim, bool reverse) {
  const Lines l = lines_of(x, dim, "cumsum");
  const DType out_dtype = is_floating(x.dtype()) ? x.dtype() : DType::Int64;
  Tensor out = Tensor::empty(x.shape(), out_dtype, x.device());
  if (out.numel()) {
    ScanArgs a;
    a.x = static_cast<const char*>(l.x.data_ptr()), a.out = static_cast<char*>(out.data_ptr());
    a.outer = l.outer, a.n = l.n, a.inner = l.inner, a.reverse = reverse;
    sort_kernels.get(x.device().type, x.dtype(), "cumsum")->scan(a);
  }
  if (autograd::needs_grad({&x})) {
    const int64_t d = l.dim;
    autograd::record("cumsum_backward", {&x}, {&out}, [d, reverse](const autograd::Node&, autograd::TensorList& g) {
      return autograd::TensorList{scan(g[0], d, !reverse)};
    });
  }
  return out;
}

}  // namespace

std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  Tensor index = sort_indices(x, dim, descending, "sort");
  return {x.dim() ? gather(x, dim, index) : clone(x), index};
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  const int64_t d = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "topk");
  const int64_t n = x.dim() ? x.size(d) : 1;
  LEPTON_CHECK(k >= 0 && k <= n, Index, "topk(): selected index k out of range: k = ", k, " for dimension ", d,
               " of size ", n);
  Tensor index = sort_indices(x, d, largest, "topk", x.dim() ? k : -1);  // (a 0-d tensor is its own top 1)
  return {x.dim() ? gather(x, d, index) : clone(x), index};
}

Tensor cumsum(const Tensor& x, int64_t dim) { return scan(x, dim, false); }

}  // namespace lepton::ops
