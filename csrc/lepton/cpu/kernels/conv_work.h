// Work splitting and scratch memory shared by the CPU conv kernels (included by conv.cpp only,
// inside each ISA build's namespace).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace lepton::cpu::LEPTON_ISA {
namespace {  // one translation unit per ISA includes this

inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -(-a / b); }

// Calls f(item, slot) for every item in [0, items), split between nt threads in contiguous runs
// (slot = thread number). Each thread's GEMMs then run on that thread alone.
template <class F>
void for_items(int nt, int64_t items, F&& f) {
  if (nt <= 1 || items <= 1) {
    for (int64_t i = 0; i < items; ++i) f(i, 0);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    omp_set_num_threads(1);  // nested GEMMs: one thread, no parallel region at all
    const int t = omp_get_thread_num(), k = omp_get_num_threads();
    for (int64_t i = items * t / k; i < items * (t + 1) / k; ++i) f(i, t);
  }
}

// How many parts to cut each of `base` items into so that nt threads share them evenly.
inline int64_t parts_for(int64_t base, int nt, int64_t max_parts) {
  return base >= 4 * nt || base % nt == 0 ? 1 : std::max<int64_t>(1, std::min(max_parts, ceil_div(4 * nt, base)));
}

// A growable per-thread buffer, kept between calls so that every tile reuses warm memory.
template <class T, int Slot = 0>
T* scratch(int64_t n) {
  thread_local std::vector<T> buf;
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  return buf.data();
}

}  // namespace
}  // namespace lepton::cpu::LEPTON_ISA
