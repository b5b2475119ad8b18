"""Mixed precision: a training step in float32 against the same step under autocast (bfloat16 on
the CPU; float16 with a GradScaler, and bfloat16, on CUDA), Lepton and torch side by side from
the same run:

- MLP 784-1024-1024-10, batch 256, SGD (large enough that the GEMMs dominate);
- character GPT (4 layers x 4 heads x 128, block 64, batch 12, AdamW), bench/gpt_reference.py's
  torch twin.

On the CPU, Lepton's bfloat16 GEMM runs on AVX512-BF16 (vdpbf16ps, about twice the float32
GEMM) where the processor has it and widens the operands to float32 otherwise; conv and
attention compute in float32 between casts, so the MLP gains from autocast and the GPT less.
Figures are samples/s (higher is better); ratio = torch time / Lepton time.
"""

import numpy as np

import lepton
from harness import Suite, main as bench_main
from training import batches, copy_weights, timing


def make_step(model, opt, data, loss_fn, device, amp_dtype=None, scaler=None, torch_mode=False):
    """A closure running one training step on the next batch, optionally under autocast/GradScaler."""
    import torch

    lib = torch if torch_mode else lepton
    conv = (lambda a: torch.from_numpy(a).to(device)) if torch_mode else (lambda a: lepton.from_numpy(a).to(device))
    dev_type = device.split(":")[0]
    sync = torch.cuda.synchronize if torch_mode and dev_type == "cuda" else (
        lepton.cuda.synchronize if dev_type == "cuda" else (lambda: None))
    data = [(conv(x), conv(y)) for x, y in data]
    state = {"i": 0}

    def step():
        x, y = data[state["i"] % len(data)]
        state["i"] += 1
        opt.zero_grad()
        with lib.autocast(dev_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        sync()

    return step


def mlp_pair(torch, device):
    model = lepton.nn.Sequential(lepton.nn.Flatten(), lepton.nn.Linear(784, 1024), lepton.nn.ReLU(),
                                 lepton.nn.Linear(1024, 1024), lepton.nn.ReLU(), lepton.nn.Linear(1024, 10))
    tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 1024), torch.nn.ReLU(),
                                 torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10))
    copy_weights(model, tmodel)
    return (model.to(device), tmodel.to(device), lambda p: lepton.optim.SGD(p, lr=1e-2),
            lambda p: torch.optim.SGD(p, lr=1e-2), (256, 784), 10, np.float32,
            lepton.nn.functional.cross_entropy, torch.nn.functional.cross_entropy)


def gpt_pair(torch, device):
    from gpt_reference import torch_gpt
    from lepton.models import CharGPT

    vocab, block = 65, 64
    model, tmodel = CharGPT(vocab, 4, 4, 128, block), torch_gpt(torch, vocab, 4, 4, 128, block)
    copy_weights(model, tmodel)

    def lm_loss(F):
        return lambda logits, y: F.cross_entropy(logits.reshape([-1, vocab]), y.reshape([-1]))

    return (model.to(device), tmodel.to(device), lambda p: lepton.optim.AdamW(p, lr=1e-3),
            lambda p: torch.optim.AdamW(p, lr=1e-3), (12, block), vocab, np.int64,
            lm_loss(lepton.nn.functional), lm_loss(torch.nn.functional))


def run(threads=None, quick=False, device="cpu"):
    import torch

    if threads:
        lepton.set_num_threads(threads)
        torch.set_num_threads(threads)
    lepton.manual_seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cuda = device.startswith("cuda")
    suite = Suite(f"autocast training step on {device} (threads={lepton.get_num_threads()})", "samples/s", scale=1)
    suite.header()
    modes = [("float32", None, False)]
    modes += [("autocast float16 + GradScaler", "float16", True), ("autocast bfloat16", "bfloat16", False)] if cuda \
        else [("autocast bfloat16", "bfloat16", False)]
    summary = []
    for name, pair in (("MLP 784-1024-1024-10", mlp_pair), ("char-GPT 4x4x128", gpt_pair)):
        per_mode, data = {}, None
        for mode, dt, scaled in modes:
            lepton.manual_seed(0)  # every mode trains the same fresh models on the same batches
            model, tmodel, opt_fn, topt_fn, x_shape, classes, x_dtype, loss, tloss = pair(torch, device)
            data = data or batches(rng, 4, x_shape, classes, x_dtype)
            scaler = lepton.amp.GradScaler(device.split(":")[0]) if scaled else None
            tscaler = torch.amp.GradScaler(device.split(":")[0]) if scaled else None
            ours = make_step(model, opt_fn(model.parameters()), data, loss, device,
                             getattr(lepton, dt) if dt else None, scaler)
            theirs = make_step(tmodel, topt_fn(tmodel.parameters()), data, tloss, device,
                               getattr(torch, dt) if dt else None, tscaler, torch_mode=True)
            row = suite.add(f"{name} {mode}", x_shape[0], ours, {"torch": theirs}, **timing(quick, 0.3))
            per_mode[mode] = row["seconds"]
        base = per_mode["float32"]
        for mode in per_mode:
            if mode != "float32":
                summary.append((name, mode, base["lepton"] / per_mode[mode]["lepton"],
                                base["torch"] / per_mode[mode]["torch"]))
    print("\n| model | mode | Lepton speed-up over its float32 | torch speed-up over its float32 |\n|---|---|---:|---:|")
    for name, mode, ours, theirs in summary:
        print(f"| {name} | {mode} | {ours:.2f}x | {theirs:.2f}x |")
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "fewer timing repeats", threads_default=2, device=True)
