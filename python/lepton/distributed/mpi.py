"""The MPI backend (mpi4py): collectives on CPU tensors, zero-copy.

The tensors' own memory is handed to MPI (a buffer over data_ptr), so nothing is copied except
for float16/bfloat16 reductions, which MPI cannot add: those reduce a float32 copy. Every
collective is non-blocking underneath (MPI_Iallreduce...) so that a wait can give up after the
group's timeout instead of hanging on a dead peer. The headers of the check (check.py) travel
point to point on a communicator of their own.
"""

import atexit
import faulthandler
import sys

import lepton
from lepton.distributed import check
from lepton.distributed.group import ProcessGroup, ReduceOp
from lepton.distributed.work import DistError, Work, completed_work


def _mpi(timeout=None):
    """mpi4py's MPI module; the first import runs MPI_Init, which waits for every rank to start.

    That wait is bounded: a rank that dies before MPI_Init would otherwise hang the others.
    MPI_Init holds the GIL, so the bound is faulthandler's C watchdog, which prints where this
    process was stuck and exits, and mpiexec then ends the job.
    """
    if timeout is not None and "mpi4py.MPI" not in sys.modules:
        faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError("the 'mpi' backend needs mpi4py and an MPI library: pip install 'lepton[dist]' "
                           f"(mpi4py + mpich) ({e})") from None
    finally:
        if timeout is not None:
            faulthandler.cancel_dump_traceback_later()
    return MPI


def _datatypes(MPI):
    return {lepton.float32: MPI.FLOAT, lepton.float64: MPI.DOUBLE, lepton.int32: MPI.INT32_T,
            lepton.int64: MPI.INT64_T, lepton.int8: MPI.INT8_T, lepton.uint8: MPI.UINT8_T, lepton.bool: MPI.C_BOOL}


