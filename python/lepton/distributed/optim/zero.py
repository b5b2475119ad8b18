"""ZeroRedundancyOptimizer (torch.distributed.optim's, ZeRO stage 1): optimizer state sharded
over the ranks of a process group.

The params are split among the ranks once, balanced by element count with torch's greedy rule
(each group's params, largest first, go to the rank holding the fewest elements so far), so
every rank computes the same split. Each rank runs `optimizer_class` on its own shard only, so
it holds about 1/world_size of the optimizer state; after the step, each rank broadcasts its
updated params and every rank ends with all of them. Gradients must already be the same on
every rank, as DistributedDataParallel leaves them.

As in torch, the params travel one broadcast each, straight into their own memory, or with
parameters_as_bucket_view=True one broadcast per rank and dtype through a flat buffer (fewer,
larger messages, for a temporary copy of one shard). Unlike torch's, the params then keep their
own memory too: Lepton cannot make a tensor a view of another.

`param_groups` hold all params, as an unsharded optimizer's do: their options (an lr set by a
scheduler) reach the local optimizer, `optim`, at every step. `state` is this rank's shard.
state_dict() follows torch: consolidate_state_dict(to) on all ranks first gathers a snapshot of
the whole state on rank `to`, in the format of an unsharded optimizer (either loads the other's);
load_state_dict(full state) on every rank keeps each rank's own part.

Without a process group (init_process_group not called, no process_group given) it is a world
of one: an ordinary optimizer.
"""

import lepton
from lepton.autograd import no_grad
import lepton.distributed as dist
from lepton.distributed.optim.transfer import broadcast_state
from lepton.optim.optimizer import Optimizer, by_device_and_dtype

_NOT_SYNCED = ("params", "param_names")  # a group's own, different in the wrapper and the local optimizer


