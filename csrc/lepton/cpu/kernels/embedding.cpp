// Embedding: gather weight rows by index; backward scatter-adds the gradient rows into a zeroed
// weight gradient. The fast backward gives each thread its own range of weight rows: it zeroes
// them and adds in every gradient row that lands there, so no two threads write the same row
// (no atomics, and the sums come out in index order whatever the thread count).
#include <algorithm>
#include <cmath>
#include <vector>

#include "lepton/cpu/kernels/norm_family.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

int64_t first_bad_index(const EmbeddingArgs& a) {
  for (int64_t i = 0; i < a.count; ++i)
    if (a.indices[i] < 0 || a.indices[i] >= a.num_embeddings) return i;
  return -1;
}

// 1/frequency of each index when scale_grad_by_freq, else empty.
template <class T>
std::vector<T> inverse_frequency(const EmbeddingArgs& a) {
  if (!a.scale_grad_by_freq) return {};
  std::vector<T> inv(a.num_embeddings, T(0));
  for (int64_t i = 0; i < a.count; ++i) inv[a.indices[i]] += 1;
  for (T& v : inv) v = v > 0 ? T(1) / v : T(0);
  return inv;
}

// Adds the gradient rows whose index lies in [lo, hi) into grad_weight.
template <class T>
void add_rows(const EmbeddingArgs& a, const std::vector<T>& inv, int64_t lo, int64_t hi) {
  const int64_t D = a.dim;
  const T* G = in<T>(a.grad_out);
  T* GW = out<T>(a.grad_weight);
  for (int64_t i = 0; i < a.count; ++i) {
    const int64_t j = a.indices[i];
    if (j < lo || j >= hi || j == a.padding_idx) continue;
    const T s = inv.empty() ? T(1) : inv[j];
    const T* g = G + i * D;
    T* gw = GW + j * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) gw[d] += g[d] * s;
  }
}

}  // namespace

template <class T, bool Fast>
int64_t embedding_forward(const EmbeddingArgs& a) {
  const int64_t bad = first_bad_index(a);
  if (bad >= 0) return bad;
  const int64_t D = a.dim;
  const T* W = in<T>(a.weight);
  T* O = out<T>(a.out);
  auto gather = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (Fast && i + 4 < a.count) prefetch(W + a.indices[i + 4] * D, D);  // rows at random places
      std::memcpy(O + i * D, W + a.indices[i] * D, size_t(D) * sizeof(T));
    }
  };
  if constexpr (Fast)
    for_chunks(a.count, D, gather);
  else
    gather(0, a.count);
  return -1;
}

// Serial in both versions: rows are few, and a repeated index must see its row already scaled.
template <class T, bool Fast>
int64_t embedding_renorm(const EmbeddingArgs& a) {
  const int64_t bad = first_bad_index(a);
  if (bad >= 0) return bad;
  for (int64_t i = 0; i < a.count; ++i) {
    T* w = out<T>(a.weight) + a.indices[i] * a.dim;
    double norm = 0;
    for (int64_t d = 0; d < a.dim; ++d)
      norm += a.norm_type == 2 ? double(w[d]) * w[d] : std::pow(std::fabs(double(w[d])), a.norm_type);
    norm = a.norm_type == 2 ? std::sqrt(norm) : std::pow(norm, 1 / a.norm_type);
    if (norm <= a.max_norm) continue;
    const double scale = a.max_norm / (norm + 1e-7);
    for (int64_t d = 0; d < a.dim; ++d) w[d] = T(w[d] * scale);
  }
  return -1;
}

template <class T, bool Fast>
void embedding_backward(const EmbeddingArgs& a) {
  const std::vector<T> inv = inverse_frequency<T>(a);
  const int64_t V = a.num_embeddings, D = a.dim;
  T* GW = out<T>(a.grad_weight);
  if constexpr (!Fast) {
    std::fill(GW, GW + V * D, T(0));
    add_rows(a, inv, 0, V);
    return;
  }
  // The zeroing dominates. Each chunk of rows scans every index, so there are only a few per
  // thread.
  const int64_t chunk = std::max<int64_t>(1, V / (4 * omp_get_max_threads()));
  parallel_chunks(V, chunk, V * D < kParallelGrain, [&](int64_t lo, int64_t hi) {
    std::memset(GW + lo * D, 0, size_t((hi - lo) * D) * sizeof(T));
    add_rows(a, inv, lo, hi);
  });
}

LEPTON_NORM_FAMILY_INSTANTIATE(embedding_forward, int64_t, const EmbeddingArgs&)
LEPTON_NORM_FAMILY_INSTANTIATE(embedding_renorm, int64_t, const EmbeddingArgs&)
LEPTON_NORM_FAMILY_INSTANTIATE(embedding_backward, void, const EmbeddingArgs&)

}  // namespace lepton::cpu::LEPTON_ISA
