"""Training steps of GPTs from 0.8M to 350M parameters, written the way a user writes one (not
Lepton's model zoo), in Lepton and in PyTorch from ONE model source:

    python bench/scale.py                                   # 0.8M and 10.8M, 10 steps after 3 warm-up
    python bench/scale.py --sizes all --checkpoint --threads 16 --json bench/results/scale.json
    python bench/scale.py --sizes 163M,350M --steps 5 --warmup 2 --checkpoint-only

The model (build() below) takes the framework as a module, `torch` or `lepton`, and uses only
what a nanoGPT-style script uses: nn.Embedding (token + position), blocks of LayerNorm ->
nn.Linear qkv -> F.scaled_dot_product_attention(is_causal=True) -> nn.Linear proj -> residual,
LayerNorm -> Linear 4x -> GELU -> Linear -> residual; final LayerNorm, an untied Linear head,
F.cross_entropy; AdamW(lr=3e-4, weight_decay=0.1), float32. --checkpoint adds rows with every
block under <engine>.utils.checkpoint.checkpoint(block, x, use_reentrant=False).

Each (size, engine, checkpointing) runs in a fresh worker process (this script with --worker),
so peak RSS is per engine: /proc's VmHWM of the worker, which includes the framework's own
libraries (getrusage's ru_maxrss is kept in the JSON too, but on Linux a child's ru_maxrss starts
from its parent's high-water mark at exec). Lepton's workers also give
lepton.cpu.max_memory_allocated() (the most bytes its tensors held at once).
Both engines see the same token batch (numpy, --seed); weights come from each engine's own
seeded default init, or with --same-init from the same numpy values, when the step-0 losses
must agree (they are ~ln(vocab) either way).

Figures: ms/step is the median of --steps timed steps (forward + loss, backward, AdamW step,
zero_grad, loss.item()) after --warmup untimed ones; model FLOPs per step are PaLM's/nanoGPT's
(6·N + 12·L·d·T)·tokens, N the weights outside the two embedding tables (the untied head
counts), L layers, d width, T block; checkpointing's recomputation is not counted (MFU, not
HFU). % peak is of the FMA peak of --threads threads measured by bench/fma_peak.cpp (as
bench/gemm.py does). Lepton/torch = torch ms / Lepton ms at the same size and checkpointing
(>1: Lepton faster); with --rounds R the pair runs R times in alternating order and each
figure is the median of the rounds' medians. `lepton bench scale [--quick] [--threads N]` runs
it too (--quick: 0.8M only, 3 steps after 1 warm-up).
"""

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))

SIZES = {
    "0.8M": dict(n_layer=4, n_embd=128, n_head=4, block=64, batch=12, vocab=65),
    "10.8M": dict(n_layer=6, n_embd=384, n_head=6, block=256, batch=16, vocab=65),
    "163M": dict(n_layer=12, n_embd=768, n_head=12, block=1024, batch=2, vocab=50304),
    "350M": dict(n_layer=24, n_embd=1024, n_head=16, block=1024, batch=1, vocab=50304),
}  # "163M": GPT-2 small with the head untied (163.1M weights); "350M": GPT-2 medium's shape, 406.4M untied
ENGINES = ("lepton", "torch")
MARK = "SCALE_RESULT "  # a worker's one line of results on stdout


# ---- the model: one source, either framework ----------------------------------------------------

