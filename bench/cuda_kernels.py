"""CUDA kernels against PyTorch on the same GPU (needs a CUDA build and device): GEMM in float32
(TF32 off on both sides) and bfloat16 at 4096³ and 8192³ (TFLOP/s), fused AdamW over 100M
parameters (GB/s: 28 bytes per parameter), layer_norm and softmax cross-entropy forward+backward
(GB/s), and the char-GPT training step. Ratio = torch time / Lepton time."""

import numpy as np

import lepton
import lepton.nn.functional as F
from harness import Suite, main as bench_main


def sync():
    lepton.cuda.synchronize()
    import torch

    torch.cuda.synchronize()


def gemm_rows(suite, quick):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    for dtype, tdtype in ((lepton.float32, torch.float32), (lepton.bfloat16, torch.bfloat16)):
        for n in (1024,) if quick else (4096, 8192):
            a = lepton.randn(n, n, device="cuda").to(dtype)
            b = lepton.randn(n, n, device="cuda").to(dtype)
            ta = torch.randn(n, n, device="cuda", dtype=tdtype)
            tb = torch.randn(n, n, device="cuda", dtype=tdtype)
            suite.add(f"matmul {dtype.name} {n}^3", 2 * n**3 / 1e3, lambda: a @ b, {"torch": lambda: ta @ tb},
                      sync=sync)


def adamw_row(suite, quick):
    import torch

    total = 10_000_000 if quick else 100_000_000
    sizes = [total // 100] * 100
    lp = [lepton.nn.Parameter(lepton.randn(k, device="cuda")) for k in sizes]
    tp = [torch.nn.Parameter(torch.randn(k, device="cuda")) for k in sizes]
    for p, q in zip(lp, tp):
        p.grad = lepton.randn(p.shape[0], device="cuda")
        q.grad = torch.randn(q.shape[0], device="cuda")
    lo = lepton.optim.AdamW(lp, lr=1e-3)
    to = torch.optim.AdamW(tp, lr=1e-3, fused=True)
    suite.add(f"AdamW step, {total / 1e6:.0f}M params", 28 * total / 1e3, lo.step, {"torch fused": to.step}, sync=sync)


def rows_rows(suite, quick):
    import torch

    rows, cols = (4096, 768) if quick else (32768, 768)
    x = lepton.randn(rows, cols, device="cuda").requires_grad_(True)
    w = lepton.ones(cols, device="cuda").requires_grad_(True)
    b = lepton.zeros(cols, device="cuda").requires_grad_(True)
    tx = torch.randn(rows, cols, device="cuda", requires_grad=True)
    tw = torch.ones(cols, device="cuda", requires_grad=True)
    tb = torch.zeros(cols, device="cuda", requires_grad=True)
    suite.add(f"layer_norm fwd+bwd [{rows}, {cols}]", 4 * 4 * rows * cols / 1e3,
              lambda: F.layer_norm(x, (cols,), w, b).sum().backward(),
              {"torch": lambda: torch.nn.functional.layer_norm(tx, (cols,), tw, tb).sum().backward()}, sync=sync)
    classes = 50257
    n = 1024 if quick else 8192
    logits = lepton.randn(n, classes, device="cuda").requires_grad_(True)
    target = lepton.tensor(np.random.default_rng(0).integers(0, classes, n), device="cuda")
    tl = torch.randn(n, classes, device="cuda", requires_grad=True)
    tt = torch.from_numpy(target.cpu().numpy()).cuda()
    suite.add(f"cross_entropy fwd+bwd [{n}, {classes}]", 3 * 4 * n * classes / 1e3,
              lambda: F.cross_entropy(logits, target).backward(),
              {"torch": lambda: torch.nn.functional.cross_entropy(tl, tt).backward()}, sync=sync)


def run(threads=None, quick=False):
    if not lepton.cuda.is_available():
        raise SystemExit("cuda_kernels.py needs a CUDA build of Lepton and a CUDA device")
    flops = Suite("CUDA GEMM", "TFLOP/s", scale=1e9)
    flops.header()
    gemm_rows(flops, quick)
    bandwidth = Suite("CUDA memory-bound kernels", "GB/s", scale=1e6)
    bandwidth.header()
    adamw_row(bandwidth, quick)
    rows_rows(bandwidth, quick)
    return Suites(gemm=flops, memory=bandwidth)


class Suites:
    """Several suites saved as one entry of the JSON file (harness.save calls to_json on it)."""

    def __init__(self, **suites):
        self.suites = suites

    def to_json(self):
        return {name: suite.to_json() for name, suite in self.suites.items()}


if __name__ == "__main__":
    bench_main(run, __doc__, "smaller problems")
