"""How Trainer trains data-parallel: which ranks take part, each rank's share of the data, and the
figures combined over ranks.

Every rank runs the same Trainer on the same (full) data; the trainer gives each rank its share
and DistributedDataParallel averages the gradients. Figures (loss sums, sample counts, metric
counts) are combined by gathering every rank's numbers and adding them in rank order, so every
rank gets the same bits (an all_reduce may round differently per rank beyond 2 ranks) and the
callbacks that compare them (early stopping, best checkpoint, plateau schedules) decide alike on
every rank. In a single process a Ranks object of size 1 makes every step here the identity, so
the trainer has one code path.
"""

import copy

import numpy as np

import lepton
from lepton.distributed import collectives as C
from lepton.distributed.ddp import DistributedDataParallel
from lepton.distributed.sampler import DistributedSampler, ShardSampler
from lepton.distributed.utils import all_gather_json

__all__ = ["Ranks", "data_parallel_loader"]


class Ranks:
    """The ranks a Trainer trains with: `group` (a ProcessGroup), or None for a single process."""

    def __init__(self, group=None):
        self.group = group
        self.size = group.size() if group is not None else 1
        self.rank = group.rank() if group is not None else 0

    @classmethod
    def resolve(cls, distributed, model):
        """The Ranks for Trainer(distributed=...) and `model` (which may already be a DDP)."""
        if distributed is not None and not isinstance(distributed, bool):
            raise TypeError(f"distributed must be True, False or None (auto), got {distributed!r}")
        wrapped = isinstance(model, DistributedDataParallel)
        if distributed is False:
            if wrapped:
                raise ValueError("distributed=False, but the model is a DistributedDataParallel: pass its .module")
            return cls()
        if wrapped:
            return cls(model.process_group)
        if distributed and not C.is_initialized():
            raise RuntimeError("Trainer(distributed=True) needs a process group: call "
                               "lepton.distributed.init_process_group() in every rank (started by `lepton launch -n N` "
                               "or mpiexec), or run `lepton train --nproc N`")
        if not C.is_initialized() or (distributed is None and C.get_world_size() == 1):
            return cls()
        return cls(C._group(None))

    @property
    def is_main(self):
        return self.rank == 0

    def gather(self, obj):
        """Every rank's `obj` (plain data), as a list indexed by rank."""
        return [obj] if self.group is None else all_gather_json(obj, self.group)

    def any(self, flag):
        return any(self.gather(bool(flag)))

    def check_same(self, value, what):
        """Raises (on every rank) unless `value` is the same on all ranks."""
        values = self.gather(value)
        if any(v != values[0] for v in values):
            raise ValueError(f"data-parallel training needs the same {what} on every rank, got {values} (by rank)")

    def start_gather(self, values):
        """Starts gathering a few floats from every rank; .rows() waits and gives them [rank][i]."""
        return _Gather(self.group, values)

    def sync_buffers(self, module):
        """Rank 0's buffers (e.g. BatchNorm running statistics) everywhere, so that every rank
        evaluates the same model (after its last training forward each rank updated its own)."""
        if self.group is not None:
            with lepton.no_grad():
                for t in module.buffers():
                    C.broadcast(t, 0, self.group)

    def merged_metrics(self, metrics):
        """Copies of `metrics` holding the counts of all ranks (the metrics themselves in a single
        process). Metric states are counts (correct/total, confusion matrices), which add up."""
        if self.group is None:
            return metrics
        states = self.gather([m.state_dict() for m in metrics])
        merged = []
        for i, m in enumerate(metrics):
            m = copy.deepcopy(m)
            m.load_state_dict(sum_states([s[i] for s in states]))
            merged.append(m)
        return merged


