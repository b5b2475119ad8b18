"""Scaled dot-product attention, float32: Lepton's fused flash-style kernels against
torch.nn.functional.scaled_dot_product_attention on the same thread count, forward (no autograd)
and forward+backward, causal and not. GFLOP/s count the matrix products only: 4·B·H·T²·D per
forward (halved when causal) and 2.5 times that for the backward (it recomputes the scores).
The smallest shape also times Lepton's plain-loop reference kernel, to show what the tiling buys."""

import numpy as np

import lepton
from lepton import _C
from harness import Suite, main as bench_main

SHAPES = [(12, 4, 64, 32), (8, 8, 512, 64), (1, 8, 2048, 64)]


def run(threads=2, quick=False):
    import torch
    import torch.nn.functional as TF

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    suite = Suite(f"scaled_dot_product_attention float32 (cpu, threads={threads})", "GFLOP/s")
    suite.header()
    for B, H, T, D in SHAPES[:2] if quick else SHAPES:
        arrays = [rng.standard_normal((B, H, T, D), dtype=np.float32) for _ in range(4)]
        for causal in (False, True):
            fwd_flops = 4 * B * H * T * T * D * (0.5 if causal else 1.0)
            for backward in (False, True):
                lq, lk, lv, lg = (lepton.from_numpy(a.copy()) for a in arrays)
                tq, tk, tv, tg = (torch.from_numpy(a.copy()) for a in arrays)
                for t in (lq, lk, lv, tq, tk, tv):
                    t.requires_grad_(backward)

                def fn(ref=False):
                    out = _C.scaled_dot_product_attention(lq, lk, lv, None, 0.0, causal, None, ref)
                    if backward:
                        out.backward(lg)

                def torch_fn():
                    out = TF.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
                    if backward:
                        out.backward(tg)

                refs = {"torch": torch_fn}
                if T <= 64:
                    refs["lepton-reference"] = lambda: fn(ref=True)
                name = f"B{B} H{H} T{T} D{D} {'causal' if causal else 'full  '} {'fwd+bwd' if backward else 'fwd'}"
                row = suite.add(name, fwd_flops * (3.5 if backward else 1.0), fn, refs)
                ms = "  ".join(f"{k} {v * 1e3:.2f} ms" for k, v in row["seconds"].items())
                print(f"{'':<34} {ms}", flush=True)
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "skip the T=2048 shape", threads_default=2)
