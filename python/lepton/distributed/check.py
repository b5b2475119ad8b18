"""Every collective's arguments compared across ranks before any data moves.

Ranks that call different collectives, or the same one with different shapes, dtypes, ops or
src, would otherwise exchange garbage (or hang): MPI and NCCL match collectives only by the order
in which they are called. So each collective first sends every peer a header of a few int64
(call number, kind, dtype, op, root, shape) over a channel of its own, and its data moves only
once all the headers are in and equal; otherwise it raises a DistError naming every rank's call,
on every rank (each sees the same headers), and leaves the group usable. Asynchronous ops stay
asynchronous: the data starts at the first poll or wait after the headers arrive, in call order.

A channel has post(header) -> exchange, where an exchange has test() (all headers in?), table()
(the ranks' headers end to end, bytes) and missing() (the ranks whose header has not come, for a
timeout), and close(). LEPTON_DIST_CHECK=0 turns the check off, to measure what it costs.
"""

import collections
import struct
import zlib

import lepton
from lepton.distributed import env
from lepton.distributed.group import ReduceOp
from lepton.distributed.work import DistError, Work, guarded, spin_until, timed_out

KINDS = ("all_reduce", "broadcast", "all_gather", "reduce_scatter", "barrier")
_DTYPES = ("float32", "float64", "float16", "bfloat16", "int32", "int64", "int8", "uint8", "bool")
# codes are 1-based so that 0 means "none"
_KIND_CODE = {k: i + 1 for i, k in enumerate(KINDS)}
_DTYPE_NAME = {getattr(lepton, n).value + 1: n for n in _DTYPES}  # (the enum's value: the quickest to read)
_OP_CODE = {op: i + 1 for i, op in enumerate(ReduceOp.ALL)}
_MAX_DIMS = 8
# seq, kind, dtype, op, root, ndim, then the dims
WORDS = 6 + _MAX_DIMS
_HEADER = struct.Struct(f"<{WORDS}q")
_SEQ = struct.Struct("<q")
HEADER_BYTES = _HEADER.size


def attach(group, make_channel):
    """Check `group`'s collectives over make_channel()'s channel (unless alone or turned off)."""
    if group.size() > 1 and env.checks_enabled():
        group.checker = Checker(group, make_channel())


def encode(seq, kind, tensor=None, op=None, root=None):
    """The header of one call: WORDS little-endian int64, as bytes (compared bytewise)."""
    words = [seq, _KIND_CODE[kind], 0, 0 if op is None else _OP_CODE[op], 0 if root is None else root + 1, 0]
    if tensor is not None:
        shape = tuple(tensor.shape)
        words[2], words[5] = tensor.dtype.value + 1, len(shape)
        if len(shape) > _MAX_DIMS:  # the trailing dims fold into the last word
            shape = shape[:_MAX_DIMS - 1] + (zlib.crc32(struct.pack(f"<{len(shape)}q", *shape)),)
        words += shape
    return _HEADER.pack(*words, *[0] * (WORDS - len(words)))


def decode(table):
    """The headers in `table` (one per rank, end to end) as tuples of ints."""
    return [_HEADER.unpack_from(table, i) for i in range(0, len(table), HEADER_BYTES)]


def _kind(code):
    return KINDS[code - 1] if 0 < code <= len(KINDS) else f"kind {code}"


def describe(h, with_kind=True):
    """'all_reduce float32[4, 3] op=sum' for a decoded header."""
    seq, kind, dtype, op, root, ndim = h[:6]
    text = [_kind(kind)] if with_kind else []
    if dtype:
        dims = [str(d) for d in h[6:6 + min(ndim, _MAX_DIMS)]]
        if ndim > _MAX_DIMS:
            dims[-1] = "..."
        text.append(f"{_DTYPE_NAME.get(dtype, f'dtype {dtype}')}[{', '.join(dims)}]")
    if op:
        text.append(f"op={ReduceOp.ALL[op - 1]}")
    if root:
        text.append(f"src={root - 1}")
    return " ".join(text) or _kind(kind)


