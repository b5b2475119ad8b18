"""Structured pruning: remove whole output channels of Linear/Conv2d layers and the matching inputs
of the layer that consumes them, so the model really gets smaller and faster."""

import numpy as np

import lepton
from lepton import nn

__all__ = ["channels"]

# Layers between a producer and its consumer that act on each channel independently.
_PASS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
         nn.AdaptiveAvgPool2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _np(t):
    return t.detach().numpy()


def _param(a, like):
    return nn.Parameter(lepton.from_numpy(np.ascontiguousarray(a)).to(like.dtype), requires_grad=like.requires_grad)


def _slice(module, name, index, axis):
    """module.<name> (parameter or buffer) restricted to `index` along `axis`."""
    t = getattr(module, name, None)
    if t is None:
        return
    a = np.take(_np(t), index, axis=axis)
    if name in module._parameters:
        setattr(module, name, _param(a, t))
    else:
        module.register_buffer(name, lepton.from_numpy(np.ascontiguousarray(a)).to(t.dtype))


def _consumer(seq_items, i):
    """(norm layers, whether a Flatten lies between, consumer) after producer i; consumer None if none."""
    norms, flatten = [], False
    for _, m in seq_items[i + 1:]:
        if isinstance(m, _NORMS):
            norms.append(m)
        elif isinstance(m, nn.Flatten):
            flatten = True
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            ok = (isinstance(m, nn.Linear) or m.groups == 1) and not (flatten and isinstance(m, nn.Conv2d))
            return norms, flatten, m if ok else None
        elif not isinstance(m, _PASS):
            return norms, flatten, None
    return norms, flatten, None


def _prune_pair(layer, norms, flatten, consumer, amount):
    out = layer.weight.shape[0]
    if isinstance(layer, nn.Conv2d) and layer.groups != 1:
        return 0
    w = _np(layer.weight).reshape(out, -1)
    n_keep = max(1, int(round(out * (1.0 - amount))))
    if n_keep == out:
        return 0
    keep = np.sort(np.argsort(-np.linalg.norm(w, axis=1), kind="stable")[:n_keep])
    for name in ("weight", "bias", "weight_mask"):
        _slice(layer, name, keep, 0)
    if isinstance(layer, nn.Linear):
        layer.out_features = n_keep
    else:
        layer.out_channels = n_keep
    for bn in norms:
        for name in ("weight", "bias", "running_mean", "running_var"):
            _slice(bn, name, keep, 0)
        bn.num_features = n_keep
    cols = keep
    if flatten:  # the consumer sees each channel as a block of h·w columns
        spatial = consumer.in_features // out
        cols = (keep[:, None] * spatial + np.arange(spatial)[None, :]).reshape(-1)
    for name in ("weight", "weight_mask"):
        _slice(consumer, name, cols, 1)
    if isinstance(consumer, nn.Linear):
        consumer.in_features = len(cols)
    else:
        consumer.in_channels = n_keep
    return out - n_keep


def channels(model, amount):
    """Removes the fraction `amount` (0 ≤ amount < 1) of output channels with the smallest L2 norm
    from every Linear/Conv2d inside a Sequential whose output feeds another Linear/Conv2d of that
    Sequential (the last layer, which makes the model's output, keeps its size), and shrinks that
    consumer's inputs to match. Returns the number of channels removed per layer name."""
    if not 0.0 <= float(amount) < 1.0:
        raise ValueError(f"prune.channels: amount must be in [0, 1), got {amount}")
    removed = {}
    for prefix, seq in list(model.named_modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        items = list(seq._modules.items())
        for i, (name, layer) in enumerate(items):
            if not isinstance(layer, (nn.Linear, nn.Conv2d)):
                continue
            norms, flatten, consumer = _consumer(items, i)
            if consumer is None:
                continue
            n = _prune_pair(layer, norms, flatten, consumer, amount)
            if n:
                removed[f"{prefix}.{name}" if prefix else name] = n
    return removed
