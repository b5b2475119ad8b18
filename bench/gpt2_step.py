"""One training step of a GPT in Lepton and in PyTorch eager on the same device, from the same
weights, on synthetic tokens, with fused AdamW and (unless --no-amp) bf16 autocast on both sides:

    python bench/gpt2_step.py --device cuda [--batch 8] [--steps 10] [--json out.json]
    python bench/gpt2_step.py --device cuda --config char-gpt --no-amp   # the shakespeare-gpt recipe's model
    python bench/gpt2_step.py --device cpu --config tiny                 # to check the script

Configs: gpt2-small (12 layers, 12 heads, 768 wide, block 1024, vocabulary 50304; batch 8),
char-gpt (the recipe's 4x4x128, block 64, vocabulary 65; batch 12), tiny (2x2x64, block 64).

Reports ms per step (forward, loss, backward, optimizer step), tokens/s and model FLOPs
utilisation: 6·N + 12·L·T·C FLOPs per token (N weights outside the embeddings, L layers,
T tokens of context, C width: PaLM's estimate) over the device's dense bf16 peak (--peak-tflops,
989 for an H100/H200 SXM). Steps alternate between the two frameworks so that clock and
thermal drift hit both; ratio = torch time / Lepton time.
"""

import argparse
import json
import statistics
import time

import numpy as np

import lepton
from lepton.models import CharGPT

CONFIGS = {
    "gpt2-small": dict(n_layer=12, n_head=12, n_embd=768, block=1024, vocab=50304, batch=8),
    "char-gpt": dict(n_layer=4, n_head=4, n_embd=128, block=64, vocab=65, batch=12),
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block=64, vocab=256, batch=8),
}


def flops_per_token(cfg, params):
    """PaLM's 6·N + 12·L·T·C, N without the embedding tables (the LM head is tied to them)."""
    n = params - cfg["vocab"] * cfg["n_embd"] - cfg["block"] * cfg["n_embd"]
    return 6 * n + 12 * cfg["n_layer"] * cfg["block"] * cfg["n_embd"]


def build(cfg, device, torch):
    from gpt_reference import torch_gpt
    from training import copy_weights

    model = CharGPT(cfg["vocab"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block"])
    tmodel = torch_gpt(torch, cfg["vocab"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block"])
    copy_weights(model, tmodel)
    return model.to(device), tmodel.to(device)


def steps(cfg, batch, device, model, tmodel, torch, amp):
    """Training-step closures (AdamW, next-token cross-entropy, bf16 autocast if amp) on one batch
    of random tokens shared by both frameworks; each returns after the device has finished."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg["vocab"], size=(batch, cfg["block"] + 1))
    x, y = lepton.from_numpy(tokens[:, :-1].copy()).to(device), lepton.from_numpy(tokens[:, 1:].copy()).to(device)
    tx, ty = torch.from_numpy(tokens[:, :-1].copy()).to(device), torch.from_numpy(tokens[:, 1:].copy()).to(device)
    opt = lepton.optim.AdamW(model.parameters(), lr=3e-4)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=3e-4, fused=True)
    vocab = cfg["vocab"]

    def lepton_step():
        with lepton.autocast(device_type=device, dtype=lepton.bfloat16, enabled=amp):
            loss = lepton.nn.functional.cross_entropy(model(x).reshape([-1, vocab]), y.reshape([-1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            lepton.cuda.synchronize()
        return loss

    def torch_step():
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(tmodel(tx).reshape(-1, vocab), ty.reshape(-1))
        topt.zero_grad()
        loss.backward()
        topt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return loss

    return lepton_step, torch_step


def run(device="cuda", config="gpt2-small", batch=None, n_steps=10, warmup=3, amp=True, peak_tflops=989.0,
        threads=None):
    import torch

    if threads:
        lepton.set_num_threads(threads)
        torch.set_num_threads(threads)
    cfg = CONFIGS[config]
    batch = batch or cfg["batch"]
    lepton.manual_seed(0)
    model, tmodel = build(cfg, device, torch)
    params = sum(p.numel() for p in model.parameters())
    fns = dict(zip(("lepton", "torch"), steps(cfg, batch, device, model, tmodel, torch, amp)))
    first = {name: float(fn().item()) for name, fn in fns.items()}  # same weights and batch: same loss
    for _ in range(warmup - 1):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(n_steps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    tokens = batch * cfg["block"]
    fpt = flops_per_token(cfg, params)
    result = {"config": config, "amp": amp, "batch": batch, "device": device, "params": params, "first_loss": first, "frameworks": {}}
    print(f"GPT {cfg['n_layer']}x{cfg['n_head']}x{cfg['n_embd']}, block {cfg['block']}, vocab {cfg['vocab']}, "
          f"{params / 1e6:.1f}M parameters, batch {batch}, {'bf16 autocast' if amp else 'float32'}, {device}")
    print(f"first-step loss: lepton {first['lepton']:.4f}  torch {first['torch']:.4f}")
    print("| framework | ms/step | tokens/s | MFU |\n|---|---:|---:|---:|")
    for name, ts in times.items():
        sec = statistics.median(ts)
        mfu = tokens * fpt / sec / (peak_tflops * 1e12)
        result["frameworks"][name] = {"ms": 1e3 * sec, "tokens_per_s": tokens / sec, "mfu": mfu}
        print(f"| {name} | {1e3 * sec:.1f} | {tokens / sec:,.0f} | {100 * mfu:.1f}% |")
    result["ratio"] = result["frameworks"]["torch"]["ms"] / result["frameworks"]["lepton"]["ms"]
    print(f"Lepton / torch: {result['ratio']:.2f}x (target 1.0x)")
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--config", default="gpt2-small", choices=sorted(CONFIGS))
    p.add_argument("--batch", type=int, default=None, help="default: the config's")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--no-amp", dest="amp", action="store_false", help="float32 throughout, no autocast")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the device, for MFU")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    if args.device == "cuda" and not lepton.cuda.is_available():
        raise SystemExit("gpt2_step: no CUDA device (use --device cpu --config tiny to check the script)")
    result = run(args.device, args.config, args.batch, args.steps, amp=args.amp, peak_tflops=args.peak_tflops,
                 threads=args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
