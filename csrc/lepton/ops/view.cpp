// Views: new shape/stride/offset over the same storage, never a copy (reshape excepted, which
// copies only when the layout admits no view).
#include <algorithm>

#include "lepton/core/error.h"
#include "lepton/ops/grad.h"

namespace lepton::ops {

namespace {

Tensor make_view(const Tensor& t, Shape shape, Shape strides, int64_t offset) {
  return Tensor::view_of(t.storage(), std::move(shape), std::move(strides), offset, t.dtype());
}

// Records `out` (computed from `t`) for autograd: `backward` maps out's gradient to t's.
template <class F>
Tensor recorded(const char* name, const Tensor& t, Tensor out, F backward) {
  if (autograd::needs_grad({&t})) {
    autograd::record(name, {&t}, {&out}, [backward](const autograd::Node&, autograd::TensorList& g) {
      return autograd::TensorList{backward(g[0])};
    });
    if (out.same_storage(t)) autograd::mark_view(out, t);
  }
  return out;
}

// Gradient of a strided window of a tensor of shape `in`: zeros with g written into the window.
// Under create_graph g requires grad and the write is recorded as its own op (copy_ from a
// tensor requiring grad is refused): its gradient is the same window of the outer gradient.
template <class Window>
Tensor scatter_window(const Tensor& g, const Shape& in, Window window) {
  Tensor z = full(in, Scalar::from_int(0), g.dtype(), g.device());
  {
    autograd::NoGradGuard no_grad;
    copy_(window(z), g);
  }
  if (autograd::needs_grad({&g}))
    autograd::record("scatter_window_backward", {&g}, {&z}, [window](const autograd::Node&, autograd::TensorList& gg) {
      return autograd::TensorList{window(gg[0])};
    });
  return z;
}

// Resolves one -1 and checks the element count.
Shape infer_shape(const Shape& requested, int64_t numel, const char* op) {
  Shape shape = requested;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      LEPTON_CHECK(infer_at < 0, Value, op, ": only one dimension can be inferred (-1) in ", shape_str(requested));
      infer_at = int64_t(i);
    } else {
      LEPTON_CHECK(shape[i] >= 0, Value, op, ": invalid negative size in ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    LEPTON_CHECK(known != 0 && numel % known == 0, Value, op, ": shape ", shape_str(requested),
                 " is invalid for input of size ", numel);
    shape[infer_at] = numel / known;
  }
  LEPTON_CHECK(shape_numel(shape) == numel, Value, op, ": shape ", shape_str(requested),
               " is invalid for input of size ", numel);
  return shape;
}

// Strides that let `shape` view memory laid out as (old_shape, old_strides), if any: each run
// of old dims that is contiguous with itself may be re-split freely.
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& shape) {
  if (old_shape.empty() || shape_numel(old_shape) == 0) return contiguous_strides(shape);
  Shape strides(shape.size(), 1);
  int64_t view_d = int64_t(shape.size()) - 1;
  int64_t base_stride = old_strides.back(), run_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(old_shape.size()) - 1; d >= 0; --d) {
    run_numel *= old_shape[d];
    bool run_ends = d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != run_numel * base_stride);
    if (!run_ends) continue;
    while (view_d >= 0 && (view_numel < run_numel || shape[view_d] == 1)) {
      strides[view_d] = view_numel * base_stride;
      view_numel *= shape[view_d];
      --view_d;
    }
    if (view_numel != run_numel) return std::nullopt;
    if (d > 0) {
      base_stride = old_strides[d - 1];
      run_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

}  // namespace

Tensor view(const Tensor& t, Shape requested) {
  Shape shape = infer_shape(requested, t.numel(), "view");
  auto strides = view_strides(t.shape(), t.strides(), shape);
  LEPTON_CHECK(strides.has_value(), Value, "view: shape ", shape_str(shape),
               " is not compatible with the input's size and stride (", shape_str(t.shape()), ", ",
               shape_str(t.strides()), "); use reshape(...) instead");
  const Shape in = t.shape();
  return recorded("view_backward", t, make_view(t, shape, *strides, t.offset()),
                  [in](const Tensor& g) { return reshape(g, in); });
}

Tensor reshape(const Tensor& t, Shape requested) {
  Shape shape = infer_shape(requested, t.numel(), "reshape");
  Tensor out;
  if (auto strides = view_strides(t.shape(), t.strides(), shape)) {
    out = make_view(t, shape, *strides, t.offset());
  } else {
    autograd::NoGradGuard no_grad;
    out = make_view(clone(t), shape, contiguous_strides(shape), 0);
  }
  const Shape in = t.shape();
  return recorded("reshape_backward", t, out, [in](const Tensor& g) { return reshape(g, in); });
}