class _Gather:
    def __init__(self, group, values):
        self.values = [float(v) for v in values]
        if group is None:
            self.work = None
            return
        self.out = lepton.zeros(group.size() * len(values), dtype=lepton.float64)
        mine = lepton.tensor(self.values, dtype=lepton.float64)
        self.work = C.all_gather_into_tensor(self.out, mine, group, async_op=True)

    def rows(self):
        if self.work is None:
            return [self.values]
        self.work.wait()
        return self.out.numpy().reshape(-1, len(self.values)).tolist()


def sum_states(states):
    """One metric state from several ranks': numbers added, arrays (confusion matrices, possibly
    of different sizes when they grow with the labels seen) added after padding with zeros."""
    out = {}
    for key in states[0]:
        values = [s[key] for s in states]
        if all(isinstance(v, (int, float)) for v in values):
            out[key] = sum(values)
            continue
        arrays = [np.asarray(v) for v in values]
        shape = tuple(max(dims) for dims in zip(*(a.shape for a in arrays)))
        total = np.zeros(shape, dtype=np.result_type(*arrays))
        for a in arrays:
            total[tuple(slice(0, d) for d in a.shape)] += a
        out[key] = total.tolist()
    return out


# ---- each rank's share of the data ---------------------------------------------------------------

def _sharded(loader):
    return isinstance(getattr(loader, "sampler", None), (DistributedSampler, ShardSampler))


def _with_sampler(loader, sampler, seed):
    from lepton.data import DataLoader

    return DataLoader(loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last,
                      collate_fn=loader.collate_fn, prefetch=loader.prefetch, seed=seed, transform=loader.transform,
                      sampler=sampler)


def shard_train(loader, ranks):
    """This rank's share of a training loader. A DataLoader is re-made with a DistributedSampler
    (shuffled like the loader, from rank 0's seed; padded so every rank runs as many batches) or, when
    it has a sampler of its own, a ShardSampler around that; rank r's random transforms draw from
    seed + r, so ranks augment differently. A loader that already has a distributed sampler is
    kept. Other iterables are taken to be this rank's share already (as in PyTorch) and must
    have a len(), which must agree across ranks (checked by fit)."""
    from lepton.data import DataLoader

    if ranks.group is None or _sharded(loader):
        return loader
    if isinstance(loader, DataLoader):
        seed = ranks.gather(loader.seed)[0]  # rank 0's: ranks seeded apart must still split one order
        if loader.sampler is None:
            sampler = DistributedSampler(loader.dataset, ranks.size, ranks.rank, shuffle=loader.shuffle, seed=seed)
        else:
            sampler = ShardSampler(loader.sampler, ranks.size, ranks.rank)
        return _with_sampler(loader, sampler, seed + ranks.rank)
    if not hasattr(loader, "__len__"):
        raise ValueError(f"data-parallel fit needs a DataLoader (which the trainer splits between ranks) or a "
                         f"loader with len() holding this rank's share; got {type(loader).__name__} without len()")
    return loader


def shard_eval(loader, ranks):
    """(loader, True) with this rank's share of an evaluation DataLoader, every sample on exactly
    one rank (no padding), so that the figures summed over ranks are those of the whole data;
    (loader, False) for a single process or a loader that cannot be split (every rank then
    evaluates all of it, and nothing is summed)."""
    from lepton.data import DataLoader

    if ranks.group is None:
        return loader, False
    if _sharded(loader):
        return loader, True
    if not isinstance(loader, DataLoader):
        return loader, False
    base = len(loader.dataset) if loader.sampler is None else loader.sampler
    return _with_sampler(loader, ShardSampler(base, ranks.size, ranks.rank, even=False), loader.seed), True


def data_parallel_loader(loader):
    """The loader Trainer.fit trains on in this process: in a data-parallel run (a default process
    group of more than one rank) this rank's share of `loader`, else `loader` itself. fit takes
    the result as it is; call this when len() of the epoch is needed before fit (e.g. for a
    learning-rate schedule's total steps)."""
    return shard_train(loader, Ranks.resolve(None, None))
