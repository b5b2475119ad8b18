"""The NCCL backend: CUDA tensors, communicators in C++ (lepton._C._dist, libnccl via dlopen).

Collectives run on a dedicated stream after the current stream's queued work; wait() orders
the current stream after the collective without blocking the host (as in PyTorch). A watchdog
thread in C++ aborts the communicator when a collective outlives the timeout, and the next call
raises. The unique id travels over MPI when MPI started the processes, else over a TCP
rendezvous at MASTER_ADDR:MASTER_PORT; so do the headers of the check (check.py): over MPI,
asynchronously, or over the NCCL communicator itself, the host waiting for them.
"""

import atexit
import glob
import importlib.util
import os

import numpy as np

import lepton
from lepton import _C
from lepton.distributed import check, env
from lepton.distributed.group import ProcessGroup, ReduceOp
from lepton.distributed.work import DistError, Work, completed_work


def nccl_candidates():
    """Where libnccl.so.2 may be: LEPTON_NCCL_PATH, then the nvidia-nccl-cu* wheel (the system's is tried last)."""
    paths = [os.environ["LEPTON_NCCL_PATH"]] if os.environ.get("LEPTON_NCCL_PATH") else []
    try:
        spec = importlib.util.find_spec("nvidia.nccl")
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        paths += sorted(glob.glob(os.path.join(root, "lib", "libnccl.so*")))
    return paths


def load_nccl():
    """(path, version) of the NCCL library, loading it on first use; RuntimeError when missing."""
    return _C._dist.nccl_load(nccl_candidates())


class _NcclWork(Work):
    """wait() orders the current stream after the collective; synchronize() blocks the host."""

    def __init__(self, name, group, native, finish=None):
        super().__init__(name, group, native.is_completed, finish, (native,))
        self._native = native

    def wait(self, timeout=None):
        if not self._done:
            try:
                self._native.wait()
            except RuntimeError as e:
                self._group._fail(DistError(str(e)))
            self._complete()
        return True

    def synchronize(self):
        self._native.synchronize()
        self.wait()


class _NcclHeaders:
    """The check's channel when no MPI runs the job: an all-gather of the headers on the
    communicator itself, awaited by the host before the data collective is queued (both share
    the communicator, and NCCL matches operations by the order they are queued)."""

    def __init__(self, comm):
        self._comm = comm

    def post(self, header):
        device = f"cuda:{self._comm.device}"
        mine = lepton.from_numpy(np.frombuffer(header, dtype=np.uint8).copy()).to(device)
        table = lepton.empty(self._comm.size * len(header), dtype=lepton.uint8, device=device)
        self._comm.all_gather(table, mine).synchronize()  # watchdog-bounded
        return _Arrived(table.cpu().numpy().tobytes())

    def close(self):
        pass


class _Arrived:
    """An exchange whose headers are all in."""

    def __init__(self, table):
        self._table = table

    def test(self):
        return True

    def table(self):
        return self._table

    def missing(self):
        return []


class NCCLGroup(ProcessGroup):
    backend = "nccl"

    def __init__(self, comm, timeout):
        super().__init__(timeout)
        self.comm = comm

    @classmethod
    def world(cls, timeout, rank=None, world_size=None):
        if not lepton.cuda.is_available():
            raise RuntimeError("the nccl backend needs CUDA (a CUDA build of Lepton and a GPU); use backend='mpi' "
                               "for CPU tensors")
        load_nccl()
        MPI = mpi_comm = None
        if env.launched_by_mpi():
            from lepton.distributed.mpi import _mpi

            MPI = _mpi(timeout)
            mpi_comm = MPI.COMM_WORLD
            rank, world_size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        else:
            rank = env.env_rank() if rank is None else int(rank)
            world_size = env.env_world_size() if world_size is None else int(world_size)
            if rank is None or world_size is None:
                rank, world_size = 0, 1  # a single process
        device = env.env_local_rank() % lepton.cuda.device_count()
        uid = _C._dist.nccl_unique_id() if rank == 0 else b""
        if mpi_comm is not None:
            uid = mpi_comm.bcast(uid, root=0)
        elif world_size > 1:
            where = env.master_addr_port()
            if where is None:
                raise RuntimeError("the nccl backend without mpiexec needs MASTER_ADDR and MASTER_PORT (set by "
                                   "torchrun-style launchers) to share its unique id; or start the ranks with "
                                   "lepton launch")
            from lepton.distributed.rendezvous import share_bytes

            uid = share_bytes(uid, rank, world_size, where[0], where[1], timeout)
        group = cls(_C._dist.NcclComm(uid, rank, world_size, device, timeout), timeout)
        if mpi_comm is not None:
            from lepton.distributed.mpi import MPIHeaders

            check.attach(group, lambda: MPIHeaders(MPI, mpi_comm))
            atexit.register(group._exit)
            # headers over MPI arrive only while someone polls: DDP then polls from its hooks
            group.progress_by_polling = group.checker is not None
        else:
            check.attach(group, lambda: _NcclHeaders(group.comm))
        return group

    def rank(self):
        return self.comm.rank

    def size(self):
        return self.comm.size

    def _launch(self, name, start, finish=None):
        self.check_usable()
        try:
            native = start()
        except RuntimeError as e:
            self._fail(DistError(str(e)))
        return _NcclWork(name, self, native, finish)

    def all_reduce(self, tensor, op):
        if tensor.numel() == 0:
            return completed_work(self, "all_reduce")
        if tensor.dtype == lepton.bool:
            op = ReduceOp.MIN if op == ReduceOp.MIN else ReduceOp.MAX  # sum of bools is a logical or
        return self._launch("all_reduce", lambda: self.comm.all_reduce(tensor, op))

    def broadcast(self, tensor, src):
        if tensor.numel() == 0:
            return completed_work(self, "broadcast")
        return self._launch("broadcast", lambda: self.comm.broadcast(tensor, src))

    def all_gather_into_tensor(self, output, input):
        if input.numel() == 0:
            return completed_work(self, "all_gather")
        return self._launch("all_gather", lambda: self.comm.all_gather(output, input))

    def reduce_scatter_tensor(self, output, input, op):
        if output.numel() == 0:
            return completed_work(self, "reduce_scatter")
        return self._launch("reduce_scatter", lambda: self.comm.reduce_scatter(output, input, op))

    def barrier(self):
        token = lepton.zeros(1, device=f"cuda:{self.comm.device}")
        work = self.all_reduce(token, ReduceOp.SUM)
        work.synchronize()
        return work

    def split(self, ranks, timeout):
        raise NotImplementedError("new_group is not supported by the nccl backend yet")

    def abort(self):
        self.comm.abort(str(self._error) if self._error else "aborted")

    def destroy(self):
        if self.checker is not None:
            self.checker.close()
        self.comm.destroy()