class MPIGroup(ProcessGroup):
    backend = "mpi"
    progress_by_polling = True

    def __init__(self, comm, timeout):
        super().__init__(timeout)
        self._MPI = MPI = _mpi()
        self.comm = comm
        self._types = _datatypes(MPI)
        # the dtypes MPI reduces as they are (AVG only reaches it for floats: checked by the caller)
        self._reducible = {lepton.float32, lepton.float64, lepton.int32, lepton.int64, lepton.int8, lepton.uint8}
        self._ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MAX: MPI.MAX, ReduceOp.MIN: MPI.MIN}
        # MPI has no sum over bools; torch's is a logical or.
        self._bool_ops = {ReduceOp.SUM: MPI.LOR, ReduceOp.MAX: MPI.LOR, ReduceOp.MIN: MPI.LAND}

    @classmethod
    def world(cls, timeout):
        MPI = _mpi(timeout)
        # Every rank must show up within the timeout (one that failed to start or crashed
        # before init would otherwise leave the others blocked in the collective Dup).
        world = cls(MPI.COMM_WORLD, timeout)
        atexit.register(world._exit)
        world._start("init_process_group (waiting for every rank to join)", world.comm.Ibarrier).wait()
        # A communicator of our own, so the user's MPI traffic never interleaves with ours.
        group = cls(MPI.COMM_WORLD.Dup(), timeout)
        check.attach(group, lambda: MPIHeaders(MPI, group.comm))
        atexit.register(group._exit)
        return group

    def rank(self):
        return self.comm.Get_rank()

    def size(self):
        return self.comm.Get_size()

    # ---- buffers

    def _bytes(self, t):
        return self._MPI.buffer.fromaddress(t.data_ptr(), t.numel() * t.element_size())

    def _reduce_spec(self, t, op):
        """(buffer spec, MPI op, staging tensor or None) for a reduction over `t`."""
        dtype = t.dtype
        if dtype in self._reducible:
            return [self._bytes(t), self._types[dtype]], self._ops[op], None
        if dtype == lepton.bool:
            return [self._bytes(t), self._MPI.C_BOOL], self._bool_ops[op], None
        staged = t.float()  # float16/bfloat16: MPI cannot add them
        return [self._bytes(staged), self._MPI.FLOAT], self._ops[op], staged

    def _start(self, name, start, finish=None, keep=()):
        if self._error is not None:
            self.check_usable()
        try:
            request = start()
        except self._MPI.Exception as e:
            self._fail(DistError(f"lepton.distributed: {name} failed in MPI: {e}"))
        return Work(name, self, request.Test, finish, keep)

    @staticmethod
    def _finisher(tensor, staged, op, denominator):
        """What completes a reduction after MPI is done: the average's division, the copy out of staging."""
        if staged is None and op != ReduceOp.AVG:
            return None

        def finish():
            with lepton.no_grad():
                if staged is not None:
                    if op == ReduceOp.AVG:
                        staged.div_(denominator)
                    tensor.copy_(staged)
                else:
                    tensor.div_(denominator)
        return finish

    # ---- collectives

    def all_reduce(self, tensor, op):
        if tensor.numel() == 0:
            return completed_work(self, "all_reduce")
        spec, mpi_op, staged = self._reduce_spec(tensor, op)
        return self._start("all_reduce", lambda: self.comm.Iallreduce(self._MPI.IN_PLACE, spec, mpi_op),
                           self._finisher(tensor, staged, op, self.size()), (tensor, staged, spec))

    def broadcast(self, tensor, src):
        if tensor.numel() == 0:
            return completed_work(self, "broadcast")
        spec = [self._bytes(tensor), self._MPI.BYTE]
        return self._start("broadcast", lambda: self.comm.Ibcast(spec, root=src), keep=(tensor, spec))

    def all_gather_into_tensor(self, output, input):
        if input.numel() == 0:
            return completed_work(self, "all_gather")
        send, recv = [self._bytes(input), self._MPI.BYTE], [self._bytes(output), self._MPI.BYTE]
        return self._start("all_gather", lambda: self.comm.Iallgather(send, recv), keep=(input, output, send, recv))

    def reduce_scatter_tensor(self, output, input, op):
        if output.numel() == 0:
            return completed_work(self, "reduce_scatter")
        send, mpi_op, staged_in = self._reduce_spec(input, op)
        recv, _, staged_out = self._reduce_spec(output, op)
        return self._start("reduce_scatter", lambda: self.comm.Ireduce_scatter_block(send, recv, mpi_op),
                           self._finisher(output, staged_out, op, self.size()),
                           (input, output, staged_in, staged_out, send, recv))

    def barrier(self):
        return self._start("barrier", self.comm.Ibarrier)

    def split(self, ranks, timeout):
        """A group of `ranks` (every rank calls this); None on ranks outside it."""
        member = self.rank() in ranks
        try:
            color, key = (0, sorted(ranks).index(self.rank())) if member else (self._MPI.UNDEFINED, 0)
            comm = self.comm.Split(color, key)
        except self._MPI.Exception as e:
            self._fail(DistError(f"lepton.distributed: new_group failed in MPI: {e}"))
        if not member:
            return None
        group = MPIGroup(comm, timeout)
        check.attach(group, lambda: MPIHeaders(self._MPI, comm))
        return group

    def destroy(self):
        if not self.broken and self.comm != self._MPI.COMM_NULL:
            if self.checker is not None:
                self.checker.close()
            self.comm.Free()
        self.comm = self._MPI.COMM_NULL


class MPIHeaders:
    """The check's channel: each header goes to every peer point to point (not in one
    all-gather), so that a timeout can name the ranks whose header never came."""

    def __init__(self, MPI, comm):
        self._MPI, self.comm = MPI, comm.Dup()  # tags and matching of our own
        rank, self._size = self.comm.Get_rank(), self.comm.Get_size()
        self._peers = [p for p in range(self._size) if p != rank]

    def post(self, header):
        n = len(header)
        table = bytearray(header * self._size)  # our own row in place; the peers' arrive over it
        rows = memoryview(table)
        recvs = [self.comm.Irecv([rows[p * n:(p + 1) * n], self._MPI.BYTE], source=p) for p in self._peers]
        sends = [self.comm.Isend([header, self._MPI.BYTE], dest=p) for p in self._peers]
        return _Exchange(self._MPI, table, self._peers, recvs, sends)

    def close(self):
        self.comm.Free()


class _Exchange:
    def __init__(self, MPI, table, peers, recvs, sends):
        self._MPI, self._table, self._peers, self._recvs, self._requests = MPI, table, peers, recvs, recvs + sends

    def test(self):
        return self._MPI.Request.Testall(self._requests)

    def table(self):
        return self._table

    def missing(self):
        return [p for p, r in zip(self._peers, self._recvs) if not r.Test()]
