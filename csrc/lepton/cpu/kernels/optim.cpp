// Fused multi-tensor optimizer steps (SGD, Adam/AdamW, with or without float32 master weights),
// the global norm of a tensor list and its in-place scaling. The fast kernels share the
// concatenation of all the tensors among the threads (one parallel region per call, however
// many tensors) and vectorise the loop over each tensor's part; the reference kernels run the
// same per-element updates (ops/optim_rules.h) in plain serial loops. Built with
// -ffp-contract=off: torch's CPU ops round every step.
#include <algorithm>
#include <vector>

#include "lepton/cpu/kernels/common.h"
#include "lepton/ops/optim_rules.h"

namespace lepton::cpu::LEPTON_ISA {
namespace {

using namespace optim_rules;

// The fast kernels cut the concatenated elements into chunks that the threads take as they
// finish (a thread descheduled on a busy machine then delays one chunk, not half the step).
constexpr int64_t kChunk = 1 << 16;

// Where each tensor of the list starts in the concatenation (count + 1 entries).
std::vector<int64_t> offsets(const ListSizes& list) {
  std::vector<int64_t> start(list.count + 1, 0);
  for (int64_t t = 0; t < list.count; ++t) start[t + 1] = start[t] + list.numel[t];
  return start;
}

// Calls f(t, begin, end) for the parts of the tensors that lie in [b, e) of the concatenation.
template <class F>
void visit(const std::vector<int64_t>& start, int64_t b, int64_t e, F&& f) {
  // the last tensor starting at or before b holds it (empty tensors are skipped)
  int64_t t = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
  for (; b < e; ++t) {
    const int64_t end = std::min(e, start[t + 1]);
    if (end > b) f(t, b - start[t], end - start[t]);
    b = end;
  }
}

// Calls g(chunk, begin, end) for every chunk of [0, total), in parallel; a list smaller than
// kParallelGrain in all runs on the calling thread, however many tensors it has.
template <class G>
void for_each_chunk(int64_t total, G&& g) {
  const int64_t nchunks = (total + kChunk - 1) / kChunk;
  const int nt = int(std::min<int64_t>(omp_get_max_threads(), nchunks));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (total >= kParallelGrain && nt > 1)
  for (int64_t c = 0; c < nchunks; ++c) g(c, c * kChunk, std::min(total, (c + 1) * kChunk));
}

// Calls f(t, begin, end) over every element of every tensor: by chunks in parallel, or (the
// reference) tensor by tensor in order on one thread.
template <bool Fast, class F>
void for_each_part(const ListSizes& list, F&& f) {
  if constexpr (Fast) {
    const std::vector<int64_t> start = offsets(list);
    for_each_chunk(start.back(), [&](int64_t, int64_t b, int64_t e) { visit(start, b, e, f); });
  } else {
    for (int64_t t = 0; t < list.count; ++t) f(t, int64_t(0), list.numel[t]);
  }
}

// Applies an update (optim_rules.h) to every element of the list: vectorised loops in the
// fast kernels, plain ones in the reference.
template <bool Fast, class Update, class Args>
void apply(const Args& a, const typename Update::Scalars& s) {
  for_each_part<Fast>(a.list, [&](int64_t t, int64_t b, int64_t e) {
    const Update u(slot_of(a, t), s);
    if constexpr (Fast) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) u(i);
    } else {
      for (int64_t i = b; i < e; ++i) u(i);
    }
  });
}

template <class T, bool Fast>
void sgd(const SgdArgs& a) {
  with_sgd_update<T>(a, [&](auto tag) {
    using U = typename decltype(tag)::type;
    apply<Fast, U>(a, sgd_scalars<typename U::A>(a.h));
  });
}

template <class T, bool Fast>
void adam(const AdamArgs& a) {
  with_adam_update<T>(a, [&](auto tag) {
    using U = typename decltype(tag)::type;
    apply<Fast, U>(a, adam_scalars<typename U::A>(a.h));
  });
}

template <class T, bool Fast>
void scale(const ScaleArgs& a) {
  apply<Fast, ScaleUpdate<T>>(a, acc_t<T>(a.scale));
}

// Chunks sum into their own slots, added in order: the result does not depend on the threads.
template <class T, bool Fast, NormKind K>
double norm_impl(const NormArgs& a) {
  constexpr int kLanes = 16;  // independent accumulators hide the add latency
  const double p = a.p;
  auto part = [&](double& acc, int64_t t, int64_t b, int64_t e) {
    const T* x = static_cast<const T*>(a.data[t]);
    int64_t i = b;
    if constexpr (Fast) {
      double lanes[kLanes] = {};
      for (; i + kLanes <= e; i += kLanes)
#pragma omp simd
        for (int j = 0; j < kLanes; ++j) lanes[j] = norm_combine<K>(lanes[j], norm_term<K>(load(x[i + j]), p));
      for (int j = 0; j < kLanes; ++j) acc = norm_combine<K>(acc, lanes[j]);
    }
    for (; i < e; ++i) acc = norm_combine<K>(acc, norm_term<K>(load(x[i]), p));
  };
  double total = 0;
  if constexpr (Fast) {
    const std::vector<int64_t> start = offsets(a.list);
    std::vector<double> partial((start.back() + kChunk - 1) / kChunk, 0.0);
    for_each_chunk(start.back(), [&](int64_t c, int64_t b, int64_t e) {
      visit(start, b, e, [&](int64_t t, int64_t tb, int64_t te) { part(partial[c], t, tb, te); });
    });
    for (double v : partial) total = norm_combine<K>(total, v);
  } else {
    for (int64_t t = 0; t < a.list.count; ++t) part(total, t, 0, a.list.numel[t]);
  }
  return total;
}

template <class T, bool Fast>
double norm(const NormArgs& a) {
  return with_norm_kind(a.p, [&](auto kind) { return norm_impl<T, Fast, decltype(kind)::value>(a); });
}

template <class T, bool Fast>
constexpr OptimizerKernels kernels = {&sgd<T, Fast>, &adam<T, Fast>, &norm<T, Fast>, &scale<T, Fast>};

template <class T>
void register_dtype(KernelSet& set, DType dtype) {
  set.optimizer[int(dtype)] = &kernels<T, true>;
  set.optimizer_reference[int(dtype)] = &kernels<T, false>;
}

}  // namespace

void fill_optim(KernelSet& set) {
  register_dtype<Half>(set, DType::Float16);
  register_dtype<BFloat16>(set, DType::BFloat16);
  register_dtype<float>(set, DType::Float32);
  register_dtype<double>(set, DType::Float64);
}

}  // namespace lepton::cpu::LEPTON_ISA