Tensor permute(const Tensor& t, Dims dims) {
  const int64_t n = t.dim();
  LEPTON_CHECK(int64_t(dims.size()) == n, Value, "permute: expected ", n, " dimensions, got ", dims.size());
  std::vector<bool> seen(n, false);
  Shape shape(n), strides(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t d = wrap_dim(dims[i], n, "permute");
    LEPTON_CHECK(!seen[d], Value, "permute: dimension ", d, " appears more than once");
    seen[d] = true;
    shape[i] = t.shape()[d];
    strides[i] = t.strides()[d];
  }
  Dims inverse(n);
  for (int64_t i = 0; i < n; ++i) inverse[wrap_dim(dims[i], n, "permute")] = i;
  return recorded("permute_backward", t, make_view(t, shape, strides, t.offset()),
                  [inverse](const Tensor& g) { return permute(g, inverse); });
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  if (t.dim() == 0) return t;
  const int64_t a = wrap_dim(d0, t.dim(), "transpose"), b = wrap_dim(d1, t.dim(), "transpose");
  Shape shape = t.shape(), strides = t.strides();
  std::swap(shape[a], shape[b]);
  std::swap(strides[a], strides[b]);
  return recorded("transpose_backward", t, make_view(t, shape, strides, t.offset()),
                  [a, b](const Tensor& g) { return transpose(g, a, b); });
}

Tensor expand(const Tensor& t, const Shape& requested) {
  const int64_t n = int64_t(requested.size()), lead = n - t.dim();
  LEPTON_CHECK(lead >= 0, Value, "expand: the requested shape ", shape_str(requested), " has fewer dimensions than the tensor's ",
               shape_str(t.shape()));
  Shape shape(n), strides(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t want = requested[i];
    if (i < lead) {
      LEPTON_CHECK(want >= 0, Value, "expand: size -1 is not allowed in a new leading dimension (", shape_str(requested), ")");
      shape[i] = want;
      strides[i] = 0;
      continue;
    }
    const int64_t have = t.shape()[i - lead];
    if (want == -1 || want == have) {
      shape[i] = have;
      strides[i] = t.strides()[i - lead];
    } else {
      LEPTON_CHECK(have == 1 && want >= 0, Value, "expand: the expanded size ", want, " must match the existing size ", have,
                   " at dimension ", i, " (tensor shape ", shape_str(t.shape()), ", requested ", shape_str(requested), ")");
      shape[i] = want;
      strides[i] = 0;
    }
  }
  const Shape in = t.shape();
  return recorded("expand_backward", t, make_view(t, shape, strides, t.offset()),
                  [in](const Tensor& g) { return sum_to(g, in); });
}

