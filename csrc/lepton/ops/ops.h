// The engine's ops: validated, device-agnostic entry points that pick kernels by device and
// dtype. The Python bindings call these; they never see Python objects.
#pragma once
#include <optional>
#include <utility>
#include <vector>

#include "lepton/core/scalar.h"
#include "lepton/core/tensor.h"
#include "lepton/ops/kernels.h"

namespace lepton::ops {

using Dims = std::vector<int64_t>;

// ---- creation (creation.cpp, random.cpp)
Tensor full(const Shape& shape, Scalar value, DType dtype, Device device);
Tensor arange(double start, double end, double step, DType dtype, Device device);
Tensor linspace(double start, double end, int64_t steps, DType dtype, Device device);
// full() and fill_() raise RuntimeError for a value `dtype` can't hold (2**40 in int32), as in
// torch; scalar_tensor() makes the 0-d operand of arithmetic, where such a value wraps, as in torch.
Tensor scalar_tensor(Scalar value, DType dtype, Device device);  // 0-d (copy.cpp)
void manual_seed(uint64_t seed);
uint64_t initial_seed();
std::pair<uint64_t, uint64_t> rng_state();          // (seed, offset)
void set_rng_state(uint64_t seed, uint64_t offset);
void random_(const Tensor& t, RandomDist dist, double a, double b);  // in place

// ---- views (view.cpp): no data is copied
Tensor reshape(const Tensor& t, Shape shape);  // copies only when no view is possible
Tensor view(const Tensor& t, Shape shape);     // errors when no view is possible
Tensor permute(const Tensor& t, Dims dims);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor squeeze(const Tensor& t, std::optional<Dims> dims);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor flatten(const Tensor& t, int64_t start, int64_t end);
Tensor slice(const Tensor& t, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
             int64_t step);
Tensor select(const Tensor& t, int64_t dim, int64_t index);
Tensor as_strided(const Tensor& t, Shape shape, Shape strides, int64_t offset);
std::vector<Tensor> split(const Tensor& t, const Dims& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim);

// ---- copies (copy.cpp)
void copy_(const Tensor& dst, const Tensor& src);  // broadcasts, casts, crosses devices
void fill_(const Tensor& dst, Scalar value);
Tensor contiguous(const Tensor& t);
Tensor clone(const Tensor& t);
Tensor to(const Tensor& t, std::optional<Device> device, std::optional<DType> dtype, bool copy);
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);

// ---- elementwise (elementwise.cpp); `out` variants write in place into their first argument
Tensor unary(UnaryOp op, const Tensor& x);
void unary_(UnaryOp op, const Tensor& x);
Tensor clamp(const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi);
void clamp_(const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor binary(BinaryOp op, const Tensor& a, Scalar b, bool reverse = false);  // reverse: b op a
void binary_(BinaryOp op, const Tensor& a, const Tensor& b);
void binary_(BinaryOp op, const Tensor& a, Scalar b);
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);
Tensor compare(CompareOp op, const Tensor& a, Scalar b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);
const char* unary_name(UnaryOp op);
const char* binary_name(BinaryOp op);

// ---- reductions (reduce.cpp); empty `dims` means all dimensions
Tensor reduce(ReduceOp op, const Tensor& x, const Dims& dims, bool keepdim);
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim);
Tensor var(const Tensor& x, const Dims& dims, double correction, bool keepdim);
Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim);
// max/min along one dim: (values, int64 indices)
std::pair<Tensor, Tensor> extreme_with_index(const Tensor& x, int64_t dim, bool keepdim, bool is_max);
Tensor arg_extreme(const Tensor& x, std::optional<int64_t> dim, bool keepdim, bool is_max);

// ---- softmax (softmax.cpp): fused kernels along one dim (float32/float64)
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Per-row softmax cross-entropy of logits [N, C] against int64 class indices [N]; ignored rows
// give 0. Raises IndexError for a class outside [0, C).
Tensor cross_entropy_rows(const Tensor& logits, const Tensor& target, int64_t ignore_index, double label_smoothing);

// ---- indexing (indexing.cpp)
struct IndexItem {
  enum class Kind { Int, Slice, None, Ellipsis, Tensor } kind;
  int64_t i = 0;
  std::optional<int64_t> start, stop;
  int64_t step = 1;
  lepton::Tensor tensor;
};
Tensor index(const Tensor& t, const std::vector<IndexItem>& items);
void index_put_(const Tensor& t, const std::vector<IndexItem>& items, const Tensor& value);
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
Tensor nonzero(const Tensor& t);  // [n, ndim] int64

// ---- matrix products (matmul.cpp), torch semantics
Tensor matmul(const Tensor& a, const Tensor& b);  // 1-D promotion, broadcast batch dims
Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias,
              Activation act = Activation::None);  // act(x · weightᵀ + bias), weight [out, in]
Tensor bmm(const Tensor& a, const Tensor& b);     // [B, M, K] · [B, K, N]
Tensor addmm(const Tensor& input, const Tensor& a, const Tensor& b, double beta, double alpha);

}  // namespace lepton::ops
