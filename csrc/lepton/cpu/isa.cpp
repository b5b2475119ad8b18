// Picks the CPU kernel set for the running processor and registers it in the kernel tables.
#include <cstdlib>
#include <cstring>

#include "lepton/cpu/kernel_set.h"
#include "lepton/ops/attention_kernels.h"
#include "lepton/ops/conv_kernels.h"
#include "lepton/ops/int8_kernels.h"
#include "lepton/ops/norm_kernels.h"
#include "lepton/ops/optim_kernels.h"
#include "lepton/ops/pool_kernels.h"
#include "lepton/ops/rnn_kernels.h"

namespace lepton::cpu {
namespace {

const char* detect_isa() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char* best = avx512 ? "avx512" : avx2 ? "avx2" : "scalar";
  // LEPTON_CPU_ISA may only lower the choice: a higher one would fault on this CPU.
  const char* forced = std::getenv("LEPTON_CPU_ISA");
  if (forced) {
    if (!std::strcmp(forced, "scalar")) return "scalar";
    if (!std::strcmp(forced, "avx2") && avx2) return "avx2";
  }
  return best;
}

template <class Fn>
void register_table(KernelTable<Fn>& table, Fn const (&fns)[kNumDTypes]) {
  for (int t = 0; t < kNumDTypes; ++t)
    if (fns[t]) table.set(DeviceType::CPU, DType(t), fns[t]);
}

const char* register_cpu_kernels() {
  const char* isa = detect_isa();
  KernelSet set;
#define LEPTON_FILL_FROM(ns)     \
  ns::fill_elementwise(set);     \
  ns::fill_copy(set);            \
  ns::fill_reduce(set);          \
  ns::fill_random(set);          \
  ns::fill_gemm(set);            \
  ns::fill_optim(set);           \
  ns::fill_softmax(set);         \
  ns::fill_conv(set);            \
  ns::fill_pool(set);            \
  ns::fill_norm(set);            \
  ns::fill_attention(set);       \
  ns::fill_int8_gemm(set);       \
  ns::fill_rnn(set);
  if (!std::strcmp(isa, "avx512")) {
    LEPTON_FILL_FROM(avx512)
  } else if (!std::strcmp(isa, "avx2")) {
    LEPTON_FILL_FROM(avx2)
  } else {
    LEPTON_FILL_FROM(scalar)
  }
#undef LEPTON_FILL_FROM
  register_table(unary_kernels, set.unary);
  register_table(binary_kernels, set.binary);
  register_table(compare_kernels, set.compare);
  register_table(where_kernels, set.where);
  register_table(copy_kernels, set.copy);
  register_table(fill_kernels, set.fill);
  register_table(reduce_kernels, set.reduce);
  register_table(random_kernels, set.random);
  register_table(softmax_kernels, set.softmax);
  register_table(conv_kernels, set.conv);
  register_table(pool_kernels, set.pool);
  register_table(norm_kernels, set.norm);
  register_table(attention_kernels, set.attention);
  register_table(int8_gemm_kernels, set.int8_gemm);
  register_table(rnn_cell_kernels, set.rnn_cell);
  register_table(optimizer_kernels, set.optimizer);
  register_table(optimizer_reference_kernels, set.optimizer_reference);
  for (int t = 0; t < kNumDTypes; ++t) rows_kernels.set(DeviceType::CPU, DType(t), set.rows);
  const char* gemm = std::getenv("LEPTON_GEMM");
  register_table(gemm_kernels, gemm && !std::strcmp(gemm, "reference") ? set.gemm_reference : set.gemm);
  return isa;
}

const char* const g_isa = register_cpu_kernels();

}  // namespace

const char* active_isa() { return g_isa; }

}  // namespace lepton::cpu