def build(torch, cfg, checkpoint_blocks=False):
    """A GPT from `torch` (the torch module or the lepton module), written as a user would."""
    nn, F = torch.nn, torch.nn.functional
    checkpoint = importlib.import_module(torch.__name__ + ".utils.checkpoint").checkpoint
    n_embd, n_head = cfg["n_embd"], cfg["n_head"]

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            q = q.view(B, T, n_head, C // n_head).transpose(1, 2)
            k = k.view(B, T, n_head, C // n_head).transpose(1, 2)
            v = v.view(B, T, n_head, C // n_head).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(n_embd, 4 * n_embd)
            self.gelu = nn.GELU()
            self.c_proj = nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x = x + self.mlp(self.ln_2(x))
            return x

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(cfg["vocab"], n_embd)
            self.wpe = nn.Embedding(cfg["block"], n_embd)
            self.h = nn.ModuleList([Block() for _ in range(cfg["n_layer"])])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, cfg["vocab"], bias=False)

        def forward(self, idx, targets):
            B, T = idx.size()
            pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                x = checkpoint(block, x, use_reentrant=False) if checkpoint_blocks else block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    return GPT()


def n_params(cfg):
    """Weights of build(cfg), counted from the shapes (the same in both engines)."""
    d, v, L = cfg["n_embd"], cfg["vocab"], cfg["n_layer"]
    block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
    return v * d + cfg["block"] * d + L * block + 2 * d + d * v


def flops_per_step(cfg):
    """PaLM's / nanoGPT's (6·N + 12·L·d·T) per token times the step's tokens; N without the
    token and position tables (lookups, not products); the untied head is in N."""
    d, L, T = cfg["n_embd"], cfg["n_layer"], cfg["block"]
    n = n_params(cfg) - cfg["vocab"] * d - T * d
    return (6 * n + 12 * L * d * T) * cfg["batch"] * T


# ---- worker: one engine, one size, in its own process -------------------------------------------

def same_init(torch, model, seed):
    """Every parameter from one numpy stream in named_parameters order: N(0, 0.02) weights,
    zero biases, unit LayerNorm scales (the same values in either engine)."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            if name.endswith("bias"):
                arr = np.zeros(shape, np.float32)
            elif ".ln_" in name or name.startswith("ln_"):
                arr = np.ones(shape, np.float32)
            else:
                arr = (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
            p.copy_(torch.from_numpy(arr))


def rss_mb():
    """This process's peak resident set in MB: VmHWM where /proc has it (the high-water mark of
    this exec'd image alone), else getrusage's ru_maxrss. ru_maxrss is also recorded, but on Linux
    it starts from the parent's high-water mark at exec, so it can only be read as a bound."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return ru_maxrss_mb()


def ru_maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args):
    import numpy as np

    result = {"engine": args.engine, "size": args.size, "checkpoint": args.ckpt}
    try:
        torch = importlib.import_module(args.engine)
        torch.set_num_threads(args.threads)
        result["threads"] = torch.get_num_threads()
        result["rss_after_import_mb"] = rss_mb()
        cfg = SIZES[args.size]
        torch.manual_seed(args.seed)
        model = build(torch, cfg, checkpoint_blocks=args.ckpt)
        if args.same_init:
            same_init(torch, model, args.seed)
        result["params"] = sum(p.numel() for p in model.parameters())
        assert result["params"] == n_params(cfg), (result["params"], n_params(cfg))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, **({"fused": True} if args.fused else {}))
        tokens = np.random.default_rng(args.seed).integers(0, cfg["vocab"], size=(cfg["batch"], cfg["block"] + 1))
        x, y = torch.from_numpy(tokens[:, :-1].copy()), torch.from_numpy(tokens[:, 1:].copy())
        if args.engine == "lepton":
            result["allocated_after_build_mb"] = torch.cpu.memory_allocated() / 2**20

        def step():
            loss = model(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        losses, times = [], []
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            losses.append(step())
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
            if args.verbose:
                print(f"  [{args.engine} {args.size}{' ckpt' if args.ckpt else ''}] step {i}: loss {losses[-1]:.4f} "
                      f"{1e3 * (time.perf_counter() - t0):.1f} ms", file=sys.stderr, flush=True)
        if not all(math.isfinite(v) for v in losses):
            raise FloatingPointError(f"non-finite loss: {losses}")
        result.update(step0_loss=losses[0], last_loss=losses[-1], step_ms=[1e3 * t for t in times],
                      ms=1e3 * statistics.median(times), peak_rss_mb=rss_mb(), ru_maxrss_mb=ru_maxrss_mb())
        if args.engine == "lepton":
            result["max_memory_allocated_mb"] = torch.cpu.max_memory_allocated() / 2**20
        code = 0
    except BaseException as e:  # reported to the parent as the row's error
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
        traceback.print_exc()
        code = 1
    print(MARK + json.dumps(result), flush=True)
    return code


# ---- parent: workers in turn, the table, the JSON -----------------------------------------------

def run_worker(args, engine, size, ckpt):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--engine", engine, "--size", size,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--seed", str(args.seed)]
    cmd += ["--ckpt"] * ckpt + ["--same-init"] * args.same_init + ["--fused"] * args.fused + ["--verbose"] * args.verbose
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    try:  # stderr passes through (tracebacks, --verbose progress); stdout carries the result
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "size": size, "checkpoint": ckpt, "error": f"timed out after {args.timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if lines:
        res = json.loads(lines[-1][len(MARK):])
    else:
        res = {"engine": engine, "size": size, "checkpoint": ckpt,
               "error": f"worker exited with code {proc.returncode} and no result (killed? out of memory?)"}
    res["wall_s"] = time.perf_counter() - t0
    return res


