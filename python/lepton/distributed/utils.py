"""Helpers built on the collectives: small JSON objects across ranks, metric reduction."""

import json

import numpy as np

import lepton
from lepton.distributed import collectives as C
from lepton.distributed.group import ReduceOp, check_op


def all_gather_json(obj, group=None):
    """Every rank's `obj` (anything json.dumps accepts), as a list indexed by rank.

    JSON, not pickle: ranks only ever exchange plain data (shapes, names, numbers).
    """
    g = C._group(group)
    payload = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
    sizes = lepton.zeros(g.size(), dtype=lepton.int64)
    mine = lepton.tensor([payload.size], dtype=lepton.int64)
    C.all_gather_into_tensor(sizes, mine, g)
    sizes = [int(s) for s in sizes.tolist()]
    padded = np.zeros(max(sizes), dtype=np.uint8)
    padded[:payload.size] = payload
    gathered = lepton.zeros(g.size() * padded.size, dtype=lepton.uint8)
    C.all_gather_into_tensor(gathered, lepton.from_numpy(padded), g)
    rows = gathered.numpy().reshape(g.size(), padded.size)
    return [json.loads(rows[r, :sizes[r]].tobytes().decode()) for r in range(g.size())]


def reduce_metrics(metrics, op=ReduceOp.AVG, weight=None, group=None):
    """{name: number} reduced over all ranks (every rank gets the result).

    op: ReduceOp.AVG (default), SUM, MAX or MIN. weight: this rank's sample count, for a
    weighted average (sum of value*weight over sum of weight), as when ranks see unequal
    numbers of samples. Without a process group the metrics come back as floats, unchanged.
    Every rank must pass the same names.
    """
    check_op(op)
    names = sorted(metrics)
    values = np.array([float(metrics[k]) for k in names] + [1.0 if weight is None else float(weight)], dtype=np.float64)
    if not C.is_initialized():
        return {k: float(v) for k, v in zip(names, values[:-1])}
    g = C._group(group)
    keys = all_gather_json(names, g)
    for r, k in enumerate(keys):
        if k != names:
            raise ValueError(f"reduce_metrics: rank {r} has metrics {k} but rank {g.rank()} has {names}")
    if op == ReduceOp.AVG:
        values[:-1] *= values[-1]
        t = lepton.from_numpy(values)
        C.all_reduce(t, ReduceOp.SUM, g)
        out = values[:-1] / values[-1]
    else:
        t = lepton.from_numpy(values[:-1].copy())
        C.all_reduce(t, op, g)
        out = t.numpy()
    return {k: float(v) for k, v in zip(names, out)}
