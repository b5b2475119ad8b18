"""The gather/scatter, sort and scan families and advanced indexing (the ops behind torch's
gather, scatter_add_, index_add_, sort, topk, cumsum, x[idx] and x[mask]), plus integer floor
division (with its divide-by-zero check), against torch on the same inputs and thread count.
Rates are GB/s of the tensors read and written."""

import numpy as np

import lepton
from gemm import fma_peak
from harness import Suite, main as bench_main


def run(threads=2, quick=False):
    import torch

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    rows, cols = (512, 1024) if quick else (2048, 4096)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((rows, cols), dtype=np.float32)
    idx_np = rng.integers(0, cols, (rows, cols // 4))
    flat_np = rng.integers(0, rows, rows // 2)
    mask_np = x_np > 0.5
    ints_np = rng.integers(-1000, 1000, rows * cols).astype(np.int64)
    div_np = rng.integers(1, 50, rows * cols).astype(np.int64)
    L = {k: lepton.from_numpy(v.copy()) for k, v in dict(x=x_np, idx=idx_np, flat=flat_np, mask=mask_np,
                                                          ints=ints_np, div=div_np).items()}
    T = {k: torch.from_numpy(v.copy()) for k, v in dict(x=x_np, idx=idx_np, flat=flat_np, mask=mask_np,
                                                         ints=ints_np, div=div_np).items()}
    src_l, src_t = lepton.ones(rows, cols // 4), torch.ones(rows, cols // 4)
    f4, i8 = 4, 8
    n, g = rows * cols, rows * (cols // 4)
    cases = [
        ("gather dim 1", g * (2 * f4 + i8), lambda m, d: d["x"].gather(1, d["idx"])),
        ("scatter_add dim 1", g * (f4 + i8) + n * f4 * 2,
         lambda m, d: d["x"].clone().scatter_add_(1, d["idx"], src_l if m is lepton else src_t)),
        ("index_add_ rows", len(flat_np) * cols * f4 * 3,
         lambda m, d: d["x"].clone().index_add_(0, d["flat"], d["x"][: len(flat_np)])),
        ("x[idx] rows", len(flat_np) * cols * f4 * 2, lambda m, d: d["x"][d["flat"]]),
        ("x[mask]", n * (f4 + 1) + int(mask_np.sum()) * f4, lambda m, d: d["x"][d["mask"]]),
        ("sort dim 1", n * f4 * 2 + n * i8, lambda m, d: d["x"].sort(dim=1)),
        ("topk 16 dim 1", n * f4, lambda m, d: d["x"].topk(16, dim=1)),
        ("cumsum dim 1", n * f4 * 2, lambda m, d: d["x"].cumsum(1)),
        ("int64 floor_divide", n * i8 * 3, lambda m, d: d["ints"] // d["div"]),
    ]
    peak = fma_peak(threads)
    suite = Suite(f"indexing, sort, scan ({rows}x{cols} float32; cpu, threads={threads}, torch {torch.__version__}, "
                  f"FMA peak {peak or 0:.0f} GFLOP/s)", "GB/s")
    suite.header()
    for name, nbytes, fn in cases:
        ours, theirs = fn(lepton, L), fn(torch, T)
        a = ours[0] if isinstance(ours, tuple) else ours
        b = theirs[0] if isinstance(theirs, tuple) else theirs
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-4, err_msg=name)  # same answer first
        suite.add(name, nbytes, lambda: fn(lepton, L), {"torch": lambda: fn(torch, T)}, interleave=True)
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "512x1024 instead of 2048x4096")
