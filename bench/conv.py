"""Float32 conv2d (NCHW) forward, and forward + backward (grads of input, weight and bias), for the
layers of a small MNIST CNN and a ResNet-style 56x56 block, plus 2x2 max pooling, against torch
on the same thread count.

--device cuda: the ResNet-style 3x3 layers of the CUDA issue (N64 64->64 56x56, N64 256->256 14x14)
forward and forward+backward in bfloat16 (implicit GEMM on the tensor cores) and float32, against
torch/cuDNN on the same GPU (TF32 off on both sides), in TFLOP/s (backward counted as 2 forwards)."""

import numpy as np

import lepton
from harness import Suite, main as bench_main

# (name, N, C_in, C_out, H=W, kernel, padding)
CONVS = [("N64 1->32 28x28 3x3", 64, 1, 32, 28, 3, 1),
         ("N64 32->64 14x14 3x3", 64, 32, 64, 14, 3, 1),
         ("N32 64->64 56x56 3x3", 32, 64, 64, 56, 3, 1)]


# (name, N, C, H=W): 3x3 stride-1 'same' convolutions, C -> C
CUDA_CONVS = [("N64 64->64 56x56 3x3", 64, 64, 56), ("N64 256->256 14x14 3x3", 64, 256, 14)]


def run_cuda(quick=False):
    import torch
    import torch.nn.functional as TF

    if not lepton.cuda.is_available():
        raise SystemExit("conv.py --device cuda needs a CUDA build of Lepton and a CUDA device")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # cuDNN at its best: pick the fastest algorithm per shape
    F = lepton.nn.functional

    def sync():
        lepton.cuda.synchronize()
        torch.cuda.synchronize()

    timing = dict(warmup=2, repeat=3, min_time=0.01, sync=sync)
    suite = Suite("conv2d 3x3 on CUDA (lepton NCHW vs torch/cuDNN NCHW)", "TFLOP/s", scale=1e12)
    suite.header()
    for name, n, c, hw in CUDA_CONVS[:1] if quick else CUDA_CONVS:
        flops = 2 * n * c * c * 9 * hw * hw
        for dtype in ("bfloat16", "float32"):
            ldt, tdt = getattr(lepton, dtype), getattr(torch, dtype)
            rng = np.random.default_rng(0)
            arrays = [rng.standard_normal(s, dtype=np.float32) for s in ((n, c, hw, hw), (c, c, 3, 3), (c,), (n, c, hw, hw))]
            x, w, b, gy = (lepton.tensor(a, device="cuda").to(ldt) for a in arrays)
            tx, tw, tb, tgy = (torch.tensor(a, device="cuda").to(tdt) for a in arrays)
            for t in (x, w, b, tx, tw, tb):
                t.requires_grad_(True)
            with lepton.no_grad(), torch.no_grad():
                suite.add(f"fwd     {dtype:8} {name}", flops, lambda: F.conv2d(x, w, b, padding=1),
                          {"torch": lambda: TF.conv2d(tx, tw, tb, padding=1)}, **timing)
            suite.add(f"fwd+bwd {dtype:8} {name}", 3 * flops,
                      lambda: lepton.autograd.grad(F.conv2d(x, w, b, padding=1), [x, w, b], gy),
                      {"torch": lambda: torch.autograd.grad(TF.conv2d(tx, tw, tb, padding=1), [tx, tw, tb], tgy)},
                      **timing)
    return suite


def run(threads=2, quick=False, device="cpu"):
    if device == "cuda":
        return run_cuda(quick)
    import torch
    import torch.nn.functional as TF

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    F = lepton.nn.functional
    rng = np.random.default_rng(0)

    def pair(*shape, grad=False):  # the same values as a lepton and a torch tensor, each owning its memory
        x = rng.standard_normal(shape, dtype=np.float32)
        return lepton.tensor(x, requires_grad=grad), torch.tensor(x, requires_grad=grad)

    suite = Suite(f"conv2d float32 (cpu, threads={threads}; pad and maxpool rows count input elements, G/s)", "GFLOP/s")
    suite.header()
    for name, n, cin, cout, hw, k, pad in CONVS[:2] if quick else CONVS:
        (x, tx), (w, tw), (b, tb) = pair(n, cin, hw, hw, grad=True), pair(cout, cin, k, k, grad=True), \
            pair(cout, grad=True)
        flops = 2 * n * cout * cin * k * k * hw * hw  # stride 1, 'same'-sized output
        with lepton.no_grad(), torch.no_grad():
            suite.add(f"fwd     {name}", flops, lambda: F.conv2d(x, w, b, padding=pad),
                      {"torch": lambda: TF.conv2d(tx, tw, tb, padding=pad)})
        (gy, tgy) = pair(n, cout, hw, hw)

        def lepton_step():
            return lepton.autograd.grad(F.conv2d(x, w, b, padding=pad), [x, w, b], gy)

        def torch_step():
            return torch.autograd.grad(TF.conv2d(tx, tw, tb, padding=pad), [tx, tw, tb], tgy)

        # backward: grad_x and grad_w each cost a forward's flops (grad_b is negligible)
        suite.add(f"fwd+bwd {name}", 3 * flops, lepton_step, {"torch": torch_step})

    # padding modes other than zeros pad the input first (F.pad from slices and cat in Lepton)
    (x, tx), (gy, tgy) = pair(64, 32, 14, 14, grad=True), pair(64, 32, 16, 16)
    for mode in ("reflect", "replicate", "circular"):
        suite.add(f"fwd+bwd F.pad {mode} 1 N64 32x14x14", x.numel(),
                  lambda mode=mode: lepton.autograd.grad(F.pad(x, (1, 1, 1, 1), mode=mode), [x], gy),
                  {"torch": lambda mode=mode: torch.autograd.grad(TF.pad(tx, (1, 1, 1, 1), mode=mode), [tx], tgy)})

    (x, tx) = pair(64, 32, 28, 28, grad=True)
    (gy, tgy) = pair(64, 32, 14, 14)
    with lepton.no_grad(), torch.no_grad():
        suite.add("fwd     maxpool 2x2 N64 32x28x28", x.numel(), lambda: F.max_pool2d(x, 2),
                  {"torch": lambda: TF.max_pool2d(tx, 2)})
    suite.add("fwd+bwd maxpool 2x2 N64 32x28x28", x.numel(),
              lambda: lepton.autograd.grad(F.max_pool2d(x, 2), [x], gy),
              {"torch": lambda: torch.autograd.grad(TF.max_pool2d(tx, 2), [tx], tgy)})
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "skip the 56x56 layer (on CUDA: the 14x14 one)", threads_default=2, device=True)
