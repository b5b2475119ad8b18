// The kernel tables (constant-initialised, so kernel files may register into them from their
// own static initialisers in any order).
#include "lepton/ops/kernels.h"

namespace lepton {

KernelTable<UnaryFn> unary_kernels("unary");
KernelTable<BinaryFn> binary_kernels("binary");
KernelTable<CompareFn> compare_kernels("compare");
KernelTable<WhereFn> where_kernels("where");
KernelTable<CopyFn> copy_kernels("copy");
KernelTable<FillFn> fill_kernels("fill");
KernelTable<ReduceFn> reduce_kernels("reduce");
KernelTable<RandomFn> random_kernels("random");
KernelTable<RowsFn> rows_kernels("rows");
KernelTable<GemmFn> gemm_kernels("gemm");
KernelTable<const SoftmaxKernels*> softmax_kernels("softmax");

}  // namespace lepton
