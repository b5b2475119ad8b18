"""Data loading: MNIST batches of 128 through lepton.data.DataLoader (batched __getitems__ fetch,
with and without the prefetch thread) against torch.utils.data.DataLoader (num_workers=0, per-sample
fetch + default_collate, what a torch user gets by default); a full MLP training step fed by each
loader, to show what prefetching overlaps; character windows for a GPT against nanoGPT's
get_batch; and the batched augmentation pipeline on its own."""

import itertools

import numpy as np

import lepton
from harness import Suite, main as bench_main
from lepton.data import DataLoader, TensorDataset
from lepton.data import transforms as T

BATCH = 128


def _drain(loader, n):
    for _ in itertools.islice(loader, n):
        pass


def run(threads=None, quick=False):
    import torch
    import torch.utils.data as tud

    if threads:
        lepton.set_num_threads(threads)
        torch.set_num_threads(threads)
    n_batches = 20 if quick else 100
    timing = dict(repeat=3 if quick else 7)
    mnist = lepton.datasets.mnist()
    x_all, y_all = mnist.tensors()
    tx, ty = torch.from_numpy(x_all.numpy()), torch.from_numpy(y_all.numpy())

    suite = Suite(f"data loading, MNIST batch {BATCH}, {n_batches} batches per call "
                  f"(threads={lepton.get_num_threads()})", "k samples/s")
    suite.header()
    work = n_batches * BATCH * 1e6  # the harness divides by 1e9: this reports thousands of samples/s
    torch_loader = tud.DataLoader(tud.TensorDataset(tx, ty), batch_size=BATCH, shuffle=True)
    torch_ref = {"torch DataLoader": lambda: _drain(torch_loader, n_batches)}
    for prefetch in (0, 2):
        idx_loader = DataLoader(mnist, batch_size=BATCH, shuffle=True, prefetch=prefetch)
        suite.add(f"IdxDataset uint8->float, prefetch={prefetch}", work, lambda: _drain(idx_loader, n_batches),
                  torch_ref, **timing)
        t_loader = DataLoader(TensorDataset(x_all, y_all), batch_size=BATCH, shuffle=True, prefetch=prefetch)
        suite.add(f"TensorDataset float32, prefetch={prefetch}", work, lambda: _drain(t_loader, n_batches),
                  torch_ref, **timing)

    # a training step per batch: prefetching overlaps the next fetch with the step's kernels
    model = lepton.nn.Sequential(lepton.nn.Linear(784, 128), lepton.nn.ReLU(), lepton.nn.Linear(128, 10))
    opt = lepton.optim.SGD(model.parameters(), lr=0.01)
    tmodel = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01)

    def train(loader, net, optimizer, functional):
        for xb, yb in itertools.islice(loader, n_batches):
            loss = functional.cross_entropy(net(xb.reshape(xb.shape[0], 784)), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    torch_train = {"torch loader+step": lambda: train(torch_loader, tmodel, topt, torch.nn.functional)}
    for prefetch in (0, 2):
        loader = DataLoader(mnist, batch_size=BATCH, shuffle=True, prefetch=prefetch)
        suite.add(f"MLP step fed by IdxDataset, prefetch={prefetch}", work,
                  lambda: train(loader, model, opt, lepton.nn.functional), torch_train, **timing)

    # GPT windows: 64 random windows of 256 characters
    text = lepton.datasets.shakespeare()
    chars = lepton.datasets.CharDataset(text, block_size=256)
    data = torch.from_numpy(chars.data.astype(np.int64))
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)

    def nanogpt_get_batch():
        ix = torch.randint(len(data) - 256, (64,), generator=gen)
        return torch.stack([data[i:i + 256] for i in ix]), torch.stack([data[i + 1:i + 257] for i in ix])

    suite.add("CharDataset.random_batch 64x256", 64 * 1e6, lambda: chars.random_batch(64, rng),
              {"nanoGPT get_batch (torch)": nanogpt_get_batch}, **timing)

    augment = T.Compose([T.RandomCrop(28, padding=2), T.RandomRotation(10)])
    xb = x_all[:BATCH]
    suite.add("RandomCrop(pad 2)+RandomRotation, batch", BATCH * 1e6, lambda: augment(xb, rng=rng), {}, **timing)
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "fewer batches and repeats")
