// The CPU kernels of one instruction set. Each ISA build of cpu/kernels/ fills one of these
// (plain stores only, so no inline code compiled for a wider ISA leaks into other files), and
// cpu/isa.cpp registers the set that matches the running CPU.
#pragma once
#include "lepton/ops/kernels.h"

namespace lepton {
struct ConvKernels;
struct PoolKernels;
struct NormKernels;
struct AttentionKernels;
struct Int8GemmKernels;
struct OptimizerKernels;
struct RnnCellKernels;
}  // namespace lepton

namespace lepton::cpu {

struct KernelSet {
  UnaryFn unary[kNumDTypes] = {};
  BinaryFn binary[kNumDTypes] = {};
  CompareFn compare[kNumDTypes] = {};
  WhereFn where[kNumDTypes] = {};
  CopyFn copy[kNumDTypes] = {};
  FillFn fill[kNumDTypes] = {};
  ReduceFn reduce[kNumDTypes] = {};
  RandomFn random[kNumDTypes] = {};
  RowsFn rows = nullptr;
  GemmFn gemm[kNumDTypes] = {};            // packed, register-blocked
  GemmFn gemm_reference[kNumDTypes] = {};  // naive triple loop, for tests (LEPTON_GEMM=reference)
  const SoftmaxKernels* softmax[kNumDTypes] = {};
  const OptimizerKernels* optimizer[kNumDTypes] = {};            // parallel, vectorised
  const OptimizerKernels* optimizer_reference[kNumDTypes] = {};  // serial scalar loops, for tests
  const ConvKernels* conv[kNumDTypes] = {};
  const PoolKernels* pool[kNumDTypes] = {};
  const NormKernels* norm[kNumDTypes] = {};
  const AttentionKernels* attention[kNumDTypes] = {};
  const Int8GemmKernels* int8_gemm[kNumDTypes] = {};
  const RnnCellKernels* rnn_cell[kNumDTypes] = {};
};

#define LEPTON_DECLARE_ISA(isa)                      \
  namespace isa {                                    \
  void fill_elementwise(KernelSet& set);             \
  void fill_copy(KernelSet& set);                    \
  void fill_reduce(KernelSet& set);                  \
  void fill_random(KernelSet& set);                  \
  void fill_gemm(KernelSet& set);                    \
  void fill_optim(KernelSet& set);                   \
  void fill_softmax(KernelSet& set);                 \
  void fill_conv(KernelSet& set);                    \
  void fill_pool(KernelSet& set);                    \
  void fill_norm(KernelSet& set);                    \
  void fill_attention(KernelSet& set);               \
  void fill_int8_gemm(KernelSet& set);               \
  void fill_rnn(KernelSet& set);                     \
  }
LEPTON_DECLARE_ISA(scalar)
LEPTON_DECLARE_ISA(avx2)
LEPTON_DECLARE_ISA(avx512)
#undef LEPTON_DECLARE_ISA

// "avx512", "avx2" or "scalar": the best the CPU supports, lowered by LEPTON_CPU_ISA.
const char* active_isa();

}  // namespace lepton::cpu
