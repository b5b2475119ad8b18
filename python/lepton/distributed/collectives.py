"""The default process group and the collectives, with torch.distributed's signatures."""

import datetime

import lepton
from lepton.distributed import abort, env
from lepton.distributed.group import ProcessGroup, ReduceOp, check_op

_default = None  # the ProcessGroup made by init_process_group


def _timeout_seconds(timeout):
    if timeout is None:
        return env.env_timeout()
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    return seconds


def _pick_backend():
    """nccl when this process has a GPU to use, mpi otherwise."""
    return "nccl" if lepton.cuda.is_available() else "mpi"


def init_process_group(backend=None, timeout=None, rank=None, world_size=None):
    """Join the job's default process group.

    backend: "mpi" (CPU tensors, processes started by mpiexec/Slurm/`lepton launch`), "nccl"
    (CUDA tensors) or None for nccl when CUDA is available and mpi otherwise. timeout (seconds
    or a timedelta; default LEPTON_DIST_TIMEOUT or 60 s): how long a collective may wait
    for its peers before raising DistTimeoutError. rank/world_size default to the launcher's
    environment (RANK/WORLD_SIZE, PMI_*, OMPI_*, SLURM_*); MPI's own numbering must agree.

    Every collective's arguments are checked against the other ranks' before data moves (a
    mismatch raises DistError on every rank; LEPTON_DIST_CHECK=0 skips the check), and an
    unhandled exception on one rank ends the whole job at once (MPI_Abort under mpiexec).
    """
    global _default
    if _default is not None:
        raise RuntimeError("init_process_group was already called; call destroy_process_group first")
    backend = _pick_backend() if backend is None else str(backend).lower()
    seconds = _timeout_seconds(timeout)
    if backend == "mpi":
        from lepton.distributed.mpi import MPIGroup

        group = MPIGroup.world(seconds)
    elif backend == "nccl":
        from lepton.distributed.nccl import NCCLGroup

        group = NCCLGroup.world(seconds, rank, world_size)
    else:
        raise ValueError(f"unknown backend {backend!r}; expected 'mpi', 'nccl' or None")
    for what, asked, got in (("rank", rank, group.rank()), ("world_size", world_size, group.size())):
        if asked is not None and int(asked) != got:
            group.destroy()
            raise ValueError(f"init_process_group: {what}={asked} was asked for but the {backend} launcher gives {got}")
    _default = group
    abort.watch(group)  # an unhandled exception on this rank then ends the job, not just this rank
    return group


def init_from_env(backend=None, timeout=None):
    """Join the job when this process was started as one of several ranks (lepton launch,
    mpiexec, Slurm, torchrun variables); do nothing in a lone process. True when a process group
    of more than one rank is ready. For entry points that run both ways, like `lepton train`."""
    if _default is None:
        size = env.env_world_size()
        if size is None or size <= 1:
            return False
        init_process_group(backend, timeout)
    return _default.size() > 1


def is_available():
    return True


def is_initialized():
    return _default is not None


def get_backend(group=None):
    return _group(group).backend


def destroy_process_group(group=None):
    """Release the default group (or `group`); all ranks call it together."""
    global _default
    g = _group(group)
    g.destroy()
    abort.forget(g)
    if g is _default:
        _default = None


def new_group(ranks=None, timeout=None):
    """A group of `ranks` (all ranks of the default group must call this); None outside it."""
    g = _group(None)
    ranks = list(range(g.size())) if ranks is None else sorted({int(r) for r in ranks})
    if not ranks or ranks[0] < 0 or ranks[-1] >= g.size():
        raise ValueError(f"new_group: ranks {ranks} must be a non-empty subset of 0..{g.size() - 1}")
    return g.split(ranks, _timeout_seconds(timeout) if timeout is not None else g.timeout)


def _group(group):
    if group is None:
        if _default is None:
            raise RuntimeError("the default process group is not initialized: call "
                               "lepton.distributed.init_process_group() first")
        return _default
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"group must be a ProcessGroup or None, got {type(group).__name__}")
    return group


def get_rank(group=None):
    """This process's rank in `group` (default group), 0..world_size-1."""
    return _group(group).rank()


def get_world_size(group=None):
    return _group(group).size()


def get_local_rank():
    """This process's index on its node (LOCAL_RANK and friends); 0 when not launched in a job."""
    return env.env_local_rank()


def is_main_process():
    """True on rank 0, and in a process that is not part of a job (the one that prints and saves)."""
    return _default is None or _default.rank() == 0


# ---- collectives