Tensor squeeze(const Tensor& t, std::optional<Dims> dims) {
  std::vector<bool> drop(t.dim(), false);
  if (dims) {
    for (int64_t d : *dims) {
      int64_t w = wrap_dim(d, t.dim(), "squeeze");
      if (t.dim() > 0) drop[w] = t.shape()[w] == 1;
    }
  } else {
    for (int64_t d = 0; d < t.dim(); ++d) drop[d] = t.shape()[d] == 1;
  }
  Shape shape, strides;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (!drop[d]) {
      shape.push_back(t.shape()[d]);
      strides.push_back(t.strides()[d]);
    }
  const Shape in = t.shape();
  return recorded("squeeze_backward", t, make_view(t, shape, strides, t.offset()),
                  [in](const Tensor& g) { return reshape(g, in); });
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  const int64_t d = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape shape = t.shape(), strides = t.strides();
  int64_t stride = d < t.dim() ? t.strides()[d] * t.shape()[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return recorded("unsqueeze_backward", t, make_view(t, shape, strides, t.offset()),
                  [d](const Tensor& g) { return squeeze(g, Dims{d}); });
}

Tensor flatten(const Tensor& t, int64_t start, int64_t end) {
  if (t.dim() == 0) return reshape(t, {1});
  const int64_t s = wrap_dim(start, t.dim(), "flatten"), e = wrap_dim(end, t.dim(), "flatten");
  LEPTON_CHECK(s <= e, Value, "flatten: start_dim (", s, ") cannot come after end_dim (", e, ")");
  Shape shape(t.shape().begin(), t.shape().begin() + s);
  int64_t n = 1;
  for (int64_t d = s; d <= e; ++d) n *= t.shape()[d];
  shape.push_back(n);
  shape.insert(shape.end(), t.shape().begin() + e + 1, t.shape().end());
  return reshape(t, shape);
}

Tensor slice(const Tensor& t, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step) {
  LEPTON_CHECK(t.dim() > 0, Index, "slice: cannot slice a 0-dimensional tensor");
  const int64_t d = wrap_dim(dim, t.dim(), "slice");
  LEPTON_CHECK(step > 0, Value, "slice: step must be greater than zero, got ", step);
  const int64_t size = t.shape()[d];
  auto clampi = [size](int64_t v) {
    if (v < 0) v += size;
    return v < 0 ? 0 : (v > size ? size : v);
  };
  int64_t b = start ? clampi(*start) : 0, e = stop ? clampi(*stop) : size;
  const int64_t len = e > b ? 1 + (e - b - 1) / step : 0;  // (e - b + step - 1 would overflow for a huge step)
  Shape shape = t.shape(), strides = t.strides();
  shape[d] = len;
  if (len > 1) strides[d] *= step;  // (a step this small can't overflow it; one element needs no stride)
  const Shape in = t.shape();
  return recorded("slice_backward", t, make_view(t, shape, strides, t.offset() + (len > 0 ? b * t.strides()[d] : 0)),
                  [in, d, b, e, step](const Tensor& g) {
                    return scatter_window(g, in, [d, b, e, step](const Tensor& z) { return slice(z, d, b, e, step); });
                  });
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  LEPTON_CHECK(t.dim() > 0, Index, "select: invalid index of a 0-dim tensor");
  const int64_t d = wrap_dim(dim, t.dim(), "select");
  const int64_t size = t.shape()[d];
  LEPTON_CHECK(index >= -size && index < size, Index, "index ", index, " is out of bounds for dimension ", d,
               " with size ", size);
  if (index < 0) index += size;
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  const Shape in = t.shape();
  return recorded("select_backward", t, make_view(t, shape, strides, t.offset() + index * t.strides()[d]),
                  [in, d, index](const Tensor& g) {
                    return scatter_window(g, in, [d, index](const Tensor& z) { return select(z, d, index); });
                  });
}

Tensor as_strided(const Tensor& t, Shape shape, Shape strides, int64_t offset) {
  LEPTON_CHECK(!autograd::needs_grad({&t}), NotImplemented, "as_strided: gradients through as_strided are not supported");
  return make_view(t, std::move(shape), std::move(strides), offset);
}

std::vector<Tensor> split(const Tensor& t, const Dims& sizes, int64_t dim) {
  const int64_t d = wrap_dim(dim, t.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    LEPTON_CHECK(s >= 0, Value, "split: sizes must be non-negative, got ", shape_str(sizes));
    total += s;
  }
  LEPTON_CHECK(total == t.shape()[d], Value, "split: sizes ", shape_str(sizes), " sum to ", total,
               " but dimension ", d, " has size ", t.shape()[d]);
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    Shape shape = t.shape();
    shape[d] = s;
    out.push_back(make_view(t, shape, t.strides(), t.offset() + (s > 0 ? at * t.strides()[d] : 0)));
    at += s;
  }
  // One node for all pieces, its backward one cat: a node per piece would each scatter into a
  // zero tensor of the whole input, O(pieces x size) for an RNN's per-step slices.
  if (autograd::needs_grad({&t})) {
    autograd::record("split_backward", {t}, out, [d](const autograd::Node&, autograd::TensorList& g) {
      return autograd::TensorList{cat(g, d)};
    });
    for (const Tensor& piece : out) autograd::mark_view(piece, t);
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim) {
  LEPTON_CHECK(chunks > 0, Value, "chunk: chunks must be greater than 0, got ", chunks);
  const int64_t d = wrap_dim(dim, t.dim(), "chunk");
  const int64_t size = t.shape()[d], each = size ? 1 + (size - 1) / chunks : 0;  // ceil(size / chunks)
  Dims sizes;
  for (int64_t at = 0; at < size; at += each) sizes.push_back(std::min(each, size - at));
  if (size == 0) sizes.assign(size_t(chunks), 0);  // as torch: `chunks` empty pieces
  return split(t, sizes, d);
}

}  // namespace lepton::ops
