// Shared by the two CUDA attention versions: the untiled reference kernels (attention.cu) and the
// FlashAttention-2 tensor-core kernels (flash_attention.cu). Both follow the AttentionArgs
// contract of ops/attention_kernels.h; for float16/bfloat16 the saved logsumexp is float32.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "lepton/core/philox.h"
#include "lepton/cuda/common.cuh"
#include "lepton/ops/attention_kernels.h"

namespace lepton::cuda {

constexpr double kLog2e = 1.4426950408889634;

// The element offset of each problem n of one operand: off(n) = c + (n / period)·a + (n % period)·b
// covers contiguous, head-transposed and head-broadcast layouts ([B, H] leading dims with any
// strides) without a table; other layouts read a device copy of the contract's host array.
struct OffsetMap {
  const int64_t* table = nullptr;
  int64_t c = 0, a = 0, b = 0, period = 1;
  LEPTON_HDI int64_t operator[](int64_t n) const { return table ? table[n] : c + (n / period) * a + (n % period) * b; }
};

struct AttnOffsets {
  OffsetMap q, k, v, mask;
};

// The two-level affine form of off[0, count), if there is one.
inline bool affine_offsets(const int64_t* off, int64_t count, OffsetMap& m) {
  m = OffsetMap{};
  if (!off || count == 0) return true;
  m.c = off[0];
  m.b = count > 1 ? off[1] - off[0] : 0;
  m.period = count;
  for (int64_t n = 1; n < count; ++n)
    if (off[n] != m.c + n * m.b) {
      m.period = n;
      break;
    }
  m.a = m.period < count ? off[m.period] - m.c : 0;
  for (int64_t n = 0; n < count; ++n)
    if (off[n] != m[n]) return false;
  return true;
}

// The offsets of q, k, v and the mask for the kernels: affine maps where possible, otherwise
// device copies of the host arrays (one synchronous copy).
class AttnDeviceOffsets {
 public:
  explicit AttnDeviceOffsets(const AttentionArgs& a) {
    const int64_t* host[4] = {a.q_off, a.k_off, a.v_off, a.mask_off};
    OffsetMap* maps[4] = {&offsets.q, &offsets.k, &offsets.v, &offsets.mask};
    bool affine = true;
    for (int i = 0; i < 4; ++i) affine = affine_offsets(host[i], a.batch, *maps[i]) && affine;
    if (affine) return;
    std::vector<int64_t> all(size_t(4 * a.batch), 0);
    for (int i = 0; i < 4; ++i)
      if (host[i]) std::copy(host[i], host[i] + a.batch, all.begin() + i * a.batch);
    buf_ = std::make_unique<Workspace>(all.size() * sizeof(int64_t));
    copy_and_wait(buf_->get(), all.data(), all.size() * sizeof(int64_t), cudaMemcpyHostToDevice, "attention offsets");
    for (int i = 0; i < 4; ++i) *maps[i] = OffsetMap{static_cast<const int64_t*>(buf_->get()) + i * a.batch};
  }
  AttnOffsets offsets{};

 private:
  std::unique_ptr<Workspace> buf_;
};

// The contract's dropout, bit for bit as on the CPU: weight (n, i, j) is kept when word w % 4 of
// philox(seed, w / 4), w = (n·S + j)·L + i, is >= ceil(p·2^32); kept weights are scaled by
// 1/(1 - p) (0 when p == 1).
struct AttnDropout {
  uint64_t seed = 0, threshold = 0;
  double scale = 1;
  bool on = false;
  explicit AttnDropout(const AttentionArgs& a)
      : seed(a.dropout_seed), threshold(uint64_t(std::ceil(a.dropout_p * 4294967296.0))),
        scale(a.dropout_p < 1 ? 1 / (1 - a.dropout_p) : 0), on(a.dropout_p > 0) {}

  __device__ __forceinline__ bool keep(int64_t n, int64_t i, int64_t j, int64_t L, int64_t S) const {
    const uint64_t w = (uint64_t(n) * uint64_t(S) + uint64_t(j)) * uint64_t(L) + uint64_t(i);
    const Philox4 r = philox(seed, w >> 2);
    const uint32_t q = uint32_t(w & 3);  // selects without indexing, which would put r in local memory
    const uint32_t word = q == 0 ? r.v[0] : q == 1 ? r.v[1] : q == 2 ? r.v[2] : r.v[3];
    return word >= threshold;
  }
  // The factor of weight (n, i, j): 0 or scale (1 without dropout).
  template <class C>
  __device__ __forceinline__ C factor(int64_t n, int64_t i, int64_t j, int64_t L, int64_t S) const {
    return !on ? C(1) : keep(n, i, j, L, S) ? C(scale) : C(0);
  }
};

// The FlashAttention-2 kernels (flash_attention.cu) for Half and BFloat16. They fall back to the
// reference kernels (given here) on GPUs without bfloat16 tensor cores (compute capability < 8)
// or with too little shared memory per block for the head dim's tiles.
template <class T>
void flash_forward(const AttentionArgs& a, AttentionFn fallback);
template <class T>
void flash_backward(const AttentionArgs& a, AttentionFn fallback);

}  // namespace lepton::cuda