class ZeroRedundancyOptimizer(Optimizer):
    def __init__(self, params, optimizer_class, process_group=None, parameters_as_bucket_view=False,
                 overlap_with_ddp=False, **defaults):
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)):
            raise TypeError("ZeroRedundancyOptimizer: optimizer_class must be an Optimizer class such as "
                            f"lepton.optim.AdamW (the class, not an instance), got {optimizer_class!r}")
        try:
            iter(params)
        except TypeError:
            raise TypeError("ZeroRedundancyOptimizer: params must be an iterable of Tensors or of dicts (parameter "
                            f"groups), got {type(params).__name__}") from None
        if overlap_with_ddp:
            raise NotImplementedError("ZeroRedundancyOptimizer: overlap_with_ddp=True (stepping inside DDP's "
                                      "communication hook) is not supported; leave it False and call step() "
                                      "after backward()")
        self.process_group = process_group
        grouped = process_group is not None or dist.is_initialized()
        self.world_size = dist.get_world_size(process_group) if grouped else 1
        self.rank = dist.get_rank(process_group) if grouped else 0
        self.parameters_as_bucket_view = bool(parameters_as_bucket_view)
        self._owner = {}  # id(param) -> the rank that steps it
        self._sizes = [0] * self.world_size  # elements owned by each rank
        self._shards = [[] for _ in range(self.world_size)]  # [rank][group] -> params
        self._consolidated = None
        self.optim = None
        super().__init__(params, defaults)  # partitions each group (add_param_group)
        local = [_local_group(g, shard) for g, shard in zip(self.param_groups, self._shards[self.rank])]
        self.optim = optimizer_class(local, **defaults)
        self.state = self.optim.state
        _sync_options(self.optim.param_groups, self.param_groups)  # the optimizer's defaults fill our groups

    def add_param_group(self, param_group):
        """Adds a group, splitting its params among the ranks where the earlier groups' split left
        off (their params keep their ranks, so no state moves)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        per_rank = [[] for _ in range(self.world_size)]
        for p in sorted(group["params"], key=lambda t: t.numel(), reverse=True):  # stable: ties keep order
            r = self._sizes.index(min(self._sizes))
            self._owner[id(p)] = r
            self._sizes[r] += p.numel()
        for p in group["params"]:  # each shard in the group's own order
            per_rank[self._owner[id(p)]].append(p)
        for r in range(self.world_size):
            self._shards[r].append(per_rank[r])
        if self.optim is not None:
            self.optim.add_param_group(_local_group(group, per_rank[self.rank]))
            _sync_options(self.optim.param_groups[-1:], self.param_groups[-1:])

    def step(self, closure=None):
        """Steps this rank's shard (closure, if given, runs on every rank), then shares the updated params."""
        _sync_options(self.param_groups, self.optim.param_groups)
        loss = self.optim.step(closure)
        self._broadcast_params()
        return loss

    def _broadcast_params(self):
        """Each rank's updated shard to the others: param by param, in place (no extra memory),
        or with parameters_as_bucket_view one flat buffer per rank and dtype (fewer messages)."""
        if self.world_size == 1:
            return
        with no_grad():
            shards = [[p for g in groups for p in g] for groups in self._shards]
            if self.parameters_as_bucket_view:
                for r, shard in enumerate(shards):
                    for batch in by_device_and_dtype(shard):
                        self._broadcast_flat(batch, r)
                return
            sent = []
            for r, shard in enumerate(shards):
                for p in shard:
                    t = p.detach()
                    buffer = t if t.is_contiguous() else t.contiguous()  # collectives need contiguous memory
                    sent.append((dist.broadcast(buffer, r, self.process_group, async_op=True), t, buffer))
            for work, t, buffer in sent:
                work.wait()
                if buffer is not t:
                    t.copy_(buffer)

    def _broadcast_flat(self, batch, src):
        """Rank src's params `batch` (one dtype and device) to every rank through one buffer."""
        if src == self.rank:
            flat = lepton.cat([p.detach().reshape(-1) for p in batch])
        else:
            flat = lepton.empty((sum(p.numel() for p in batch),), dtype=batch[0].dtype, device=batch[0].device)
        dist.broadcast(flat, src, self.process_group)
        if src != self.rank:
            offset = 0
            for p in batch:
                p.detach().copy_(flat[offset:offset + p.numel()].view(tuple(p.shape)))
                offset += p.numel()

    # ---- checkpoints

    def consolidate_state_dict(self, to=0):
        """Gathers a snapshot of every rank's shard of the state on rank `to` (all ranks call it),
        for state_dict() there. The tensors are copied to the CPU."""
        if not 0 <= to < self.world_size:
            raise ValueError(f"consolidate_state_dict: to={to} is not a rank of a group of {self.world_size}")
        params = [p for g in self.param_groups for p in g["params"]]
        index = {id(p): i for i, p in enumerate(params)}  # state_dict()'s numbering
        mine = {index[id(p)]: s for p, s in self.state.items()}
        whole = {}
        for r in range(self.world_size):
            if r == to:  # rank `to`'s own shard needs no sending
                if self.rank == to:
                    whole.update(_to_cpu(mine, copy=True))
                continue
            shard = broadcast_state(mine if r == self.rank else None, r, self.process_group, params[0].device,
                                    keep=self.rank == to)
            if shard is not None:
                whole.update(_to_cpu(shard, copy=False))
        self._consolidated = whole if self.rank == to else None

    def state_dict(self):
        """The whole state as of the last consolidate_state_dict(to=this rank), with the current
        param_groups, in an unsharded optimizer's format."""
        if self._consolidated is None:
            raise RuntimeError(f"ZeroRedundancyOptimizer: the optimizer state has not been consolidated on this "
                               f"rank; call consolidate_state_dict(to={self.rank}) on all ranks first")
        saved = super().state_dict()
        saved["state"] = {i: dict(self._consolidated[i]) for i in sorted(self._consolidated)}
        return saved

    def load_state_dict(self, state_dict):
        """Loads a whole state (state_dict() of this or an unsharded optimizer) on every rank; each
        rank keeps the state of the params it steps."""
        param_of = {}
        for mine, saved in zip(self.param_groups, state_dict["param_groups"]):
            param_of.update(zip(saved["params"], mine["params"]))
        # an index we do not know is kept, for Optimizer.load_state_dict to report
        owned = {i: s for i, s in state_dict["state"].items()
                 if self._owner.get(id(param_of.get(int(i))), self.rank) == self.rank}
        super().load_state_dict({"state": owned, "param_groups": state_dict["param_groups"]})
        self.optim.state = self.state
        _sync_options(self.param_groups, self.optim.param_groups)


def _local_group(group, params):
    """The local optimizer's part of `group`: its options, with this rank's params (and their names)."""
    local = {k: v for k, v in group.items() if k not in _NOT_SYNCED}
    local["params"] = params
    if "param_names" in group:
        name = {id(p): n for p, n in zip(group["params"], group["param_names"])}
        local["param_names"] = [name[id(p)] for p in params]
    return local


def _sync_options(sources, targets):
    for source, target in zip(sources, targets):
        target.update({k: v for k, v in source.items() if k not in _NOT_SYNCED})


def _to_cpu(value, copy):
    if isinstance(value, lepton.Tensor):
        return value.detach().to("cpu", copy=copy)
    if isinstance(value, dict):
        return {k: _to_cpu(v, copy) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v, copy) for v in value)
    return value