def _check_tensor(t, what, group):
    if not isinstance(t, lepton.Tensor):
        raise TypeError(f"{what} must be a lepton Tensor, got {type(t).__name__}")
    if not t.is_contiguous():
        raise ValueError(f"{what} must be contiguous (shape {tuple(t.shape)}, strides {t.stride()}): "
                         "call .contiguous() and copy the result back")
    if group.backend == "mpi" and t.device.type != "cpu":
        raise ValueError(f"the mpi backend works on CPU tensors; {what} is on {t.device} (use backend='nccl')")
    if group.backend == "nccl" and t.device.type != "cuda":
        raise ValueError(f"the nccl backend works on CUDA tensors; {what} is on {t.device} (use backend='mpi')")


def _run(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


def _check_reduce_op(op, t, what):
    check_op(op)
    if op == ReduceOp.AVG and not t.is_floating_point():
        raise TypeError(f"{what}: ReduceOp.AVG needs a floating-point tensor, got {t.dtype}; "
                        "use ReduceOp.SUM and divide")
    return op


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `tensor` over all ranks, in place (every rank ends with the result)."""
    g = _group(group)
    _check_tensor(tensor, "all_reduce: tensor", g)
    op = _check_reduce_op(op, tensor, "all_reduce")
    return _run(g.submit("all_reduce", lambda: g.all_reduce(tensor, op), tensor, op, blocking=not async_op), async_op)


def broadcast(tensor, src=0, group=None, async_op=False):
    """Copy rank `src`'s `tensor` into `tensor` on every other rank."""
    g = _group(group)
    _check_tensor(tensor, "broadcast: tensor", g)
    if not 0 <= src < g.size():
        raise ValueError(f"broadcast: src={src} is not a rank of a group of {g.size()}")
    src = int(src)
    return _run(g.submit("broadcast", lambda: g.broadcast(tensor, src), tensor, root=src, blocking=not async_op),
                async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Concatenate every rank's `input_tensor` along dim 0 into `output_tensor` (world_size x larger)."""
    g = _group(group)
    _check_tensor(input_tensor, "all_gather: input", g)
    _check_tensor(output_tensor, "all_gather: output", g)
    if output_tensor.dtype != input_tensor.dtype or output_tensor.numel() != input_tensor.numel() * g.size():
        raise ValueError(f"all_gather: output {tuple(output_tensor.shape)} {output_tensor.dtype} must hold "
                         f"{g.size()} x input {tuple(input_tensor.shape)} {input_tensor.dtype}")
    work = g.submit("all_gather", lambda: g.all_gather_into_tensor(output_tensor, input_tensor), input_tensor,
                    blocking=not async_op)
    return _run(work, async_op)


def _check_list(op, what, tensors, like, g):
    """One tensor per rank of g, each of like's shape and dtype."""
    if len(tensors) != g.size():
        raise ValueError(f"{op}: {what} has {len(tensors)} tensors for a group of {g.size()}")
    for i, t in enumerate(tensors):
        if tuple(t.shape) != tuple(like.shape) or t.dtype != like.dtype:
            raise ValueError(f"{op}: {what}[{i}] is {tuple(t.shape)} {t.dtype}, "
                             f"expected {tuple(like.shape)} {like.dtype}")


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill tensor_list[r] with rank r's `tensor` (through one contiguous gather buffer)."""
    g = _group(group)
    _check_list("all_gather", "tensor_list", tensor_list, tensor, g)
    flat = lepton.empty((g.size(),) + tuple(tensor.shape), dtype=tensor.dtype, device=tensor.device)
    work = all_gather_into_tensor(flat, tensor.contiguous(), g, async_op=True)
    inner = work._finish

    def scatter_out():
        if inner is not None:
            inner()
        with lepton.no_grad():
            for r, t in enumerate(tensor_list):
                t.copy_(flat[r])
    work._finish = scatter_out
    return _run(work, async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `input` (world_size x output's size) over ranks; rank r keeps block r in `output`."""
    g = _group(group)
    _check_tensor(input, "reduce_scatter: input", g)
    _check_tensor(output, "reduce_scatter: output", g)
    if output.dtype != input.dtype or input.numel() != output.numel() * g.size():
        raise ValueError(f"reduce_scatter: input {tuple(input.shape)} {input.dtype} must hold {g.size()} x "
                         f"output {tuple(output.shape)} {output.dtype}")
    op = _check_reduce_op(op, input, "reduce_scatter")
    work = g.submit("reduce_scatter", lambda: g.reduce_scatter_tensor(output, input, op), input, op,
                    blocking=not async_op)
    return _run(work, async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce input_list[r] over ranks into `output` on rank r."""
    g = _group(group)
    _check_list("reduce_scatter", "input_list", input_list, output, g)
    flat = lepton.stack([t.detach() for t in input_list])
    return reduce_scatter_tensor(output, flat, op, g, async_op)


def barrier(group=None, async_op=False):
    """Wait until every rank has reached this call."""
    g = _group(group)
    return _run(g.submit("barrier", g.barrier, blocking=not async_op), async_op)
