#include "lepton/autograd/record.h"

#include "lepton/core/error.h"
#include "lepton/ops/ops.h"

namespace lepton::autograd {

namespace {

// Output geometry, so that gradients missing for some outputs become zeros of the right kind.
struct OutputInfo {
  Shape shape;
  DType dtype;
  Device device;
};

class RecordedNode : public FunctionNode {
 public:
  RecordedNode(std::string name, std::vector<OutputInfo> outs, BackwardFn fn)
      : FunctionNode(std::move(name), uint32_t(outs.size()), std::move(fn)), outs_(std::move(outs)) {}
  TensorList apply(TensorList&& grads) override {
    for (size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined()) grads[i] = ops::full(outs_[i].shape, Scalar::from_int(0), outs_[i].dtype, outs_[i].device);
    return FunctionNode::apply(std::move(grads));
  }

 private:
  std::vector<OutputInfo> outs_;
};

template <class Range>
void record_impl(const char* name, const Range& inputs, const std::vector<const Tensor*>& outputs, BackwardFn fn) {
  std::vector<OutputInfo> infos;
  for (const Tensor* o : outputs) infos.push_back({o->shape(), o->dtype(), o->device()});
  auto node = std::make_shared<RecordedNode>(name, std::move(infos), std::move(fn));
  for (const Tensor* in : inputs) node->next_edges.push_back(in->defined() ? gradient_edge(*in) : Edge{});  // optional inputs
  for (size_t i = 0; i < outputs.size(); ++i) {
    AutogradMeta& m = ensure_meta(*outputs[i]);
    m.grad_fn = node;
    m.output_nr = uint32_t(i);
  }
}

}  // namespace

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && requires_grad(*t)) return true;
  return false;
}

bool needs_grad(const TensorList& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && requires_grad(t)) return true;
  return false;
}

void record(const char* name, std::initializer_list<const Tensor*> inputs, std::initializer_list<const Tensor*> outputs,
            BackwardFn fn) {
  record_impl(name, inputs, std::vector<const Tensor*>(outputs), std::move(fn));
}

void record(const char* name, const TensorList& inputs, const TensorList& outputs, BackwardFn fn) {
  std::vector<const Tensor*> in, out;
  for (const Tensor& t : inputs) in.push_back(&t);
  for (const Tensor& t : outputs) out.push_back(&t);
  record_impl(name, in, out, std::move(fn));
}

void mark_view(const Tensor& view, const Tensor& base) {
  AutogradMeta& m = ensure_meta(view);
  const AutogradMeta* b = meta(base);
  m.is_view = true;
  m.view_of_leaf = is_leaf(base) || (b && b->is_view && b->view_of_leaf);
  m.view_version = view.storage()->version;
}

void check_inplace(const Tensor& t, const char* op) {
  if (!grad_enabled()) return;
  AutogradMeta* m = meta(t);
  if (!m) return;
  LEPTON_CHECK(!(m->requires_grad && !m->grad_fn), Runtime, op,
               ": a leaf tensor that requires grad is being used in an in-place operation; wrap it in "
               "lepton.no_grad() or work on a clone");
  LEPTON_CHECK(!(m->is_view && (m->requires_grad || m->grad_fn)), NotImplemented, op,
               ": in-place operations on a view of a tensor that requires grad are not supported yet; use the "
               "out-of-place op");
}

void take_history(const Tensor& t, const Tensor& result) {
  AutogradMeta* src = meta(result);
  if (!src || !src->grad_fn) return;
  AutogradMeta& m = ensure_meta(t);
  m.grad_fn = src->grad_fn;
  m.output_nr = src->output_nr;
}

void drop_history(const Tensor& t) {
  if (AutogradMeta* m = meta(t)) {
    m->grad_fn = nullptr;
    m->output_nr = 0;
  }
}

}  // namespace lepton::autograd
