"""CharGPT on Shakespeare, Lepton against the same model in torch: identical initial weights (copied
from the Lepton model via numpy), identical batches (indices drawn once with numpy and fed to both),
AdamW(lr 1e-3), batch 12, block 64. Steps alternate between the two frameworks so that machine noise
hits both alike; prints both validation losses (same held-out batches) and the median ms per
training iteration (forward, loss, backward, optimizer step) of each."""

import argparse
import json
import statistics
import time

import numpy as np

import lepton
import lepton.datasets
from lepton.models import CharGPT


def batches(dataset, rng, count, batch):
    """count (x, y) pairs of int64 [batch, block] windows at offsets drawn once with numpy, as numpy arrays
    (each framework wraps the same arrays)."""
    starts = rng.integers(0, len(dataset), size=(count, batch))
    return [tuple(t.numpy() for t in dataset.__getitems__(s)) for s in starts]


def torch_gpt(torch, vocab_size, n_layer, n_head, n_embd, block_size):
    """CharGPT's twin in torch: the same module tree and parameter names, weight tying included."""
    nn, F = torch.nn, torch.nn.functional

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in self.c_attn(x).split(n_embd, 2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(b, t, c))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc, self.gelu, self.c_proj = nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(n_embd), Attention(), nn.LayerNorm(n_embd), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    return GPT()


def run(steps=500, threads=2, eval_batches=40, seed=0, n_layer=4, n_head=4, n_embd=128, block=64, batch=12):
    import torch

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    train, val = lepton.datasets.CharDataset(lepton.datasets.shakespeare(), block).split(0.1)
    vocab = train.vocab_size
    rng = np.random.default_rng(seed)
    train_batches = batches(train, rng, steps, batch)
    val_batches = batches(val, rng, eval_batches, batch)

    lepton.manual_seed(seed)
    model = CharGPT(vocab, n_layer, n_head, n_embd, block)
    tmodel = torch_gpt(torch, vocab, n_layer, n_head, n_embd, block)
    names = [n for n, _ in model.named_parameters()]
    assert names == [n for n, _ in tmodel.named_parameters()], "the two models' parameters differ"
    with torch.no_grad():
        for p, tp in zip(model.parameters(), tmodel.parameters()):
            tp.copy_(torch.from_numpy(np.array(p.detach().numpy(), copy=True)))
    opt = lepton.optim.AdamW(model.parameters(), lr=1e-3)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-3)

    def lepton_step(x, y):
        logits = model(lepton.from_numpy(x))
        loss = lepton.nn.functional.cross_entropy(logits.reshape([-1, vocab]), lepton.from_numpy(y).reshape([-1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def torch_step(x, y):
        logits = tmodel(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), torch.from_numpy(y).reshape(-1))
        topt.zero_grad()
        loss.backward()
        topt.step()
        return loss.item()

    def val_loss():
        with lepton.no_grad(), torch.no_grad():
            ours = [lepton.nn.functional.cross_entropy(model(lepton.from_numpy(x)).reshape([-1, vocab]),
                                                       lepton.from_numpy(y).reshape([-1])).item()
                    for x, y in val_batches]
            theirs = [torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)).reshape(-1, vocab),
                                                        torch.from_numpy(y).reshape(-1)).item()
                      for x, y in val_batches]
        return float(np.mean(ours)), float(np.mean(theirs))

    print(f"CharGPT {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, vocab {vocab}, "
          f"{n_layer} layers x {n_head} heads x {n_embd}, block {block}, batch {batch}, {steps} steps, "
          f"threads={threads}")
    start_val = val_loss()
    print(f"step {0:5d}  val loss  lepton {start_val[0]:.4f}  torch {start_val[1]:.4f}")
    times = {"lepton": [], "torch": []}
    for i, (x, y) in enumerate(train_batches, 1):
        for name, step in (("lepton", lepton_step), ("torch", torch_step)):
            t0 = time.perf_counter()
            loss = step(x, y)
            times[name].append(time.perf_counter() - t0)
        if i % max(1, steps // 5) == 0 or i == steps:
            v = val_loss()
            print(f"step {i:5d}  train loss lepton {loss:.4f}  val loss  lepton {v[0]:.4f}  torch {v[1]:.4f}",
                  flush=True)
    warm = times["lepton"][min(10, steps // 10):], times["torch"][min(10, steps // 10):]
    ms = {k: 1e3 * statistics.median(t) for k, t in zip(("lepton", "torch"), warm)}
    result = {"val_loss": {"lepton": v[0], "torch": v[1]}, "val_loss_gap": v[0] - v[1], "ms_per_iter": ms,
              "speedup_vs_torch": ms["torch"] / ms["lepton"], "steps": steps, "threads": threads}
    print(f"\n| | Lepton | torch | |\n|---|---:|---:|---:|\n"
          f"| val loss after {steps} steps | {v[0]:.4f} | {v[1]:.4f} | gap {v[0] - v[1]:+.5f} (target |gap| <= 0.03) |\n"
          f"| ms/iter (median) | {ms['lepton']:.2f} | {ms['torch']:.2f} | torch/lepton {result['speedup_vs_torch']:.2f}x "
          f"(target >= 1.3x) |")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="100 steps, 10 validation batches")
    p.add_argument("--json", default=None, help="write results here")
    args = p.parse_args()
    res = run(steps=100 if args.quick else args.steps, threads=args.threads, eval_batches=10 if args.quick else 40)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
