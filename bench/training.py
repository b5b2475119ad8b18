"""End-to-end training throughput, Lepton against the same model in PyTorch, side by side:

- MNIST MLP 784-128-64-10 (batch 128, Adam; torch with fused=True): one training step (forward,
  cross-entropy, backward, optimizer step) on batches already in memory, and one epoch over the
  60,000 MNIST images including batching (Lepton: Trainer.fit with its DataLoader; torch: the
  fastest plain loop, a randperm and tensor indexing per batch);
- MNIST CNN (Keras' mnist_cnn, batch 64, Adam): one training step;
- character GPT (4 layers x 4 heads x 128, block 64, batch 12, AdamW): one training step, also
  given in ms per iteration (the model is bench/gpt_reference.py's torch twin).

Rows whose layers are missing from this build of lepton.nn are skipped with a note. Figures are
samples/s (higher is better), ratio = torch time / Lepton time.
"""

import numpy as np

import lepton
from harness import Suite, main as bench_main

TARGETS = {"mlp": 1.5, "cnn": 1.0, "gpt": 1.3}  # the ratios to reach


def timing(quick, min_time):
    """Samples of Lepton and torch taken in turn, many of them: these machines are shared."""
    return dict(interleave=True, warmup=3, repeat=5 if quick else 15, min_time=min_time / 2 if quick else min_time)


def batches(rng, count, x_shape, classes, x_dtype=np.float32):
    """`count` (x, y) NumPy batches: x ~ N(0, 1) (or class ids for int x), y class ids."""
    out = []
    for _ in range(count):
        x = rng.integers(0, classes, x_shape) if x_dtype == np.int64 else rng.standard_normal(x_shape, dtype=x_dtype)
        out.append((x, rng.integers(0, classes, x_shape[:1] if x_dtype != np.int64 else x_shape)))
    return out


def step_pair(model, tmodel, opt, topt, data, loss, tloss):
    """Training-step closures for Lepton and torch cycling through the same batches."""
    import torch

    ours = [(lepton.from_numpy(x), lepton.from_numpy(y)) for x, y in data]
    theirs = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]
    state = {"i": 0, "j": 0}

    def lepton_step():
        x, y = ours[state["i"] % len(ours)]
        state["i"] += 1
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()

    def torch_step():
        x, y = theirs[state["j"] % len(theirs)]
        state["j"] += 1
        topt.zero_grad()
        tloss(tmodel(x), y).backward()
        topt.step()

    return lepton_step, torch_step


def copy_weights(model, tmodel):
    """torch model <- Lepton model's parameters (same names and order)."""
    import torch

    with torch.no_grad():
        for (name, p), (tname, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
            assert p.shape == tuple(tp.shape), (name, tname)
            tp.copy_(torch.from_numpy(np.array(p.detach().numpy(), copy=True)))


def mlp_rows(suite, rng, quick):
    import torch
    from lepton.models import MLP

    model = MLP()
    tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                 torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    copy_weights(model, tmodel)
    opt = lepton.optim.Adam(model.parameters(), lr=1e-3)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3, fused=True)
    steps = step_pair(model, tmodel, opt, topt, batches(rng, 8, (128, 784), 10), lepton.nn.functional.cross_entropy,
                      torch.nn.functional.cross_entropy)
    suite.add("MLP step, batch 128", 128, steps[0], {"torch": steps[1]}, **timing(quick, 0.2))

    from lepton.datasets import mnist
    from lepton.train import Trainer

    x, y = mnist(train=True).tensors()
    n = 10_000 if quick else len(y)
    x, y = x[:n].reshape([n, 784]).contiguous(), y[:n].contiguous()
    tx, ty = torch.from_numpy(x.numpy().copy()), torch.from_numpy(y.numpy().copy())
    trainer = Trainer(model, opt, lepton.nn.CrossEntropyLoss())
    epoch = {"lepton": 0}

    def lepton_epoch():
        epoch["lepton"] += 1
        trainer.fit((x, y), batch_size=128, epochs=epoch["lepton"], verbose=0)

    def torch_epoch():
        for idx in torch.randperm(n).split(128):
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tmodel(tx[idx]), ty[idx]).backward()
            topt.step()

    suite.add(f"MLP epoch of {n} incl. batching", n, lepton_epoch, {"torch": torch_epoch}, interleave=True,
              warmup=1, repeat=3 if quick else 7, min_time=0)


def cnn_rows(suite, rng, quick):
    import torch
    from lepton.models import MnistCNN

    model = MnistCNN()
    tnn = torch.nn
    tmodel = tnn.Sequential(tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2),
                            tnn.Dropout(0.25), tnn.Flatten(), tnn.Linear(9216, 128), tnn.ReLU(), tnn.Dropout(0.5),
                            tnn.Linear(128, 10))
    copy_weights(model, tmodel)
    opt = lepton.optim.Adam(model.parameters(), lr=1e-3)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3, fused=True)
    steps = step_pair(model, tmodel, opt, topt, batches(rng, 4, (64, 1, 28, 28), 10),
                      lepton.nn.functional.cross_entropy, torch.nn.functional.cross_entropy)
    suite.add("CNN step, batch 64", 64, steps[0], {"torch": steps[1]}, **timing(quick, 0.3))


def gpt_rows(suite, rng, quick):
    import torch
    from gpt_reference import torch_gpt
    from lepton.models import CharGPT

    vocab, block, batch = 65, 64, 12
    model = CharGPT(vocab, 4, 4, 128, block)
    tmodel = torch_gpt(torch, vocab, 4, 4, 128, block)
    copy_weights(model, tmodel)
    opt = lepton.optim.AdamW(model.parameters(), lr=1e-3)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-3, fused=True)

    def lm_loss(F):
        return lambda logits, y: F.cross_entropy(logits.reshape([-1, vocab]), y.reshape([-1]))

    steps = step_pair(model, tmodel, opt, topt, batches(rng, 8, (batch, block), vocab, np.int64),
                      lm_loss(lepton.nn.functional), lm_loss(torch.nn.functional))
    row = suite.add("char-GPT step, batch 12 x 64", batch, steps[0], {"torch": steps[1]}, **timing(quick, 0.3))
    print(f"{'':34} ms/iter: lepton {1e3 * row['seconds']['lepton']:.2f}  torch {1e3 * row['seconds']['torch']:.2f}")


def run(threads=None, quick=False):
    import torch

    if threads:
        lepton.set_num_threads(threads)
        torch.set_num_threads(threads)
    lepton.manual_seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    suite = Suite(f"training throughput (threads={lepton.get_num_threads()})", "samples/s", scale=1)
    suite.header()
    for key, rows, needs in (("mlp", mlp_rows, ()), ("cnn", cnn_rows, ("Conv2d", "MaxPool2d")),
                             ("gpt", gpt_rows, ("GPTBlock", "LayerNorm", "Embedding"))):
        missing = [n for n in needs if not hasattr(lepton.nn, n)]
        if missing:
            print(f"{key}: skipped, lepton.nn has no {', '.join(missing)} in this build")
            continue
        rows(suite, rng, quick)
    print("\n| model | Lepton samples/s | torch samples/s | Lepton / torch | target |\n|---|---:|---:|---:|---:|")
    for row in suite.rows:
        key = row["name"].split()[0].lower().replace("char-", "")
        print(f"| {row['name']} | {row['rate']['lepton']:,.0f} | {row['rate']['torch']:,.0f} | "
              f"{row['ratio']['torch']:.2f}x | {TARGETS[key]:.1f}x |")
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "an MLP epoch of 10,000 images and fewer timing repeats", threads_default=2)
