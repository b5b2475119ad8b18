"""The norm family, forward + backward, against torch on the same thread count: layer_norm, batch_norm2d,
embedding, dropout, and the fused mse / bce-with-logits losses against the same losses composed of
elementwise ops. Each row also times Lepton's serial reference kernels (what the fast ones buy).

Rates are GB/s of the least memory traffic: the forward and the backward each read their inputs
and write their outputs once (the embedding's weight gradient is a dense table, so its backward
writes all of it). Large tensors, but some of a 25 MB operand can stay in a 32 MB L3 between calls.
"""

import numpy as np

import lepton
import lepton.nn.functional as F
from harness import Suite, main as bench_main


def run(threads=2, quick=False):
    import torch
    import torch.nn.functional as TF

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)

    def pair(*shape, requires_grad=False):  # the same values in both frameworks, each owning its memory
        x = rng.standard_normal(shape, dtype=np.float32)
        a, t = lepton.from_numpy(x.copy()), torch.from_numpy(x.copy())
        return a.requires_grad_(requires_grad), t.requires_grad_(requires_grad)

    def reference(fn):  # the same call on the serial reference kernels
        def ref():
            lepton._C._set_norm_reference(True)
            try:
                fn()
            finally:
                lepton._C._set_norm_reference(False)
        return ref

    suite = Suite(f"norm family float32 (cpu, threads={threads})", "GB/s")
    suite.header()
    timing = dict(repeat=5 if quick else 7)
    f32 = 4

    def entry(name, nbytes, ours, theirs, composed=None, with_reference=True):
        refs = {"torch": theirs}
        if composed:
            refs["composed"] = composed
        if with_reference:
            refs["reference"] = reference(ours)
        suite.add(name, nbytes, ours, refs, interleave=True, **timing)

    # layer_norm [8192, 768]: forward reads x, writes y; backward reads x and dy, writes dx
    rows, cols = (2048 if quick else 8192), 768
    (x, tx), (dy, tdy) = pair(rows, cols, requires_grad=True), pair(rows, cols)
    (w, tw), (b, tb) = pair(cols, requires_grad=True), pair(cols, requires_grad=True)
    n = rows * cols * f32
    entry(f"layer_norm fwd [{rows}, {cols}]", 2 * n, lambda: F.layer_norm(x.detach(), (cols,), w.detach(), b.detach()),
          lambda: TF.layer_norm(tx.detach(), (cols,), tw.detach(), tb.detach()))
    entry(f"layer_norm fwd+bwd [{rows}, {cols}]", 5 * n,
          lambda: lepton.autograd.grad([F.layer_norm(x, (cols,), w, b)], [x, w, b], [dy]),
          lambda: torch.autograd.grad([TF.layer_norm(tx, (cols,), tw, tb)], [tx, tw, tb], [tdy]))

    # batch_norm2d [32, 64, 56, 56], training (batch statistics, running statistics updated)
    shape = (8 if quick else 32, 64, 56, 56)
    (x, tx), (dy, tdy) = pair(*shape, requires_grad=True), pair(*shape)
    (w, tw), (b, tb) = pair(64, requires_grad=True), pair(64, requires_grad=True)
    rm, rv, trm, trv = lepton.zeros(64), lepton.ones(64), torch.zeros(64), torch.ones(64)
    n = int(np.prod(shape)) * f32
    entry(f"batch_norm2d fwd {list(shape)}", 2 * n,
          lambda: F.batch_norm(x.detach(), rm, rv, w.detach(), b.detach(), training=True),
          lambda: TF.batch_norm(tx.detach(), trm, trv, tw.detach(), tb.detach(), training=True))
    entry(f"batch_norm2d fwd+bwd {list(shape)}", 5 * n,
          lambda: lepton.autograd.grad([F.batch_norm(x, rm, rv, w, b, training=True)], [x, w, b], [dy]),
          lambda: torch.autograd.grad([TF.batch_norm(tx, trm, trv, tw, tb, training=True)], [tx, tw, tb], [tdy]))

    # embedding: 50k x 768 table, 8192 indices; the backward writes a dense [50k, 768] gradient
    vocab, dim, count = 50000, 768, 8192
    (table, ttable) = pair(vocab, dim, requires_grad=True)
    idx = rng.integers(0, vocab, count)
    i, ti = lepton.tensor(idx), torch.tensor(idx)
    (dy, tdy) = pair(count, dim)
    rows_bytes = count * dim * f32
    entry(f"embedding fwd {vocab}x{dim}, {count} idx", 2 * rows_bytes,
          lambda: F.embedding(i, table.detach()), lambda: TF.embedding(ti, ttable.detach()))
    entry(f"embedding fwd+bwd {vocab}x{dim}, {count} idx", 3 * rows_bytes + vocab * dim * f32,
          lambda: lepton.autograd.grad([F.embedding(i, table)], [table], [dy]),
          lambda: torch.autograd.grad([TF.embedding(ti, ttable)], [ttable], [tdy]))

    # dropout p=0.1 of 16M elements (forward: read x, write y)
    n = (1 << 22) if quick else (1 << 24)
    (x, tx) = pair(n)
    entry(f"dropout fwd p=0.1, {n >> 20}M", 2 * n * f32, lambda: F.dropout(x, 0.1), lambda: TF.dropout(tx, 0.1))
    (xg, txg), (dy, tdy) = pair(n, requires_grad=True), pair(n)
    entry(f"dropout fwd+bwd p=0.1, {n >> 20}M", 4 * n * f32,
          lambda: lepton.autograd.grad([F.dropout(xg, 0.1)], [xg], [dy]),
          lambda: torch.autograd.grad([TF.dropout(txg, 0.1)], [txg], [tdy]))

    # losses, mean-reduced, forward + backward of the input: fused kernels vs the composed forms
    n = (1 << 20) if quick else (1 << 22)
    (x, tx), (y, ty) = pair(n, requires_grad=True), pair(n)
    yb = lepton.from_numpy(rng.uniform(0, 1, n).astype(np.float32))
    tyb = torch.from_numpy(yb.numpy().copy())
    entry(f"mse_loss fwd+bwd {n >> 20}M", 5 * n * f32, lambda: lepton.autograd.grad([F.mse_loss(x, y)], [x]),
          lambda: torch.autograd.grad([TF.mse_loss(tx, ty)], [tx]),
          composed=lambda: lepton.autograd.grad([(x - y).square().mean()], [x]))
    entry(f"bce_with_logits fwd+bwd {n >> 20}M", 5 * n * f32,
          lambda: lepton.autograd.grad([F.binary_cross_entropy_with_logits(x, yb)], [x]),
          lambda: torch.autograd.grad([TF.binary_cross_entropy_with_logits(tx, tyb)], [tx]),
          composed=lambda: lepton.autograd.grad([((1 - yb) * x - F.logsigmoid(x)).mean()], [x]))
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "smaller shapes", threads_default=2)