def mismatch_message(table):
    """Every rank's call (ranks making the same call together), for headers that disagree."""
    calls = {}
    for r, h in enumerate(decode(table)):
        calls.setdefault(h, []).append(r)
    kinds = {h[1] for h in calls}
    one_kind, one_seq = len(kinds) == 1, len({h[0] for h in calls}) == 1
    parts = []
    for h, ranks in calls.items():
        call = describe(h, with_kind=not one_kind) + ("" if one_seq else f" (call #{h[0]})")
        parts.append(f"rank{'s' if len(ranks) > 1 else ''} {','.join(map(str, ranks))} {call}")
    what = _kind(kinds.pop()) if one_kind else "collective"
    return (f"lepton.distributed: {what} mismatch at call #{next(iter(calls))[0]}: {', '.join(parts)}; every rank "
            "must make the same collective calls in the same order, with the same shapes, dtypes, ops and src "
            "(no data was exchanged)")


def _late(exchange):
    late = exchange.missing()
    who = f"rank{'s' if len(late) > 1 else ''} {', '.join(map(str, late))}" if late else "a peer"
    return f"waiting for {who}, which has not reached this collective (died, hangs, or skipped it)"


class Checker:
    """The check of one process group: numbers its calls and starts their data in call order."""

    def __init__(self, group, channel):
        self._group, self._channel = group, channel
        self._size = group.size()
        self._calls = 0
        self._tails = {}  # header words after the call number, by call signature: encode() once
        self._waiting = collections.deque()  # CheckedWork whose headers are not all in, oldest first

    def submit(self, kind, start, tensor=None, op=None, root=None, blocking=False):
        """The Work of start(), which launches collective `kind`, once every rank's header agrees.

        A blocking call with nothing in flight waits for the headers here, without a CheckedWork:
        half the cost, for the common case.
        """
        g = self._group
        g.check_usable()
        self._calls += 1
        name = f"{kind} #{self._calls}"
        header = self._header(kind, tensor, op, root)
        exchange = guarded(g, name, lambda: self._channel.post(header))
        agreed = header * self._size
        if blocking and not self._waiting:
            spin_until(lambda: guarded(g, name, exchange.test), g.timeout,
                       lambda: timed_out(g, name, g.timeout, _late(exchange)))
            if exchange.table() != agreed:
                raise DistError(mismatch_message(exchange.table()))
            work = start()
            work.name = name
            return work
        work = CheckedWork(name, g, self, exchange, agreed, start)
        self._waiting.append(work)
        # Start at once if the peers' headers are already here; a mismatch is raised by the
        # work's wait(), so that it surfaces at the same place in the program on every rank.
        guarded(g, name, self.advance)
        return work

    def _header(self, kind, tensor, op, root):
        key = (kind, op, root) if tensor is None else (kind, op, root, tensor.dtype.value, tuple(tensor.shape))
        tail = self._tails.get(key)
        if tail is None:
            if len(self._tails) > 1024:  # shapes that never repeat
                self._tails.clear()
            tail = self._tails[key] = encode(0, kind, tensor, op, root)[_SEQ.size:]
        return _SEQ.pack(self._calls) + tail

    def advance(self):
        # MPI and NCCL match data collectives by the order they start: always the oldest first.
        while self._waiting and self._waiting[0].exchange.test():
            self._waiting.popleft()._launch()

    def close(self):
        self._channel.close()


class CheckedWork(Work):
    """A collective whose data moves once the headers are in: then the backend's Work takes over."""

    def __init__(self, name, group, checker, exchange, agreed, start):
        super().__init__(name, group, self._progress)
        self._checker, self.exchange, self._agreed, self._start = checker, exchange, agreed, start
        self._inner = None  # the backend's Work, once the data moves
        self._mismatch = None  # the message, when the headers disagreed

    def _launch(self):
        table = self.exchange.table()
        if table != self._agreed:  # every rank's header equal to ours
            self._mismatch = mismatch_message(table)
            return
        start, self._start = self._start, None
        self._inner = start()
        self._inner.name = self.name

    def _started(self):
        if self._inner is None:
            self._checker.advance()
        if self._mismatch is not None:
            raise DistError(self._mismatch)
        return self._inner is not None

    def _progress(self):
        return self._started() and self._inner.is_completed()

    def wait(self, timeout=None):
        """Wait for the headers, then as the backend's Work does (each bounded by the timeout)."""
        if not self._done:
            g, limit = self._group, self._limit(timeout)
            spin_until(lambda: guarded(g, self.name, self._started), limit,
                       lambda: timed_out(g, self.name, limit, _late(self.exchange)))
            self._inner.wait(limit)
            self._complete()
        return True
