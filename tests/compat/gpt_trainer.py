"""A small GPT trainer in the style of nanoGPT's train.py, written against torch: configurator-style
globals overridable with --key=value, a model file of nn.Linear/LayerNorm/Embedding and
F.scaled_dot_product_attention with weight tying, AdamW with decay groups and fused=,
GradScaler/autocast contexts, clip_grad_norm_, torch.save of a checkpoint dict, then a
reload and sampling with topk/multinomial. Prints 'final train loss X'."""
import gzip
import math
import os
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

# -- configurator-style globals
batch_size, block_size, n_layer, n_head, n_embd = 8, 32, 2, 2, 64
max_iters, learning_rate, dropout, device, dtype, out_dir, data_file = 150, 3e-3, 0.0, "cpu", "float32", "out", ""
for arg in sys.argv[1:]:
    key, val = arg[2:].split("=")
    globals()[key] = type(globals()[key])(val) if not isinstance(globals()[key], str) else val

torch.manual_seed(1337)
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
device_type = "cuda" if "cuda" in device else "cpu"
ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

text = gzip.open(data_file, "rt").read()[:200_000]
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = np.array([stoi[c] for c in text], dtype=np.uint16)


def get_batch():
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([torch.from_numpy((data[i:i + block_size]).astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy((data[i + 1:i + 1 + block_size]).astype(np.int64)) for i in ix])
    return x.to(device), y.to(device)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd),
                                 nn.Dropout(dropout))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(self.ln_1(x)).split(n_embd, dim=2)
        q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(vocab, n_embd), wpe=nn.Embedding(block_size, n_embd),
                                              h=nn.ModuleList([Block() for _ in range(n_layer)]),
                                              ln_f=nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -block_size:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("Inf")
            idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


model = GPT(len(chars)).to(device)
params = {pn: p for pn, p in model.named_parameters() if p.requires_grad}
groups = [{"params": [p for p in params.values() if p.dim() >= 2], "weight_decay": 0.1},
          {"params": [p for p in params.values() if p.dim() < 2], "weight_decay": 0.0}]
import inspect  # noqa: E402

fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type == "cuda"
optimizer = torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.99), **({"fused": True} if fused else {}))
scaler = torch.cuda.amp.GradScaler(enabled=(dtype == "float16"))
model = torch.compile(model) if False else model
print(f"number of parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")

t0 = time.time()
losses = torch.zeros(10)
for it in range(max_iters):
    lr = learning_rate * min(1.0, (it + 1) / 10)
    for group in optimizer.param_groups:
        group["lr"] = lr
    X, Y = get_batch()
    with ctx:
        _, loss = model(X, Y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    losses[it % 10] = loss.item()
    if it % 50 == 0:
        print(f"iter {it}: loss {loss.item():.4f}, time {(time.time() - t0) * 1000:.2f}ms")
print(f"final train loss {losses.mean():.4f}")

os.makedirs(out_dir, exist_ok=True)
checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": max_iters,
              "best_val_loss": losses.mean(), "config": {"n_layer": n_layer, "dropout": dropout, "device": device}}
torch.save(checkpoint, os.path.join(out_dir, "ckpt.pt"))
ckpt = torch.load(os.path.join(out_dir, "ckpt.pt"), map_location=device)
fresh = GPT(len(chars))
fresh.load_state_dict(ckpt["model"])
fresh.eval()
start = torch.tensor([stoi["\n"]], dtype=torch.long, device=device)[None, ...]
sample = fresh.generate(start, 40, temperature=0.8, top_k=10)
print("sample:", "".join(chars[i] for i in sample[0].tolist()).replace("\n", " | "))
print(f"checkpoint iter {ckpt['iter_num']} best {float(ckpt['best_val_loss']):.4f}")
