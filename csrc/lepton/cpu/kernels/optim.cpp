// Fused multi-tensor optimizer steps (SGD, Adam/AdamW), the global norm of a tensor list and
// its in-place scaling. The fast kernels share the concatenation of all the tensors among the
// threads (one parallel region per call, however many tensors) and vectorise the loop over
// each tensor's part; the reference kernels run the same per-element update in plain serial
// loops. Built with -ffp-contract=off: torch's CPU ops round every step.
#include <algorithm>
#include <limits>
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

// Calls g(chunk, begin, end) for every chunk of [0, total), in parallel.
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

// The loop over one part: vectorised in the fast kernels, a plain loop in the reference.
template <bool Fast, class Step>
LEPTON_SIMD_INLINE void run_part(int64_t b, int64_t e, const Step& step) {
  if constexpr (Fast) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) step(i);
  } else {
    for (int64_t i = b; i < e; ++i) step(i);
  }
}

template <class T> T* ptr(void* const* a, int64_t t) { return static_cast<T*>(a[t]); }
template <class T> const T* ptr(const void* const* a, int64_t t) { return static_cast<const T*>(a[t]); }

template <class T, bool Fast, bool Momentum, bool Nesterov, bool FirstStep, Decay D>
void sgd_impl(const SgdArgs& a) {
  using A = acc_t<T>;
  const SgdScalars<A> s{A(a.lr), A(a.weight_decay), A(a.momentum), A(1 - a.dampening), a.maximize ? A(-1) : A(1)};
  for_each_part<Fast>(a.list, [&](int64_t t, int64_t b, int64_t e) {
    T* p = ptr<T>(a.param, t);
    const T* g = ptr<T>(a.grad, t);
    T* buf = Momentum ? ptr<T>(a.momentum_buffer, t) : nullptr;
    run_part<Fast>(b, e, [=](int64_t i) LEPTON_SIMD_INLINE_LAMBDA {
      A m = Momentum && !FirstStep ? load(buf[i]) : A(0);
      p[i] = store<T>(sgd_step<A, Momentum, Nesterov, FirstStep, D>(load(p[i]), load(g[i]), m, s));
      if constexpr (Momentum) buf[i] = store<T>(m);
    });
  });
}

template <class T, bool Fast, bool Amsgrad, Decay D>
void adam_impl(const AdamArgs& a) {
  using A = acc_t<T>;
  const AdamScalars<A> s{A(a.weight_decay), A(1 - a.lr * a.weight_decay), A(a.eps),  A(1 - a.beta1),
                         A(a.beta2),        A(1 - a.beta2),                a.maximize ? A(-1) : A(1)};
  for_each_part<Fast>(a.list, [&](int64_t t, int64_t b, int64_t e) {
    T* p = ptr<T>(a.param, t);
    const T* g = ptr<T>(a.grad, t);
    T* m = ptr<T>(a.exp_avg, t);
    T* v = ptr<T>(a.exp_avg_sq, t);
    T* vmax = Amsgrad ? ptr<T>(a.max_exp_avg_sq, t) : nullptr;
    const A neg_step = A(-a.step_size[t]), bc2 = A(a.bias_correction2_sqrt[t]);
    run_part<Fast>(b, e, [=](int64_t i) LEPTON_SIMD_INLINE_LAMBDA {
      A mi = load(m[i]), vi = load(v[i]), vmi = Amsgrad ? load(vmax[i]) : A(0);
      p[i] = store<T>(adam_step<A, Amsgrad, D>(load(p[i]), load(g[i]), mi, vi, vmi, neg_step, bc2, s));
      m[i] = store<T>(mi);
      v[i] = store<T>(vi);
      if constexpr (Amsgrad) vmax[i] = store<T>(vmi);
    });
  });
}

template <class T, bool Fast>
void sgd(const SgdArgs& a) {
  const Decay d = a.weight_decay != 0 ? Decay::L2 : Decay::None;
  auto pick = [&](auto mom, auto nest, auto first) {
    constexpr bool M = decltype(mom)::value, N = decltype(nest)::value, F = decltype(first)::value;
    (d == Decay::L2 ? sgd_impl<T, Fast, M, N, F, Decay::L2> : sgd_impl<T, Fast, M, N, F, Decay::None>)(a);
  };
  using yes = std::true_type;
  using no = std::false_type;
  if (a.momentum == 0) return pick(no{}, no{}, no{});
  if (a.first_step) return a.nesterov ? pick(yes{}, yes{}, yes{}) : pick(yes{}, no{}, yes{});
  a.nesterov ? pick(yes{}, yes{}, no{}) : pick(yes{}, no{}, no{});
}

template <class T, bool Fast>
void adam(const AdamArgs& a) {
  const bool ams = a.max_exp_avg_sq != nullptr;
  const Decay d = a.weight_decay == 0 ? Decay::None : a.decoupled_weight_decay ? Decay::Decoupled : Decay::L2;
  auto pick = [&](auto amsgrad) {
    constexpr bool M = decltype(amsgrad)::value;
    (d == Decay::None ? adam_impl<T, Fast, M, Decay::None>
     : d == Decay::L2 ? adam_impl<T, Fast, M, Decay::L2>
                      : adam_impl<T, Fast, M, Decay::Decoupled>)(a);
  };
  ams ? pick(std::true_type{}) : pick(std::false_type{});
}

// Chunks sum into their own slots, added in order: the result does not depend on the threads.
template <class T, bool Fast, NormKind K>
double norm_impl(const NormArgs& a) {
  constexpr int kLanes = 16;  // independent accumulators hide the add latency
  const double p = a.p;
  auto part = [&](double& acc, int64_t t, int64_t b, int64_t e) {
    const T* x = ptr<T>(a.data, t);
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
  if (a.p == 2) return norm_impl<T, Fast, NormKind::Two>(a);
  if (a.p == 1) return norm_impl<T, Fast, NormKind::One>(a);
  if (a.p == std::numeric_limits<double>::infinity()) return norm_impl<T, Fast, NormKind::Inf>(a);
  return norm_impl<T, Fast, NormKind::General>(a);
}

template <class T, bool Fast>
void scale(const ScaleArgs& a) {
  using A = acc_t<T>;
  const A s = A(a.scale);
  for_each_part<Fast>(a.list, [&](int64_t t, int64_t b, int64_t e) {
    T* x = ptr<T>(a.data, t);
    run_part<Fast>(b, e, [=](int64_t i) LEPTON_SIMD_INLINE_LAMBDA { x[i] = store<T>(load(x[i]) * s); });
  });
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
