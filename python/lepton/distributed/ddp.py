"""DistributedDataParallel: the same model on every rank, gradients averaged during backward.

As in PyTorch: parameters and buffers are broadcast from rank 0 at construction; gradients are
grouped into buckets (~25 MB, in reverse registration order, which is roughly the order
backward produces them; the first bucket is small so communication starts early); each
parameter's post-accumulate-grad hook copies its gradient into its bucket, and a full bucket
starts its asynchronous all-reduce (average) at once, overlapping the rest of backward. The
last hook waits for all buckets and writes the averages back into .grad, so gradients are
synchronised when backward() returns, before the optimizer step.
"""

import contextlib

import lepton
from lepton.distributed import collectives as C
from lepton.distributed.group import ReduceOp
from lepton.distributed.utils import all_gather_json
from lepton.nn.modules.module import Module

_FIRST_BUCKET_BYTES = 1 << 20


class _Bucket:
    """A flat buffer holding the gradients of some parameters of one dtype, reduced together."""

    def __init__(self, entries):
        self.names = [n for n, _ in entries]
        self.params = [p for _, p in entries]
        first = self.params[0]
        total = sum(p.numel() for p in self.params)
        self.flat = lepton.zeros(total, dtype=first.dtype, device=first.device)
        self.views, offset = [], 0
        for p in self.params:
            self.views.append(self.flat[offset:offset + p.numel()].view(tuple(p.shape)))
            offset += p.numel()
        self.arrived = [False] * len(self.params)
        self.pending = len(self.params)
        self.work = None

    def reset(self):
        self.arrived = [False] * len(self.params)
        self.pending = len(self.params)
        self.work = None


class DistributedDataParallel(Module):
    """Wraps `module` for data-parallel training over `process_group` (the default group).

    Every rank must build the same model (the shapes are checked) and call forward and
    backward the same number of times. Every parameter that requires grad must receive a
    gradient in each synchronised backward (unused parameters are reported at the next
    forward). device_ids/output_device are accepted for PyTorch compatibility: the model stays
    where it is (one device per process).
    """

    def __init__(self, module, device_ids=None, output_device=None, broadcast_buffers=True, process_group=None,
                 bucket_cap_mb=25.0, find_unused_parameters=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps an nn.Module, got {type(module).__name__}")
        if find_unused_parameters:
            raise NotImplementedError("DistributedDataParallel: find_unused_parameters=True is not supported; "
                                      "every parameter that requires grad must get a gradient each iteration")
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        object.__setattr__(self, "process_group", C._group(process_group))
        object.__setattr__(self, "broadcast_buffers", bool(broadcast_buffers))
        object.__setattr__(self, "_require_sync", True)
        object.__setattr__(self, "_in_backward", False)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._verify_same_model(module)
        self._sync_module_states(module)
        buckets = self._make_buckets(named, int(bucket_cap_mb * (1 << 20)))
        object.__setattr__(self, "_buckets", buckets)
        object.__setattr__(self, "_next_bucket", 0)
        handles = []
        for b, bucket in enumerate(buckets):
            for s, p in enumerate(bucket.params):
                handles.append(p.register_post_accumulate_grad_hook(self._make_hook(b, s)))
        object.__setattr__(self, "_hook_handles", handles)

    # ---- construction

    def _verify_same_model(self, module):
        mine = [[n, list(p.shape), str(p.dtype)] for n, p in module.named_parameters()]
        everyone = all_gather_json(mine, self.process_group)
        for r, theirs in enumerate(everyone):
            if theirs != mine:
                diff = [f"{a} vs {b}" for a, b in zip(mine, theirs) if a != b][:3]
                if len(mine) != len(theirs):
                    diff.insert(0, f"{len(mine)} vs {len(theirs)} parameters")
                raise ValueError(f"DistributedDataParallel: rank {self.process_group.rank()} and rank {r} have "
                                 f"different models (parameter name, shape, dtype): {'; '.join(diff)}")

    def _sync_module_states(self, module):
        with lepton.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                C.broadcast(t, 0, self.process_group)

    @staticmethod
    def _make_buckets(named, cap):
        buckets, current, size = [], [], 0
        for name, p in reversed(named):
            limit = min(_FIRST_BUCKET_BYTES, cap) if not buckets else cap
            nbytes = p.numel() * p.element_size()
            head = current[0][1] if current else None
            if current and (size + nbytes > limit or p.dtype != head.dtype or p.device != head.device):
                buckets.append(_Bucket(current))
                current, size = [], 0
            current.append((name, p))
            size += nbytes
        if current:
            buckets.append(_Bucket(current))
        return buckets

    # ---- backward

    def _make_hook(self, b, s):
        def hook(param):
            if self._require_sync:
                self._grad_ready(b, s, param)
        return hook

    def _grad_ready(self, b, s, param):
        bucket = self._buckets[b]
        if bucket.arrived[s]:
            raise RuntimeError(f"DistributedDataParallel: parameter {bucket.names[s]} received a second gradient in "
                               "one backward pass (reused across backward calls without synchronisation?)")
        object.__setattr__(self, "_in_backward", True)
        with lepton.no_grad():
            bucket.views[s].copy_(param.grad)
        bucket.arrived[s] = True
        bucket.pending -= 1
        # Buckets start in index order on every rank: MPI matches collectives by call order.
        while self._next_bucket < len(self._buckets) and self._buckets[self._next_bucket].pending == 0:
            nxt = self._buckets[self._next_bucket]
            nxt.work = C.all_reduce(nxt.flat, ReduceOp.AVG, self.process_group, async_op=True)
            object.__setattr__(self, "_next_bucket", self._next_bucket + 1)
        if self._next_bucket == len(self._buckets):
            self._finish_reduction()
        elif self.process_group.progress_by_polling:
            for bk in self._buckets[:self._next_bucket]:
                bk.work.is_completed()  # lets MPI progress the reductions in flight

    def _finish_reduction(self):
        with lepton.no_grad():
            for bucket in self._buckets:
                bucket.work.wait()
                for p, view in zip(bucket.params, bucket.views):
                    p.grad.copy_(view)
                bucket.reset()
        object.__setattr__(self, "_next_bucket", 0)
        object.__setattr__(self, "_in_backward", False)

    # ---- forward

    def forward(self, *args, **kwargs):
        if self._in_backward:
            missing = [n for bk in self._buckets for n, ok in zip(bk.names, bk.arrived) if not ok]
            raise RuntimeError("DistributedDataParallel: the previous backward produced no gradient for "
                               f"{missing[:8]}{' ...' if len(missing) > 8 else ''}, so its gradients were never "
                               "averaged; every parameter that requires grad must take part in the loss")
        if self.broadcast_buffers and self.process_group.size() > 1:
            with lepton.no_grad():
                for t in self.module.buffers():
                    C.broadcast(t, 0, self.process_group)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients locally; the first one outside averages the sum."""
        previous = self._require_sync
        object.__setattr__(self, "_require_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "_require_sync", previous)

    def remove_hooks(self):
        """Detach DDP from the module's parameters (the module keeps training locally)."""
        for h in self._hook_handles:
            h.remove()
        object.__setattr__(self, "_hook_handles", [])
