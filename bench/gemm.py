"""Float32 GEMM: square sizes, the MNIST MLP's training products and a fused Linear+bias+ReLU,
against torch on the same thread count, with each figure as a share of the machine's FMA peak
(measured by bench/fma_peak.cpp, compiled here with the system C++ compiler). Then bfloat16 (the
products autocast runs): Lepton bfloat16 against Lepton float32 on the same values and torch
bfloat16, sampled in turn; its share is of twice the FMA peak (vdpbf16ps does two products per
lane where an FMA does one)."""

import os
import subprocess
import tempfile

import numpy as np

import lepton
from harness import Suite, main as bench_main

HERE = os.path.dirname(os.path.abspath(__file__))


def fma_peak(threads):
    """GFLOP/s of register-only FMAs on `threads` threads, or None without a compiler."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        try:
            subprocess.run(["c++", "-O3", "-march=native", "-fopenmp", os.path.join(HERE, "fma_peak.cpp"), "-o", exe],
                           check=True, capture_output=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True,
                                 env=dict(os.environ, OMP_NUM_THREADS=str(threads))).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
    rates = dict(line.split() for line in out.splitlines())
    return float(rates[str(threads)])


def run(threads=2, quick=False):
    import torch
    import torch.nn.functional as F

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    peak = fma_peak(threads)
    rng = np.random.default_rng(0)

    def pair(*shape):  # the same values as a lepton and a torch tensor, each owning its memory
        x = rng.standard_normal(shape, dtype=np.float32)
        return lepton.from_numpy(x.copy()), torch.from_numpy(x.copy())

    suite = Suite(f"gemm float32, bfloat16 (cpu, threads={threads}, FMA peak {peak or 0:.0f} GFLOP/s)", "GFLOP/s")
    suite.header()

    def entry(name, m, n, k, fn, torch_fn):
        row = suite.add(name, 2 * m * n * k, fn, {"torch": torch_fn})
        if peak:
            row["peak_gflops"] = peak
            row["percent_of_peak"] = 100 * row["rate"]["lepton"] / peak
            print(f"{'':<34} {row['percent_of_peak']:.0f}% of peak")

    for s in (256, 512, 1024) if quick else (256, 512, 1024, 2048):
        (a, ta), (b, tb) = pair(s, s), pair(s, s)
        entry(f"{s}x{s}x{s}", s, s, s, lambda: a @ b, lambda: ta @ tb)
    # The MNIST MLP's first layer (batch 64, 784 -> 128): forward, weight gradient, input gradient.
    (x, tx), (w, tw), (dy, tdy) = pair(64, 784), pair(784, 128), pair(64, 128)
    entry("fwd  x·W   64x784·784x128", 64, 128, 784, lambda: x @ w, lambda: tx @ tw)
    entry("dW   xᵀ·dy 784x64·64x128", 784, 128, 64, lambda: x.T @ dy, lambda: tx.T @ tdy)
    entry("dx   dy·Wᵀ 64x128·128x784", 64, 784, 128, lambda: dy @ w.T, lambda: tdy @ tw.T)
    (h, th), (v, tv) = pair(768, 128), pair(128, 512)
    entry("768x128·128x512", 768, 512, 128, lambda: h @ v, lambda: th @ tv)
    (lw, tlw), (lb, tlb) = pair(128, 784), pair(128)
    entry("linear+bias+relu 64x784->128", 64, 128, 784, lambda: lepton._C.linear(x, lw, lb, "relu"),
          lambda: F.relu(F.linear(tx, tlw, tlb)))

    def entry16(name, m, n, k, fn16, fn32, torch16):
        row = suite.add("bf16 " + name, 2 * m * n * k, fn16, {"lepton fp32": fn32, "torch bf16": torch16},
                        interleave=True)
        if peak:
            row["peak_gflops"] = 2 * peak
            row["percent_of_peak"] = 100 * row["rate"]["lepton"] / (2 * peak)
            print(f"{'':<34} {row['percent_of_peak']:.0f}% of 2x FMA peak")

    def pair16(*shape):  # float32 and bfloat16 copies of the same values, for lepton and torch
        lf, tf = pair(*shape)
        return lf, lf.to(lepton.bfloat16), tf.to(torch.bfloat16)

    for s in (256, 512, 1024) if quick else (256, 512, 1024, 2048):
        (a, a16, ta16), (b, b16, tb16) = pair16(s, s), pair16(s, s)
        entry16(f"{s}x{s}x{s}", s, s, s, lambda: a16 @ b16, lambda: a @ b, lambda: ta16 @ tb16)
    # autocast's MLP 784-1024-1024-10 at batch 256: a layer's forward, weight and input gradients.
    (x, x16, tx16), (w, w16, tw16), (dy, dy16, tdy16) = pair16(256, 784), pair16(1024, 784), pair16(256, 1024)
    entry16("fwd  x·Wᵀ  256x784·784x1024", 256, 1024, 784, lambda: x16 @ w16.T, lambda: x @ w.T,
            lambda: tx16 @ tw16.T)
    entry16("dW   dyᵀ·x 1024x256·256x784", 1024, 784, 256, lambda: dy16.T @ x16, lambda: dy.T @ x,
            lambda: tdy16.T @ tx16)
    entry16("dx   dy·W  256x1024·1024x784", 256, 784, 1024, lambda: dy16 @ w16, lambda: dy @ w,
            lambda: tdy16 @ tw16)
    (lb, lb16, tlb16) = pair16(1024)
    entry16("linear+bias+relu 256x784->1024", 256, 1024, 784, lambda: lepton._C.linear(x16, w16, lb16, "relu"),
            lambda: lepton._C.linear(x, w, lb, "relu"), lambda: F.relu(F.linear(tx16, tw16, tlb16)))
    return suite



if __name__ == "__main__":
    bench_main(run, __doc__, "skip 2048", threads_default=2)
