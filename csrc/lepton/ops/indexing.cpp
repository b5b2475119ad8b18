// Indexing: basic indices (ints, slices, None, Ellipsis) become a view; integer and boolean
// tensor indices then gather (or scatter) whole rows with NumPy's placement rules.
#include <algorithm>

#include "lepton/core/error.h"
#include "lepton/ops/grad.h"
#include "lepton/ops/iter.h"
#include "lepton/ops/scatter.h"

namespace lepton::ops {

namespace {

using Kind = IndexItem::Kind;

// A bool tensor indexes as a mask; so does a uint8 one (deprecated, as in torch).
bool is_mask(const Tensor& idx) { return idx.dtype() == DType::Bool || idx.dtype() == DType::UInt8; }

int64_t read_int64(const Tensor& t) {  // one element, from any device
  return to(t, Device{}, DType::Int64, false).data<int64_t>()[0];
}

struct Advanced {
  Tensor view;                  // the tensor after basic indexing
  std::vector<int64_t> dims;    // dims of `view` indexed by tensors
  std::vector<Tensor> indices;  // int64, one per entry of dims
};

// Applies the basic indices and collects the tensor ones.
Advanced decompose(const Tensor& t, const std::vector<IndexItem>& items) {
  int64_t consumed = 0, ellipses = 0;
  for (const IndexItem& it : items) {
    if (it.kind == Kind::Ellipsis) ++ellipses;
    // a mask consumes one dim per mask dim; a 0-d mask consumes none (it adds a dim, like None)
    else if (it.kind == Kind::Tensor) consumed += is_mask(it.tensor) ? it.tensor.dim() : 1;
    else if (it.kind != Kind::None) ++consumed;
  }
  LEPTON_CHECK(ellipses <= 1, Index, "an index can only have a single ellipsis ('...')");
  LEPTON_CHECK(consumed <= t.dim(), Index, "too many indices for tensor of dimension ", t.dim(), " (got ", consumed, ")");
  Advanced adv;
  Tensor cur = t;
  int64_t d = 0;
  for (const IndexItem& it : items) {
    switch (it.kind) {
      case Kind::Int: cur = select(cur, d, it.i); break;
      case Kind::Slice: cur = slice(cur, d, it.start, it.stop, it.step); ++d; break;
      case Kind::None: cur = unsqueeze(cur, d); ++d; break;
      case Kind::Ellipsis: d += t.dim() - consumed; break;
      case Kind::Tensor: {
        const Tensor& idx = it.tensor;
        LEPTON_CHECK(idx.device() == t.device() || idx.device() == Device{}, Value,
                     "indices are on ", idx.device().str(), " but the indexed tensor is on ", t.device().str());
        if (is_mask(idx)) {
          const int64_t k = std::max<int64_t>(idx.dim(), 1);
          Tensor mask = idx.dim() == 0 ? unsqueeze(idx, 0) : idx;
          if (idx.dim() == 0) cur = unsqueeze(cur, d);  // x[True] adds a dim of size 1
          for (int64_t j = 0; j < k; ++j)
            LEPTON_CHECK(mask.shape()[j] == cur.shape()[d + j], Index, "the shape of the mask ", shape_str(idx.shape()),
                         " at index ", j, " does not match the shape of the indexed tensor ", shape_str(cur.shape()),
                         " at index ", d + j);
          Tensor nz = nonzero(to(mask, t.device(), std::nullopt, false));
          for (int64_t j = 0; j < k; ++j) {
            adv.dims.push_back(d + j);
            adv.indices.push_back(select(nz, 1, j));
          }
          d += k;
        } else {
          LEPTON_CHECK(idx.dtype() == DType::Int64 || idx.dtype() == DType::Int32, Index,
                       "tensors used as indices must be long, int, uint8 or bool tensors, got ",
                       dtype_name(idx.dtype()));
          adv.dims.push_back(d);
          adv.indices.push_back(to(idx, t.device(), DType::Int64, false));
          ++d;
        }
        break;
      }
    }
  }
  adv.view = cur;
  return adv;
}

struct Gather {
  Tensor offsets;     // int64 [B...]: element offset of each row in the storage
  Shape batch;        // broadcast shape of the index tensors
  Dims rest;          // dims of the view that are not indexed
  bool adjacent;      // indexed dims were consecutive: the batch dims stay in place
  int64_t first_dim;  // where they were
};

Gather plan_gather(const Advanced& adv) {
  Gather g;
  const Tensor& v = adv.view;
  g.batch = adv.indices[0].shape();
  for (const Tensor& idx : adv.indices) g.batch = broadcast_shapes(g.batch, idx.shape(), "index");
  g.offsets = full(g.batch, Scalar::from_int(v.offset()), DType::Int64, v.device());
  for (size_t j = 0; j < adv.dims.size(); ++j) {
    const int64_t d = adv.dims[j], size = v.shape()[d];
    const Tensor& idx = adv.indices[j];
    if (idx.numel() > 0) {
      int64_t lo = read_int64(reduce(ReduceOp::Min, idx, {}, false));
      int64_t hi = read_int64(reduce(ReduceOp::Max, idx, {}, false));
      LEPTON_CHECK(lo >= -size && hi < size, Index, "index ", (hi >= size ? hi : lo), " is out of bounds for dimension ",
                   d, " with size ", size);
    }
    // offsets += (idx + size * (idx < 0)) * stride
    Tensor wrapped = binary(BinaryOp::Add, idx,
                            binary(BinaryOp::Mul, compare(CompareOp::Lt, idx, Scalar::from_int(0)), Scalar::from_int(size)));
    binary_(BinaryOp::Add, g.offsets, binary(BinaryOp::Mul, wrapped, Scalar::from_int(v.strides()[d])));
  }
  for (int64_t d = 0; d < v.dim(); ++d)
    if (std::find(adv.dims.begin(), adv.dims.end(), d) == adv.dims.end()) g.rest.push_back(d);
  g.first_dim = adv.dims[0];
  g.adjacent = true;
  for (size_t j = 1; j < adv.dims.size(); ++j) g.adjacent = g.adjacent && adv.dims[j] == adv.dims[j - 1] + 1;
  return g;
}

RowsArgs rows_args(const Tensor& view, const Gather& g, const Tensor& dense) {
  LEPTON_CHECK(int64_t(g.rest.size()) <= kMaxDims, NotImplemented, "indexing with more than ", kMaxDims,
               " remaining dimensions is not supported");
  RowsArgs a;
  a.base = static_cast<char*>(view.storage()->data);
  a.dense = static_cast<char*>(dense.data_ptr());
  a.offsets = g.offsets.data<int64_t>();
  a.nrows = g.offsets.numel();
  a.ndim = int(g.rest.size());
  a.row_numel = 1;
  for (size_t i = 0; i < g.rest.size(); ++i) {
    a.row_shape[i] = view.shape()[g.rest[i]];
    a.row_strides[i] = view.strides()[g.rest[i]];
    a.row_numel *= a.row_shape[i];
  }
  return a;
}

// The dense layout is [batch..., rest...]; NumPy puts the batch dims where the indexed dims
// were when those were adjacent. These permutations convert between the two.
Dims to_result_order(const Gather& g) {
  const int64_t nb = int64_t(g.batch.size()), nr = int64_t(g.rest.size());
  Dims order;
  if (!g.adjacent) {
    for (int64_t i = 0; i < nb + nr; ++i) order.push_back(i);
    return order;
  }
  int64_t before = 0;
  for (int64_t d : g.rest) before += d < g.first_dim;
  for (int64_t i = 0; i < before; ++i) order.push_back(nb + i);
  for (int64_t i = 0; i < nb; ++i) order.push_back(i);
  for (int64_t i = before; i < nr; ++i) order.push_back(nb + i);
  return order;
}

Shape dense_shape(const Tensor& view, const Gather& g) {
  Shape shape = g.batch;
  for (int64_t d : g.rest) shape.push_back(view.shape()[d]);
  return shape;
}

}  // namespace

Tensor index(const Tensor& t, const std::vector<IndexItem>& items) {
  Advanced adv = decompose(t, items);
  if (adv.dims.empty()) return adv.view;
  if (autograd::needs_grad({&t})) {
    Tensor out;
    {
      autograd::NoGradGuard no_grad;
      out = index(t, items);
    }
    // The gradient adds into the places the elements came from: the same indices applied to
    // every element's flat position say which (duplicates accumulate, as in torch).
    const Shape shape = t.shape();
    const Device device = t.device();
    autograd::record("index_backward", {&t}, {&out}, [items, shape, device](const autograd::Node&, autograd::TensorList& g) {
      const int64_t n = shape_numel(shape);
      Tensor pos;
      {
        autograd::NoGradGuard no_grad;
        pos = contiguous(index(reshape(arange(0, double(n), 1, DType::Int64, device), shape), items));
      }
      const Tensor zeros = full({n}, Scalar::from_int(0), g[0].dtype(), device);
      const Tensor flat = scatter_add(zeros, 0, reshape(pos, {pos.numel()}), reshape(g[0], {pos.numel()}));
      return autograd::TensorList{reshape(flat, shape)};
    });
    return out;
  }
  Gather g = plan_gather(adv);
  Tensor dense = Tensor::empty(dense_shape(adv.view, g), t.dtype(), t.device());
  if (dense.numel() > 0) {
    use_device(t.device());
    rows_kernels.get(t.device().type, t.dtype(), "index")(rows_args(adv.view, g, dense), t.itemsize(), false);
  }
  Dims order = to_result_order(g);
  if (std::is_sorted(order.begin(), order.end())) return dense;
  return contiguous(permute(dense, order));
}

void index_put_(const Tensor& t, const std::vector<IndexItem>& items, const Tensor& value) {
  autograd::check_inplace(t, "index_put_");
  LEPTON_CHECK(!autograd::needs_grad({&value, &t}), NotImplemented,
               "assigning into a tensor with [] is not differentiable yet; build the result out of place");
  autograd::NoGradGuard no_grad;  // the view and copy below are plain data movement
  Advanced adv = decompose(t, items);
  if (adv.dims.empty()) {
    copy_(adv.view, value);
    return;
  }
  LEPTON_CHECK(value.device() == t.device() || value.dim() == 0, Value, "index_put_: value is on ",
               value.device().str(), " but the tensor is on ", t.device().str());
  Gather g = plan_gather(adv);
  Dims order = to_result_order(g);
  Shape dense = dense_shape(adv.view, g), result(order.size());
  for (size_t i = 0; i < order.size(); ++i) result[i] = dense[order[i]];
  LEPTON_CHECK(broadcast_shapes(value.shape(), result, "index_put_") == result, Value, "index_put_: shape mismatch: value of shape ",
               shape_str(value.shape()), " cannot be broadcast to indexing result of shape ", shape_str(result));
  Dims inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[order[i]] = int64_t(i);
  Tensor v = expand(to(value, t.device(), t.dtype(), false), result);
  Tensor packed = contiguous(permute(v, inverse));
  t.bump_version();
  if (packed.numel() == 0) return;
  use_device(t.device());
  rows_kernels.get(t.device().type, t.dtype(), "index_put_")(rows_args(adv.view, g, packed), t.itemsize(), true);
}

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& indices) {
  LEPTON_CHECK(indices.dim() <= 1, Index, "index_select: index must be 0- or 1-dimensional, got shape ", shape_str(indices.shape()));
  LEPTON_CHECK(indices.dtype() == DType::Int64 || indices.dtype() == DType::Int32, Index,
               "index_select: index must be an int64 or int32 tensor, got ", dtype_name(indices.dtype()));
  const int64_t d = wrap_dim(dim, t.dim(), "index_select");
  std::vector<IndexItem> items(d, IndexItem{Kind::Slice});
  IndexItem tensor_item{Kind::Tensor};
  tensor_item.tensor = indices.dim() == 0 ? unsqueeze(indices, 0) : indices;
  items.push_back(tensor_item);
  return ops::index(t, items);
}

Tensor nonzero(const Tensor& t) {
  // A serial scan on the host: the count decides the output size before anything is written.
  Tensor mask = contiguous(to(t, Device{}, DType::Bool, false));
  const bool* m = mask.data<bool>();
  const int64_t n = mask.numel(), nd = t.dim();
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += m[i];
  Tensor out = Tensor::empty({count, nd}, DType::Int64, Device{});
  int64_t* o = out.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (!m[i]) continue;
    int64_t rem = i;
    for (int64_t d = nd - 1; d >= 0; --d) {
      o[d] = rem % t.shape()[d];
      rem /= t.shape()[d];
    }
    o += nd;
  }
  return to(out, t.device(), std::nullopt, false);
}

}  // namespace lepton::ops
