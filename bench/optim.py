"""Fused optimizer steps: AdamW over ~10M float32 params in ~100 tensors against
torch.optim.AdamW(fused=True), with the effective bandwidth (AdamW reads p, g, m, v and writes
p, m, v: 28 bytes per param) beside the copy bandwidth measured here (a 400 MB copy_ reads and
writes each byte once). Also the serial reference kernel, SGD with momentum and the grad norm."""


import numpy as np

import lepton
from harness import Suite, main as bench_main


def run(threads=None, quick=False):
    import torch

    if threads:
        lepton.set_num_threads(threads)
        torch.set_num_threads(threads)
    total = (1 << 20) if quick else 10_000_000
    rng = np.random.default_rng(0)
    # 100 tensors of varied sizes adding up to about `total` elements
    sizes = rng.integers(total // 200, 3 * total // 200, size=100)
    arrays = [rng.standard_normal(int(k), dtype=np.float32) for k in sizes]
    grads = [rng.standard_normal(len(a), dtype=np.float32) for a in arrays]
    n = int(sizes.sum())

    # each framework on memory it allocated itself
    lp = [lepton.nn.Parameter(lepton.from_numpy(a).clone()) for a in arrays]
    tp = [torch.nn.Parameter(torch.from_numpy(a).clone()) for a in arrays]
    for p, q, g in zip(lp, tp, grads):
        p.grad, q.grad = lepton.from_numpy(g).clone(), torch.from_numpy(g).clone()
    # a tiny lr keeps the weights finite however many timed steps run
    opt = lepton.optim.AdamW(lp, lr=1e-6)
    topt = torch.optim.AdamW(tp, lr=1e-6, fused=True)
    opt.step(), topt.step()  # the state is created outside the timing

    states = [opt.state[p] for p in lp]
    lists = ([p.grad for p in lp], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states])

    def reference():  # the serial scalar-loop kernel, to show what the fast one buys
        lepton._C._fused_adamw_(lp, *lists, [], [s["step"] for s in states], lr=1e-6, beta1=0.9, beta2=0.999,
                                weight_decay=1e-2, eps=1e-8, reference=True)

    suite = Suite(f"optimizers ({n / 1e6:.1f}M float32 params in {len(lp)} tensors, "
                  f"threads={lepton.get_num_threads()})", "GB/s")
    suite.header()
    adam = suite.add("AdamW step (28 B/param)", 28 * n, opt.step,
                     {"torch fused": topt.step, "lepton reference": reference})

    sgd = lepton.optim.SGD(lp, lr=1e-6, momentum=0.9)
    tsgd = torch.optim.SGD(tp, lr=1e-6, momentum=0.9, fused=True)
    sgd.step(), tsgd.step()
    suite.add("SGD momentum step (20 B/param)", 20 * n, sgd.step, {"torch fused": tsgd.step})

    lgrads, tgrads = [p.grad for p in lp], [p.grad for p in tp]
    suite.add("grad norm (4 B/param)", 4 * n, lambda: lepton._C._grad_norm(lgrads),
              {"torch": lambda: torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tgrads)))})

    # copy bandwidth: copy_ into memory already touched reads and writes every byte once (a
    # clone would also time the page faults of its fresh allocation)
    src = lepton.ones(10_000_000 if quick else 100_000_000)
    dst, tsrc = lepton.empty_like(src), torch.ones(src.numel())
    tdst = torch.empty_like(tsrc)
    dst.copy_(src), tdst.copy_(tsrc)
    copy = suite.add(f"copy_ {src.nbytes // 10**6} MB (2 B/byte)", 2 * src.nbytes, lambda: dst.copy_(src),
                     {"torch": lambda: tdst.copy_(tsrc)})
    adam_bw, copy_bw = adam["rate"]["lepton"], copy["rate"]["lepton"]
    print(f"\nAdamW: {adam['seconds']['lepton'] * 1e3:.2f} ms per step (torch fused "
          f"{adam['seconds']['torch fused'] * 1e3:.2f} ms); {adam_bw:.1f} GB/s effective = "
          f"{100 * adam_bw / copy_bw:.0f}% of the {copy_bw:.1f} GB/s copy bandwidth")
    return suite



if __name__ == "__main__":
    bench_main(run, __doc__, "1M params instead of 10M", threads_default=2)
