// Reductions over the middle axis of a contiguous [outer, reduce, inner] block.
//
// One kernel serves both layouts. With inner == 1 (row reductions) threadIdx.x walks the
// reduce axis and each block row owns one output; with inner > 1 threadIdx.x walks the
// outputs (consecutive inner positions, so loads are coalesced) and threadIdx.y splits the
// reduce axis. The lanes of an output combine through a shared-memory tree. When there are
// too few outputs to fill the GPU (a full reduction of one big tensor), blockIdx.y splits the
// reduce axis too and a second kernel combines the per-split partials in a fixed order:
// results are deterministic, and no atomics are used.
#include <algorithm>
#include <limits>

#include "lepton/core/error.h"
#include "lepton/cuda/common.cuh"

namespace lepton::cuda {
namespace {

// Sum and Prod: integers (and bool) accumulate and write int64; 16-bit floats accumulate in float.
template <class T>
struct SumProd {
  using acc_t = std::conditional_t<is_float_v<T>, compute_t<T>, int64_t>;
  using out_t = std::conditional_t<is_float_v<T>, T, int64_t>;
  bool prod;
  LEPTON_HD acc_t identity() const { return acc_t(prod ? 1 : 0); }
  LEPTON_HD acc_t load(T x, int64_t) const { return acc_t(to_compute(x)); }
  LEPTON_HD acc_t combine(acc_t a, acc_t b) const { return prod ? wrap_mul(a, b) : wrap_add(a, b); }
  LEPTON_HD void store(char* out, int64_t*, int64_t o, acc_t a) const {
    reinterpret_cast<out_t*>(out)[o] = from_compute<out_t>(a);
  }
};

template <class C>
struct ValueIndex {
  C value;
  int64_t index;
};

// Max and Min with the position of the first extreme. NaN counts as the extreme and the lower
// index wins ties, which makes combine() independent of the order partial results meet in.
template <class T>
struct MaxMin {
  using C = compute_t<T>;
  using acc_t = ValueIndex<C>;
  bool is_max;
  LEPTON_HD acc_t identity() const {
    using L = std::numeric_limits<C>;
    const C worst = L::has_infinity ? (is_max ? -L::infinity() : L::infinity()) : (is_max ? L::lowest() : L::max());
    return {worst, std::numeric_limits<int64_t>::max()};
  }
  LEPTON_HD acc_t load(T x, int64_t r) const { return {to_compute(x), r}; }
  LEPTON_HD acc_t combine(acc_t a, acc_t b) const {
    const bool a_nan = a.value != a.value, b_nan = b.value != b.value;
    if (a_nan || b_nan) return a_nan && b_nan ? (a.index < b.index ? a : b) : a_nan ? a : b;
    if (a.value == b.value) return a.index < b.index ? a : b;
    return (is_max ? a.value > b.value : a.value < b.value) ? a : b;
  }
  LEPTON_HD void store(char* out, int64_t* index, int64_t o, acc_t a) const {
    reinterpret_cast<T*>(out)[o] = from_compute<T>(a.value);
    if (index) index[o] = a.index;
  }
};

template <class T>
struct AllAny {
  using acc_t = uint8_t;
  bool all;
  LEPTON_HD acc_t identity() const { return all; }
  LEPTON_HD acc_t load(T x, int64_t) const { return to_compute(x) != 0; }
  LEPTON_HD acc_t combine(acc_t a, acc_t b) const { return all ? (a & b) : (a | b); }
  LEPTON_HD void store(char* out, int64_t*, int64_t o, acc_t a) const { reinterpret_cast<uint8_t*>(out)[o] = a; }
};

struct ReduceLayout {
  int64_t reduce, inner, outputs;  // outputs = outer * inner
  int64_t chunk;                   // reduce positions per split (blockIdx.y)
  FastDiv inner_div;               // valid when outputs < 2^31
  bool small;
  bool x_reduces;                  // threadIdx.x walks the reduce axis (inner == 1)
};

// Combines the `lanes` values of each group (lane_stride apart in sh) into the group's lane 0.
// The result is valid in lane 0 only.
template <class R, class A>
__device__ A block_reduce(const R& red, A acc, A* sh, int me, int lane, int lanes, int lane_stride) {
  sh[me] = acc;
  __syncthreads();
  for (int s = lanes / 2; s > 0; s >>= 1) {
    if (lane < s) sh[me] = red.combine(sh[me], sh[me + s * lane_stride]);
    __syncthreads();
  }
  return sh[me];
}

template <class R, class T>
__global__ void __launch_bounds__(kThreads)
    reduce_kernel(R red, const T* in, ReduceLayout L, char* out, int64_t* index, typename R::acc_t* partial) {
  using A = typename R::acc_t;
  __shared__ A sh[kThreads];
  const int tx = threadIdx.x, ty = threadIdx.y, me = ty * blockDim.x + tx;
  const int lane = L.x_reduces ? tx : ty, lanes = L.x_reduces ? blockDim.x : blockDim.y;
  const int slot = L.x_reduces ? ty : tx, slots = L.x_reduces ? blockDim.y : blockDim.x;
  const int64_t r_begin = int64_t(blockIdx.y) * L.chunk;
  const int64_t r_end = r_begin + L.chunk < L.reduce ? r_begin + L.chunk : L.reduce;
  const int64_t step = int64_t(lanes) * L.inner;
  // The loop bound is uniform across the block: every thread reaches the __syncthreads.
  for (int64_t first = int64_t(blockIdx.x) * slots; first < L.outputs; first += int64_t(gridDim.x) * slots) {
    const int64_t o = first + slot;
    A acc = red.identity();
    if (o < L.outputs) {
      const int64_t outer = L.small ? int64_t(L.inner_div.div(uint32_t(o))) : o / L.inner;
      int64_t r = r_begin + lane;
      const T* p = in + (outer * L.reduce + r) * L.inner + (o - outer * L.inner);
      // Four loads in flight per thread before their values are combined (in order).
      for (; r + 3 * lanes < r_end; r += 4 * lanes, p += 4 * step) {
        const T v0 = p[0], v1 = p[step], v2 = p[2 * step], v3 = p[3 * step];
        acc = red.combine(acc, red.load(v0, r));
        acc = red.combine(acc, red.load(v1, r + lanes));
        acc = red.combine(acc, red.load(v2, r + 2 * lanes));
        acc = red.combine(acc, red.load(v3, r + 3 * lanes));
      }
      for (; r < r_end; r += lanes, p += step) acc = red.combine(acc, red.load(*p, r));
    }
    acc = block_reduce(red, acc, sh, me, lane, lanes, L.x_reduces ? 1 : int(blockDim.x));
    if (lane == 0 && o < L.outputs) {
      if (gridDim.y == 1)
        red.store(out, index, o, acc);
      else
        partial[int64_t(blockIdx.y) * L.outputs + o] = acc;
    }
  }
}

// partial is [splits, outputs]; one block per output combines its column.
template <class R>
__global__ void __launch_bounds__(kThreads) reduce_finish_kernel(R red, const typename R::acc_t* partial,
                                                                 int64_t splits, int64_t outputs, char* out,
                                                                 int64_t* index) {
  using A = typename R::acc_t;
  __shared__ A sh[kThreads];
  const int t = threadIdx.x;
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    A acc = red.identity();
    for (int64_t s = t; s < splits; s += blockDim.x) acc = red.combine(acc, partial[s * outputs + o]);
    acc = block_reduce(red, acc, sh, t, t, blockDim.x, 1);
    if (t == 0) red.store(out, index, o, acc);
  }
}

int pow2_at_least(int64_t n, int cap) {
  int p = 1;
  while (p < n && p < cap) p *= 2;
  return p;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T, class R>
void run_reduce(const R& red, const ReduceArgs& a) {
  using A = typename R::acc_t;
  ReduceLayout L;
  L.reduce = a.reduce;
  L.inner = a.inner;
  L.outputs = a.outer * a.inner;
  if (L.outputs == 0) return;
  L.small = L.outputs <= kMaxInt32;
  if (L.small) L.inner_div = FastDiv(uint32_t(a.inner));
  L.x_reduces = a.inner == 1;

  // Lanes along the reduce axis: as many as it has positions (up to the block), leaving at
  // least 32 consecutive outputs per block row when inner > 1 so that loads stay coalesced.
  const int lanes = L.x_reduces ? pow2_at_least(a.reduce, kThreads)
                                : std::min(pow2_at_least(a.reduce, kThreads), kThreads / pow2_at_least(a.inner, 32));
  const int slots = kThreads / lanes;  // outputs per block
  const dim3 block = L.x_reduces ? dim3(lanes, slots) : dim3(slots, lanes);
  const int64_t groups = ceil_div(L.outputs, slots);
  const unsigned grid_x = unsigned(std::min(groups, max_blocks()));

  // Too few outputs to fill the GPU: split the reduce axis so that one round of resident
  // blocks covers it, keeping >= 16 loads per thread.
  static const int per_sm = blocks_per_sm(reduce_kernel<R, T>);  // the same on every device we meet
  const int64_t resident = int64_t(sm_count()) * per_sm;
  int64_t splits = 1;
  if (groups < resident) {
    splits = std::min<int64_t>({ceil_div(resident, groups), ceil_div(a.reduce, int64_t(lanes) * 16), 1024});
    if (splits < 1) splits = 1;
  }
  L.chunk = splits > 1 ? ceil_div(a.reduce, splits) : a.reduce;
  if (splits > 1) splits = ceil_div(a.reduce, L.chunk);

  const T* in = reinterpret_cast<const T*>(a.in);
  if (splits == 1) {
    reduce_kernel<R, T><<<dim3(grid_x, 1), block, 0, current_stream()>>>(red, in, L, a.out, a.index, nullptr);
    check_launch("reduce kernel");
    return;
  }
  Workspace partial(size_t(splits * L.outputs) * sizeof(A));
  A* ws = static_cast<A*>(partial.get());
  reduce_kernel<R, T><<<dim3(grid_x, unsigned(splits)), block, 0, current_stream()>>>(red, in, L, a.out, a.index, ws);
  check_launch("reduce kernel");
  reduce_finish_kernel<R><<<unsigned(L.outputs < resident ? L.outputs : resident), kThreads, 0, current_stream()>>>(
      red, ws, splits, L.outputs, a.out, a.index);
  check_launch("reduce finish kernel");
}

template <class T>
void reduce_cuda(ReduceOp op, const ReduceArgs& a) {
  LEPTON_CHECK(a.outer >= 0 && a.reduce >= 0 && a.inner >= 0, Runtime, "reduce kernel: bad shape [", a.outer,
               ", ", a.reduce, ", ", a.inner, "]");
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Prod: return run_reduce<T>(SumProd<T>{op == ReduceOp::Prod}, a);
    case ReduceOp::Max:
    case ReduceOp::Min:
      LEPTON_CHECK(a.reduce > 0 || a.outer * a.inner == 0, Value, "max/min over an empty dimension");
      return run_reduce<T>(MaxMin<T>{op == ReduceOp::Max}, a);
    default: return run_reduce<T>(AllAny<T>{op == ReduceOp::All}, a);
  }
}

[[maybe_unused]] const bool kRegistered = [] {
  auto& t = reduce_kernels;
  t.set(DeviceType::CUDA, DType::Bool, &reduce_cuda<uint8_t>);
  t.set(DeviceType::CUDA, DType::UInt8, &reduce_cuda<uint8_t>);
  t.set(DeviceType::CUDA, DType::Int8, &reduce_cuda<int8_t>);
  t.set(DeviceType::CUDA, DType::Int32, &reduce_cuda<int32_t>);
  t.set(DeviceType::CUDA, DType::Int64, &reduce_cuda<int64_t>);
  t.set(DeviceType::CUDA, DType::Float16, &reduce_cuda<Half>);
  t.set(DeviceType::CUDA, DType::BFloat16, &reduce_cuda<BFloat16>);
  t.set(DeviceType::CUDA, DType::Float32, &reduce_cuda<float>);
  t.set(DeviceType::CUDA, DType::Float64, &reduce_cuda<double>);
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
