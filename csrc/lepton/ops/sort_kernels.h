// Kernels of the sort family (ops/sort.cpp): the permutation that sorts each line of a
// contiguous [outer, n, inner] block along its middle axis, and running sums along it.
// Registered by cpu/sort.cpp.
#pragma once
#include <cstdint>

#include "lepton/core/dispatch.h"

namespace lepton {

// index[o, :k, i] = the first k entries of the stable permutation of x[o, :, i] into ascending
// (or descending) order (k = n: all of it; index is [outer, k, inner]); NaN sorts above every
// number, as in torch.
struct SortArgs {
  const char* x = nullptr;
  int64_t* index = nullptr;
  int64_t outer = 0, n = 0, inner = 0, k = 0;
  bool descending = false;
};

// out[o, j, i] = Σ_{k<=j} x[o, k, i] (cumsum) or Π (cumprod); reverse runs from the end. Floats
// accumulate in double, integers (and bool) in int64; out has the op's result dtype.
struct ScanArgs {
  const char* x = nullptr;
  char* out = nullptr;
  int64_t outer = 0, n = 0, inner = 0;
  bool product = false, reverse = false;
};

struct SortKernels {
  void (*sort)(const SortArgs&);
  void (*scan)(const ScanArgs&);  // keyed by the input dtype; out dtype: float as input, else int64
};

extern KernelTable<const SortKernels*> sort_kernels;

}  // namespace lepton
