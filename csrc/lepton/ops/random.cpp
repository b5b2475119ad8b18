// The global counter-based generator: a seed and an offset. Each draw of n numbers takes the
// counters [offset, offset + n), so CPU and CUDA tensors drawn in the same order match.
#include <mutex>

#include "lepton/autograd/record.h"
#include "lepton/core/error.h"
#include "lepton/ops/iter.h"
#include "lepton/ops/ops.h"

namespace lepton::ops {

namespace {
constexpr uint64_t kDefaultSeed = 67280421310721ull;
std::mutex g_mutex;
uint64_t g_seed = kDefaultSeed, g_offset = 0;

}  // namespace

void manual_seed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_seed = seed;
  g_offset = 0;
}

uint64_t initial_seed() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_seed;
}

std::pair<uint64_t, uint64_t> rng_state() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return {g_seed, g_offset};
}

void set_rng_state(uint64_t seed, uint64_t offset) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_seed = seed;
  g_offset = offset;
}

void random_(const Tensor& t, RandomDist dist, double a, double b) {
  autograd::check_inplace(t, "random_");
  const char* name = dist == RandomDist::Uniform ? "uniform_" : dist == RandomDist::Normal ? "normal_" : "random_";
  if (dist == RandomDist::Integer) {
    LEPTON_CHECK(t.dtype() != DType::Bool, Type, name, ": bool tensors are not supported");
    LEPTON_CHECK(int64_t(b) > int64_t(a), Value, name, ": expected low < high, got low=", a, " high=", b);
  } else {
    LEPTON_CHECK(is_floating(t.dtype()), Type, name, ": expected a floating-point tensor, got ", dtype_name(t.dtype()));
    LEPTON_CHECK(dist != RandomDist::Normal || b >= 0, Value, name, ": std must be non-negative, got ", b);
    LEPTON_CHECK(dist != RandomDist::Uniform || a <= b, Value, name, ": expected from <= to, got from=", a, " to=", b);
  }
  const int64_t n = t.numel();
  if (n == 0) return;
  Tensor target = t.is_contiguous() ? t : Tensor::empty(t.shape(), t.dtype(), t.device());
  RandomArgs args{static_cast<char*>(target.data_ptr()), n, 0, 0, a, b, dist};
  RandomFn fn = random_kernels.get(t.device().type, t.dtype(), name);
  {
    std::lock_guard<std::mutex> lock(g_mutex);  // take the counters [offset, offset + n)
    args.seed = g_seed;
    args.offset = g_offset;
    g_offset += uint64_t(n);
  }
  use_device(t.device());
  fn(args);
  if (!target.same_storage(t)) copy_(t, target);
  t.bump_version();
}

}  // namespace lepton::ops
