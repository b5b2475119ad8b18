"""Fused optimizer steps and gradient clipping against torch, at 10M and 100M parameters in
100 tensors of varied sizes: AdamW and SGD-with-momentum steps on float32 params, AdamW on
bfloat16 params with float32 master weights, and clip_grad_norm_ (float32 and bfloat16 grads).

Rates are millions of params per second (step time = params / rate). References:
- torch fused / foreach: torch.optim's fused=True and foreach=True implementations.
- bfloat16 with masters: torch has no master-weight option. "torch fused, bf16 state" steps the
  bfloat16 params directly (bf16 state, less memory traffic, loses small updates);
  "torch master by hand" is what a torch user writes for the same semantics: copy the bf16
  grads into the float32 masters' .grad, a fused AdamW step of the masters, copy the masters
  back into the bf16 params (three passes where Lepton makes one).
- the serial reference kernel shows what the parallel, vectorised one buys (10M only).
Memory traffic per param, for the GB/s in the summary: AdamW 28 B (fp32), also 28 B (bf16 + master:
reads the master, g, m, v and writes master, m, v and the bf16 param); SGD momentum 20 B;
clip_grad_norm_ 12 B fp32 / 6 B bf16 (the norm reads the grads, the scaling reads and writes
them).
"""

import gc

import numpy as np

import lepton
from harness import Suite, main as bench_main


def lists(total, seed=0):
    """100 float32 arrays of varied sizes adding up to about `total` elements, and their grads."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(total // 200, 3 * total // 200, size=100)
    return ([rng.standard_normal(int(k), dtype=np.float32) for k in sizes],
            [rng.standard_normal(int(k), dtype=np.float32) for k in sizes])


def lepton_params(arrays, grads, dtype=None):
    params = []
    for a, g in zip(arrays, grads):
        p, pg = lepton.from_numpy(a).clone(), lepton.from_numpy(g).clone()
        if dtype is not None:
            p, pg = p.to(dtype=dtype), pg.to(dtype=dtype)
        p = lepton.nn.Parameter(p)
        p.grad = pg
        params.append(p)
    return params


def torch_params(arrays, grads, dtype=None):
    import torch

    params = []
    for a, g in zip(arrays, grads):
        p = torch.nn.Parameter(torch.from_numpy(a).to(dtype or torch.float32, copy=True))
        p.grad = torch.from_numpy(g).to(dtype or torch.float32, copy=True)
        params.append(p)
    return params


def stepper(opt):
    opt.step()  # the state is created outside the timing
    return opt.step


def fp32_rows(suite, arrays, grads, n, label, with_reference):
    import torch

    lp, tp = lepton_params(arrays, grads), torch_params(arrays, grads)
    # a tiny lr keeps the weights finite however many timed steps run
    refs = {"torch fused": stepper(torch.optim.AdamW(tp, lr=1e-6, fused=True)),
            "torch foreach": stepper(torch.optim.AdamW(tp, lr=1e-6, foreach=True))}
    opt = lepton.optim.AdamW(lp, lr=1e-6)
    step = stepper(opt)
    if with_reference:
        states = [opt.state[p] for p in lp]
        args = ([p.grad for p in lp], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                [s["step"] for s in states])
        refs["lepton reference"] = lambda: lepton._C._fused_adamw_(
            lp, *args, lr=1e-6, beta1=0.9, beta2=0.999, weight_decay=1e-2, eps=1e-8, reference=True)
    rows = {"adamw": suite.add(f"AdamW fp32 {label}", n, step, refs, interleave=True, **timing(n))}
    del opt, step, refs
    sgd = stepper(lepton.optim.SGD(lp, lr=1e-6, momentum=0.9))
    trefs = {"torch fused": stepper(torch.optim.SGD(tp, lr=1e-6, momentum=0.9, fused=True)),
             "torch foreach": stepper(torch.optim.SGD(tp, lr=1e-6, momentum=0.9, foreach=True))}
    rows["sgd"] = suite.add(f"SGD momentum fp32 {label}", n, sgd, trefs, interleave=True, **timing(n))
    lgrads, tgrads = [p.grad for p in lp], [p.grad for p in tp]
    rows["clip"] = suite.add(f"clip_grad_norm_ fp32 {label}", n, lambda: lepton.nn.utils.clip_grad_norm_(lp, 1e9),
                             {"torch foreach": lambda: torch.nn.utils.clip_grad_norm_(tp, 1e9, foreach=True)},
                             interleave=True, **timing(n))
    del lgrads, tgrads
    return rows


def bf16_rows(suite, arrays, grads, n, label):
    import torch

    lp = lepton_params(arrays, grads, lepton.bfloat16)
    tp = torch_params(arrays, grads, torch.bfloat16)
    masters = [torch.nn.Parameter(p.detach().float()) for p in tp]
    master_opt = torch.optim.AdamW(masters, lr=1e-6, fused=True)
    tgrads = [p.grad for p in tp]
    for m in masters:
        m.grad = torch.empty_like(m)

    def torch_master_step():
        torch._foreach_copy_([m.grad for m in masters], tgrads)
        master_opt.step()
        with torch.no_grad():
            torch._foreach_copy_(tp, masters)

    torch_master_step()
    refs = {"torch fused, bf16 state": stepper(torch.optim.AdamW(tp, lr=1e-6, fused=True)),
            "torch master by hand": torch_master_step}
    rows = {"adamw_bf16": suite.add(f"AdamW bf16+master {label}", n, stepper(lepton.optim.AdamW(lp, lr=1e-6)), refs,
                                    interleave=True, **timing(n))}
    rows["clip_bf16"] = suite.add(f"clip_grad_norm_ bf16 {label}", n,
                                  lambda: lepton.nn.utils.clip_grad_norm_(lp, 1e9),
                                  {"torch foreach": lambda: torch.nn.utils.clip_grad_norm_(tp, 1e9, foreach=True)},
                                  interleave=True, **timing(n))
    return rows


def timing(n):
    # 100M-param steps take a good fraction of a second: fewer, single-call samples
    return dict(warmup=1, repeat=5, min_time=0.0) if n >= 50_000_000 else dict(warmup=2, repeat=7, min_time=0.2)


def run(threads=None, quick=False):
    import torch

    if threads:
        lepton.set_num_threads(threads)
        torch.set_num_threads(threads)
    suite = Suite(f"optimizer steps and clipping (threads={lepton.get_num_threads()})", "Mparams/s", scale=1e6)
    suite.header()
    summary = []
    for total in [1 << 20] if quick else [10_000_000, 100_000_000]:
        arrays, grads = lists(total)
        n = sum(len(a) for a in arrays)
        label = f"{n / 1e6:.0f}M"
        rows = fp32_rows(suite, arrays, grads, n, label, with_reference=total <= 10_000_000)
        gc.collect()
        rows.update(bf16_rows(suite, arrays, grads, n, label))
        gc.collect()
        for key, nbytes in [("adamw", 28), ("sgd", 20), ("adamw_bf16", 28), ("clip", 12), ("clip_bf16", 6)]:
            sec = rows[key]["seconds"]
            others = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in sec.items() if k != "lepton")
            summary.append(f"{rows[key]['name']:<30} lepton {sec['lepton'] * 1e3:7.1f} ms "
                           f"({nbytes * n / sec['lepton'] / 1e9:5.1f} GB/s); {others}")
        del arrays, grads, rows
        gc.collect()
    print("\nstep times:\n" + "\n".join(summary))
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "1M params instead of 10M and 100M", threads_default=2)