def combine(rounds):
    """One row from a configuration's rounds: medians of their medians, the highest memory."""
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return rounds[-1]
    row = dict(ok[0])
    row["ms"] = statistics.median(r["ms"] for r in ok)
    row["round_ms"] = [r["ms"] for r in ok]
    for key in ("peak_rss_mb", "max_memory_allocated_mb"):
        if key in row:
            row[key] = max(r[key] for r in ok)
    row.pop("step_ms")
    row["step_ms"] = [r["step_ms"] for r in ok]
    return row


def fmt(v, spec, empty="-"):
    return empty if v is None else format(v, spec)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=None, help=f"comma-separated from {', '.join(SIZES)}, or 'all' "
                                                          "(default 0.8M,10.8M; --quick: 0.8M)")
    p.add_argument("--engines", default="lepton,torch", help="comma-separated (default lepton,torch)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per run (default 10; --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; --quick 1)")
    p.add_argument("--rounds", type=int, default=1, help="run each engine pair this many times, alternating order")
    p.add_argument("--checkpoint", action="store_true", help="also rows with activation checkpointing per block")
    p.add_argument("--checkpoint-only", action="store_true", help="only the checkpointed rows")
    p.add_argument("--same-init", action="store_true", help="identical numpy weights in both engines")
    p.add_argument("--fused", action="store_true", help="AdamW(fused=True) in both engines")
    p.add_argument("--threads", type=int, default=2, help="threads for each engine (default 2)")
    p.add_argument("--peak-gflops", type=float, default=None, help="FMA peak to use instead of measuring it")
    p.add_argument("--timeout", type=float, default=None, help="seconds a worker may run before it is stopped")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="0.8M only, 3 steps after 1 warm-up")
    p.add_argument("--verbose", action="store_true", help="workers print every step to stderr")
    p.add_argument("--json", default=os.path.join(HERE, "results", "scale.json"),
                   help="write results here (default bench/results/scale.json; '' for none)")
    # worker side (the parent passes these)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    p.add_argument("--size", choices=list(SIZES), help=argparse.SUPPRESS)
    p.add_argument("--ckpt", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.steps is None:
        args.steps = 3 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1 or args.threads < 1:
        p.error("--steps, --rounds and --threads must be >= 1, --warmup >= 0")
    if args.worker:
        return worker(args)

    if args.sizes is None:
        args.sizes = "0.8M" if args.quick else "0.8M,10.8M"
    sizes = list(SIZES) if args.sizes == "all" else [s.strip() for s in args.sizes.split(",") if s.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for s in sizes:
        if s not in SIZES:
            p.error(f"unknown size {s!r} (known: {', '.join(SIZES)})")
    for e in engines:
        if e not in ENGINES:
            p.error(f"unknown engine {e!r} (known: {', '.join(ENGINES)})")
    modes = [True] if args.checkpoint_only else [False, True] if args.checkpoint else [False]

    from gemm import fma_peak  # compiles and runs bench/fma_peak.cpp

    peak = args.peak_gflops or fma_peak(args.threads)
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    print(f"## GPT training step at scale (cpu, float32, AdamW{' fused' if args.fused else ''}; "
          f"threads={args.threads}, torch {torch_version}, FMA peak "
          f"{fmt(peak, '.0f', 'unknown')} GFLOP/s{' (given)' if args.peak_gflops else ' (measured)'})")
    print(f"median of {args.steps} steps after {args.warmup} warm-up, {args.rounds} round(s); one worker process "
          f"per row; ratio = torch ms / Lepton ms (>1: Lepton faster)", flush=True)

    results = {"config": {k: getattr(args, k) for k in ("steps", "warmup", "rounds", "threads", "same_init",
                                                        "fused", "seed")},
               "peak_gflops": peak, "peak_measured": not args.peak_gflops, "torch": torch_version, "rows": []}

    env = {}

    def save():
        if not args.json:
            return
        if not env:  # harness.environment() imports torch: in a child, to keep this process small
            out = subprocess.run([sys.executable, "-c", "import json, harness; print(json.dumps(harness.environment()))"],
                                 cwd=HERE, stdout=subprocess.PIPE, text=True).stdout
            env.update(json.loads(out.strip().splitlines()[-1]) if out.strip() else {})
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"environment": env, "scale": results}, f, indent=1)

    status = 0
    for size in sizes:
        cfg = SIZES[size]
        flops = flops_per_step(cfg)
        tokens = cfg["batch"] * cfg["block"]
        print(f"\n{size}: {cfg['n_layer']} layers x {cfg['n_head']} heads x {cfg['n_embd']}, block {cfg['block']}, "
              f"batch {cfg['batch']}, vocab {cfg['vocab']}; {n_params(cfg) / 1e6:.2f}M parameters, "
              f"{flops / 1e9:.2f} GFLOP/step", flush=True)
        for ckpt in modes:
            rounds = {e: [] for e in engines}
            for r in range(args.rounds):
                for engine in engines if r % 2 == 0 else engines[::-1]:
                    res = run_worker(args, engine, size, ckpt)
                    rounds[engine].append(res)
                    if "error" in res:
                        print(f"  {engine}{' ckpt' if ckpt else ''}: FAILED {res['error']}", flush=True)
                    else:
                        print(f"  {engine}{' ckpt' if ckpt else ''}: {res['ms']:.1f} ms/step, step-0 loss "
                              f"{res['step0_loss']:.4f}, peak RSS {res['peak_rss_mb']:.0f} MB "
                              f"({res['wall_s']:.0f} s)", flush=True)
                        if res.get("threads") != args.threads:
                            print(f"  warning: {engine} ran {res.get('threads')} threads, not {args.threads}")
            rows = {e: combine(rs) for e, rs in rounds.items()}
            for engine, row in rows.items():
                row.update(size=size, checkpoint=ckpt, cfg=cfg, tokens_per_step=tokens, flops_per_step=flops)
                if "error" in row:
                    status = 1
                    continue
                sec = row["ms"] / 1e3
                row["tokens_per_s"] = tokens / sec
                row["gflops"] = flops / sec / 1e9
                row["percent_of_peak"] = 100 * row["gflops"] / peak if peak else None
            lep, tor = rows.get("lepton"), rows.get("torch")
            if lep and tor and "error" not in lep and "error" not in tor:
                lep["ratio_vs_torch"] = tor["ms"] / lep["ms"]
                print(f"  step-0 loss: lepton {lep['step0_loss']:.4f}  torch {tor['step0_loss']:.4f}  "
                      f"ln(vocab) {math.log(cfg['vocab']):.4f}"
                      + (f"  |diff| {abs(lep['step0_loss'] - tor['step0_loss']):.2e} (same weights)"
                         if args.same_init else ""), flush=True)
            results["rows"].extend(rows.values())
            save()

    print("\n| size | engine | ckpt | ms/step | tokens/s | % peak | peak RSS MB | Lepton alloc MB | Lepton/torch |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for row in results["rows"]:
        head = f"| {row['size']} | {row['engine']} | {'yes' if row['checkpoint'] else 'no'} |"
        if "error" in row:
            print(f"{head} failed: {row['error'].splitlines()[0][:120]} | | | | | |")
            continue
        print(f"{head} {row['ms']:.1f} | {row['tokens_per_s']:,.0f} | {fmt(row['percent_of_peak'], '.1f')} | "
              f"{row['peak_rss_mb']:,.0f} | {fmt(row.get('max_memory_allocated_mb'), ',.0f')} | "
              f"{fmt(row.get('ratio_vs_torch'), '.2f')}{'x' if row.get('ratio_vs_torch') else ''} |")
    if args.json:
        print(f"\nwrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
