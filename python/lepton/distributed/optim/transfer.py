"""Optimizer state from one rank to all: a JSON skeleton, then the tensors one broadcast each.

JSON, not pickle (as everywhere in lepton.distributed). Tensors go one at a time because every
rank must take part in a broadcast, also those that discard what arrives: they then never hold
more than one of the shard's tensors.
"""

import json

import numpy as np

import lepton
import lepton.distributed as dist

_TENSOR = "__lepton_tensor__"  # marks a tensor's place in the skeleton: [shape, dtype name]


def broadcast_state(state, src, group, device, keep):
    """Rank src's `state` ({param index: {key: value}}; None on the other ranks), returned where
    `keep` (None elsewhere). Every rank of `group` must call it.

    Values may be tensors, numbers, strings, None and lists/dicts of them; received tensors
    are on `device`."""
    mine = dist.get_rank(group) == src
    tensors = []
    skeleton = _broadcast_json(_encode(sorted(state.items()), tensors) if mine else None, src, group, device)
    received = []
    for i, (shape, dtype) in enumerate(_specs(skeleton)):
        t = tensors[i].contiguous() if mine else lepton.empty(tuple(shape), dtype=getattr(lepton, dtype), device=device)
        dist.broadcast(t, src, group)
        if keep:
            received.append(t)
    return {int(i): entry for i, entry in _decode(skeleton, iter(received))} if keep else None


def _broadcast_json(obj, src, group, device):
    """Rank src's `obj` (None on the other ranks) on every rank: its length, then its bytes."""
    mine = dist.get_rank(group) == src
    payload = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8) if mine else None
    size = lepton.tensor([payload.size if mine else 0], dtype=lepton.int64, device=device)
    dist.broadcast(size, src, group)
    data = (lepton.from_numpy(payload.copy()).to(device) if mine
            else lepton.empty((int(size.item()),), dtype=lepton.uint8, device=device))
    dist.broadcast(data, src, group)
    return json.loads(data.cpu().numpy().tobytes().decode())


def _encode(value, tensors):
    if isinstance(value, lepton.Tensor):
        tensors.append(value.detach())
        return {_TENSOR: [list(value.shape), value.dtype.name]}
    if isinstance(value, dict):
        return {k: _encode(v, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, tensors) for v in value]
    return value


def _specs(skeleton):
    """The [shape, dtype] of each tensor in the skeleton, in _encode's order."""
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            yield skeleton[_TENSOR]
        else:
            for v in skeleton.values():
                yield from _specs(v)
    elif isinstance(skeleton, list):
        for v in skeleton:
            yield from _specs(v)


def _decode(skeleton, tensors):
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            return next(tensors)
        return {k: _decode(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [_decode(v, tensors) for v in skeleton]
    return skeleton
