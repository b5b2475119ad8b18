"""scaled_dot_product_attention on CUDA against torch's SDPA on the same GPU (needs a CUDA build and
device): bfloat16, forward and forward+backward, causal and not, at (B4, H16, T4096, D128) and
(B8, H12, T1024, D64). TFLOP/s as FlashAttention counts them: 4·B·H·T²·D for the forward, halved
under a causal mask, 3.5× that for forward+backward. Ratio = torch time / Lepton time."""

import lepton
import lepton.nn.functional as F
from harness import Suite, main as bench_main


def sync():
    lepton.cuda.synchronize()
    import torch

    torch.cuda.synchronize()


def rows(suite, quick):
    import torch

    sdpa = torch.nn.functional.scaled_dot_product_attention
    timing = dict(warmup=1, repeat=5, min_time=0.02, sync=sync)  # a few seconds per row at most
    for B, H, T, D in [(1, 4, 1024, 64)] if quick else [(4, 16, 4096, 128), (8, 12, 1024, 64)]:
        q, k, v, go = (lepton.randn(B, H, T, D, device="cuda").to(lepton.bfloat16) for _ in range(4))
        tq, tk, tv, tgo = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
        for t in (q, k, v, tq, tk, tv):
            t.requires_grad_(True)
        for causal in (False, True):
            fwd = 4 * B * H * T * T * D / (2 if causal else 1)
            tag = f"B{B} H{H} T{T} D{D}{' causal' if causal else ''}"
            with lepton.no_grad(), torch.no_grad():
                suite.add(f"fwd {tag}", fwd / 1e3, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                          {"torch": lambda: sdpa(tq, tk, tv, is_causal=causal)}, **timing)
            suite.add(f"fwd+bwd {tag}", 3.5 * fwd / 1e3,
                      lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal).backward(go),
                      {"torch": lambda: sdpa(tq, tk, tv, is_causal=causal).backward(tgo)}, **timing)


def run(threads=None, quick=False):
    if not lepton.cuda.is_available():
        raise SystemExit("cuda_attention.py needs a CUDA build of Lepton and a CUDA device")
    suite = Suite("CUDA scaled_dot_product_attention, bfloat16", "TFLOP/s", scale=1e9)
    suite.header()
    rows(suite, quick)
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "one small problem")
