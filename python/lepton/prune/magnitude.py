"""Unstructured magnitude pruning with masks, and fine-tuning under those masks."""

import numpy as np

import lepton
from lepton import nn
from lepton.autograd import no_grad

__all__ = ["magnitude", "apply_masks", "remove", "sparsity", "fine_tune"]

_PRUNABLE = (nn.Linear, nn.Conv2d)
_RECURRENT = (nn.RNNBase, nn.RNNCellBase)


def _weights(model):
    """(module, weight name) of each prunable matrix: Linear/Conv2d weights and the recurrent layers'
    weight_ih/weight_hh(/weight_hr) matrices; their masks are buffers named <weight name>_mask."""
    found = []
    for _, m in model.named_modules():
        if isinstance(m, _PRUNABLE):
            found.append((m, "weight"))
        elif isinstance(m, _RECURRENT):
            found += [(m, n) for n, p in m._parameters.items() if n.startswith("weight") and p is not None]
    return found


def _keep_mask(scores, n_prune):
    """A float32 mask of scores' shape with the n_prune smallest entries at 0 (ties broken by position)."""
    flat = scores.reshape(-1)
    mask = np.ones(flat.size, np.float32)
    if n_prune > 0:
        mask[np.argpartition(flat, n_prune - 1, kind="introselect")[:n_prune]] = 0
    return mask.reshape(scores.shape)


def magnitude(model, amount, scope="global"):
    """Zeroes the fraction `amount` (0 ≤ amount ≤ 1) of Linear/Conv2d weights (and RNN/LSTM/GRU weight
    matrices) with the smallest |w|: over all of them together (scope='global') or in each matrix
    (scope='layer'). Weights that are already zero count as pruned first, so repeated calls prune
    further. Returns the sparsity."""
    if not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"prune.magnitude: amount must be in [0, 1], got {amount}")
    if scope not in ("global", "layer"):
        raise ValueError(f"prune.magnitude: scope must be 'global' or 'layer', got {scope!r}")
    layers = _weights(model)
    if not layers:
        raise ValueError("prune.magnitude: the model has no Linear, Conv2d or recurrent layer")
    scores = [np.abs(getattr(m, n).detach().float().numpy()) for m, n in layers]
    if scope == "layer":
        masks = [_keep_mask(s, int(round(amount * s.size))) for s in scores]
    else:
        total = sum(s.size for s in scores)
        flat = _keep_mask(np.concatenate([s.reshape(-1) for s in scores]), int(round(amount * total)))
        masks, at = [], 0
        for s in scores:
            masks.append(flat[at:at + s.size].reshape(s.shape))
            at += s.size
    for (m, n), mask in zip(layers, masks):
        old = m._buffers.get(n + "_mask")
        if old is not None:  # pruned before: stay pruned
            mask = mask * old.numpy()
        m.register_buffer(n + "_mask", lepton.from_numpy(mask).to(getattr(m, n).dtype))
    apply_masks(model)
    return sparsity(model)


def apply_masks(model):
    """Multiplies each pruned layer's weight by its mask (after an optimizer step, say)."""
    with no_grad():
        for m, n in _weights(model):
            mask = m._buffers.get(n + "_mask")
            if mask is not None:
                getattr(m, n).mul_(mask)


def remove(model):
    """Drops the masks: the zeros stay in the weights, but training may change them again."""
    for m, n in _weights(model):
        m._buffers.pop(n + "_mask", None)


def sparsity(model):
    """Fraction of zero weights over the Linear/Conv2d layers and recurrent weight matrices."""
    zeros = total = 0
    for m, n in _weights(model):
        w = getattr(m, n).detach().numpy()
        zeros += int((w == 0).sum())
        total += w.size
    return zeros / total if total else 0.0


def fine_tune(model, batches, loss_fn=None, epochs=1, lr=1e-3, optimizer=None):
    """Trains a pruned model on an iterable of (input, target) batches (a DataLoader), re-applying
    the masks after every step so pruned weights stay zero. Returns the mean loss of each epoch."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    optimizer = optimizer or lepton.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(int(epochs)):
        total = count = 0
        for x, y in batches:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            apply_masks(model)
            total, count = total + loss.item(), count + 1
        losses.append(total / max(count, 1))
    model.eval()
    return losses
