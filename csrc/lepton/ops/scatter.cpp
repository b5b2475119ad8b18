// gather, scatter and scatter_add along one dim. Gradients: gather's is a scatter_add of the
// output gradient into zeros; scatter_add passes self's through and gathers src's; scatter
// also gathers src's and zeroes self's at the overwritten places. Each is made of these same
// ops, so second derivatives work.
#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/norm.h"
#include "lepton/ops/ops.h"
#include "lepton/ops/scatter.h"
#include "lepton/ops/scatter_kernels.h"

namespace lepton {
KernelTable<ScatterFn> scatter_kernels("scatter");
}

namespace lepton::ops {

namespace {

// The index as contiguous int64, after torch's checks: an integer tensor on the data's device
// with as many dims as the data, no larger than `limit` in any dim but `dim`.
Tensor checked_index(const char* op, const Tensor& data, int64_t dim, const Tensor& index) {
  LEPTON_CHECK(index.dtype() == DType::Int64 || index.dtype() == DType::Int32, Type, op,
               "(): Expected dtype int64 for index, got ", dtype_name(index.dtype()));
  LEPTON_CHECK(index.device() == data.device(), Value, op, "(): index is on ", index.device().str(),
               " but the tensor is on ", data.device().str());
  LEPTON_CHECK(index.dim() == data.dim() || (index.dim() <= 1 && data.dim() <= 1), Index, op,
               "(): Index tensor must have the same number of dimensions as input tensor, got index ",
               shape_str(index.shape()), " and input ", shape_str(data.shape()));
  for (int64_t d = 0; d < index.dim() && data.dim(); ++d)
    LEPTON_CHECK(d == dim || index.size(d) <= data.size(d), Index, op, "(): Size does not match at dimension ", d,
                 " expected index ", shape_str(index.shape()), " to be no larger than self ", shape_str(data.shape()),
                 " apart from dimension ", dim);
  autograd::NoGradGuard no_grad;
  return contiguous(to(index, data.device(), DType::Int64, false));
}

void run(ScatterMode mode, const char* op, const Tensor& self, const Tensor& other, const Tensor& index, int64_t dim) {
  if (!index.numel()) return;
  ScatterArgs a;
  a.self = out_ptr(self), a.other = out_ptr(other), a.index = index.data<int64_t>();
  a.ndim = int(std::max<int64_t>(index.dim(), 1)), a.dim = int(dim), a.numel = index.numel();
  a.dim_size = self.dim() ? self.size(dim) : 1;
  LEPTON_CHECK(a.ndim <= kMaxDims, Value, op, "(): at most ", kMaxDims, " dims are supported");
  for (int d = 0; d < a.ndim; ++d) {
    a.shape[d] = index.dim() ? index.size(d) : 1;
    a.self_strides[d] = self.dim() ? self.strides()[d] : 1;
    a.other_strides[d] = other.dim() ? other.strides()[d] : 1;
  }
  const int64_t bad = scatter_kernels.get(self.device().type, self.dtype(), op)(mode, a);
  if (bad >= 0)
    raise(ErrorKind::Index, op, "(): index ", int64_t(element_at(index, bad)), " is out of bounds for dimension ", dim,
          " with size ", a.dim_size);
}

int64_t wrap(const Tensor& t, int64_t dim, const char* op) { return wrap_dim(dim, std::max<int64_t>(t.dim(), 1), op); }

// src cut down to index's extent in every dim (a view), so its gradient has src's shape.
Tensor fit_src(const char* op, const Tensor& src, const Tensor& index) {
  LEPTON_CHECK(src.dim() == index.dim() || (src.dim() <= 1 && index.dim() <= 1), Index, op,
               "(): Index tensor must have the same number of dimensions as src tensor, got index ",
               shape_str(index.shape()), " and src ", shape_str(src.shape()));
  Tensor s = src;
  for (int64_t d = 0; d < index.dim() && src.dim(); ++d) {
    LEPTON_CHECK(index.size(d) <= src.size(d), Index, op, "(): Expected index ", shape_str(index.shape()),
                 " to be no larger than src ", shape_str(src.shape()), " in dimension ", d);
    if (index.size(d) < src.size(d)) s = slice(s, d, 0, index.size(d), 1);
  }
  return s;
}

Tensor scatter_op(ScatterMode mode, const char* op, const Tensor& self, int64_t dim, const Tensor& index,
                  const Tensor& src) {
  dim = wrap(self, dim, op);
  const Tensor idx = checked_index(op, self, dim, index);
  LEPTON_CHECK(src.device() == self.device(), Value, op, "(): src is on ", src.device().str(), " but self is on ",
               self.device().str());
  LEPTON_CHECK(src.dtype() == self.dtype(), Type, op, "(): Expected self.dtype to be equal to src.dtype, got ",
               dtype_name(self.dtype()), " and ", dtype_name(src.dtype()));
  const Tensor s = fit_src(op, src, index);
  Tensor out;
  {
    autograd::NoGradGuard no_grad;
    out = clone(self);
    run(mode, op, out, s, idx, dim);
  }
  if (autograd::needs_grad({&self, &s})) {
    const bool add = mode == ScatterMode::ScatterAdd;
    autograd::record(add ? "scatter_add_backward" : "scatter_backward", {&self, &s}, {&out},
                     [idx, dim, add](const autograd::Node&, autograd::TensorList& g) {
      Tensor g_self = add ? g[0] : scatter(g[0], dim, idx, full(idx.shape(), Scalar::from_int(0), g[0].dtype(), g[0].device()));
      return autograd::TensorList{g_self, gather(g[0], dim, idx)};
    });
  }
  return out;
}

}  // namespace

Tensor gather(const Tensor& input, int64_t dim, const Tensor& index) {
  constexpr const char* op = "gather";
  dim = wrap(input, dim, op);
  const Tensor idx = checked_index(op, input, dim, index);
  Tensor out = Tensor::empty(index.shape(), input.dtype(), input.device());
  run(ScatterMode::Gather, op, input, out, idx, dim);
  if (autograd::needs_grad({&input})) {
    const Shape shape = input.shape();
    autograd::record("gather_backward", {&input}, {&out}, [idx, dim, shape](const autograd::Node&, autograd::TensorList& g) {
      const Tensor zeros = full(shape, Scalar::from_int(0), g[0].dtype(), g[0].device());
      return autograd::TensorList{scatter_add(zeros, dim, idx, g[0])};
    });
  }
  return out;
}

Tensor scatter(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  return scatter_op(ScatterMode::Scatter, "scatter", self, dim, index, src);
}

Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  return scatter_op(ScatterMode::ScatterAdd, "scatter_add", self, dim, index, src);
}

}  // namespace lepton::ops
