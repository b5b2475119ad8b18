"""lepton.distributed: data-parallel training over MPI (CPU) and NCCL (CUDA), as torch.distributed.

    lepton.distributed.init_process_group()          # under mpiexec / `lepton launch -n 2`
    model = lepton.distributed.DistributedDataParallel(model)
    loader = DataLoader(ds, batch_size=64, sampler=DistributedSampler(ds))
"""

from lepton.distributed.collectives import (
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    barrier,
    broadcast,
    destroy_process_group,
    get_backend,
    get_local_rank,
    get_rank,
    get_world_size,
    init_from_env,
    init_process_group,
    is_available,
    is_initialized,
    is_main_process,
    new_group,
    reduce_scatter,
    reduce_scatter_tensor,
)
from lepton.distributed.ddp import DistributedDataParallel
from lepton.distributed.group import ProcessGroup, ReduceOp
from lepton.distributed.sampler import DistributedSampler, ShardSampler
from lepton.distributed.utils import all_gather_json, reduce_metrics
from lepton.distributed.work import DistError, DistTimeoutError, Work

__all__ = [
    "init_process_group", "init_from_env", "destroy_process_group", "is_available", "is_initialized", "get_backend",
    "new_group",
    "get_rank", "get_world_size", "get_local_rank", "is_main_process",
    "all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor",
    "barrier", "ReduceOp", "ProcessGroup", "Work", "DistError", "DistTimeoutError",
    "DistributedDataParallel", "DistributedSampler", "ShardSampler", "all_gather_json", "reduce_metrics",
]
