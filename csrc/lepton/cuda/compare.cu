// Comparisons (bool output) and where(cond, a, b). Bool inputs share the uint8_t kernels;
// where only moves values, so it is instantiated per item size, not per dtype.
#include "lepton/cuda/elementwise.cuh"

namespace lepton::cuda {
namespace {

template <class T>
struct CompareFunctor {
  CompareOp op;
  LEPTON_HD uint8_t operator()(T x, T y) const {
    const auto a = to_compute(x), b = to_compute(y);
    switch (op) {
      case CompareOp::Eq: return a == b;
      case CompareOp::Ne: return a != b;
      case CompareOp::Lt: return a < b;
      case CompareOp::Le: return a <= b;
      case CompareOp::Gt: return a > b;
      default: return a >= b;  // Ge
    }
  }
};

template <class T>
void compare_cuda(CompareOp op, const StridedIter& it) {
  launch_elementwise<uint8_t, T, T>(it, CompareFunctor<T>{op}, "compare kernel");
}

struct WhereFunctor {
  template <class T>
  LEPTON_HD T operator()(uint8_t cond, T a, T b) const {
    return cond ? a : b;
  }
};

template <int Size>
void where_cuda(const StridedIter& it) {
  using U = bits_t<Size>;
  launch_elementwise<U, uint8_t, U, U>(it, WhereFunctor{}, "where kernel");
}

[[maybe_unused]] const bool kRegistered = [] {
  auto& c = compare_kernels;
  c.set(DeviceType::CUDA, DType::Bool, &compare_cuda<uint8_t>);
  c.set(DeviceType::CUDA, DType::UInt8, &compare_cuda<uint8_t>);
  c.set(DeviceType::CUDA, DType::Int8, &compare_cuda<int8_t>);
  c.set(DeviceType::CUDA, DType::Int32, &compare_cuda<int32_t>);
  c.set(DeviceType::CUDA, DType::Int64, &compare_cuda<int64_t>);
  c.set(DeviceType::CUDA, DType::Float16, &compare_cuda<Half>);
  c.set(DeviceType::CUDA, DType::BFloat16, &compare_cuda<BFloat16>);
  c.set(DeviceType::CUDA, DType::Float32, &compare_cuda<float>);
  c.set(DeviceType::CUDA, DType::Float64, &compare_cuda<double>);
  for (int i = 0; i < kNumDTypes; ++i) {
    const DType d = DType(i);
    const size_t size = itemsize(d);
    where_kernels.set(DeviceType::CUDA, d,
                      size == 1 ? &where_cuda<1> : size == 2 ? &where_cuda<2> : size == 4 ? &where_cuda<4> : &where_cuda<8>);
  }
  return true;
}();

}  // namespace
}  // namespace lepton::cuda
