"""The background threads that prepare a DataLoader's batches, and get_worker_info() inside them.

DataLoader workers are threads, not processes: Lepton's kernels and NumPy release the GIL, so
threads overlap loading with training without pickling the dataset or copying batches between
processes. All workers therefore share one dataset object (WorkerInfo.dataset is it, not a copy)
and the process's global random state (`lepton.manual_seed`, `random`, `np.random`): draws from
it inside workers interleave from run to run, so a worker that needs reproducible randomness
seeds its own generator from WorkerInfo.seed.
"""

import collections
import dataclasses
import itertools
import queue
import threading
import weakref

__all__ = ["WorkerInfo", "get_worker_info"]

_local = threading.local()


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What get_worker_info() returns inside a worker (torch's fields)."""

    id: int
    num_workers: int
    seed: int
    dataset: object
    rng: object = None
    worker_method: str = "thread"


def get_worker_info():
    """This worker thread's WorkerInfo inside a DataLoader worker (num_workers > 0), None elsewhere."""
    return getattr(_local, "info", None)


class _Failure:
    """An exception raised while preparing a batch, carried to the consumer."""

    def __init__(self, exc):
        self.exc = exc


def _work(tasks, info, init_fn):
    """Thread body: run the jobs sent to this thread, in order, until told to stop (None). A failing
    init_fn fails every job."""
    _local.info = info
    failure = None
    if init_fn is not None:
        try:
            init_fn(info.id)
        except BaseException as exc:  # noqa: BLE001  (it must reach the consumer)
            failure = _Failure(exc)
    while _run(tasks.get(), failure):
        pass


def _run(job, failure):
    """Run one job (fn, results queue, cancel event) unless it was cancelled; False for the stop
    signal. A function of its own so that nothing of the job (which may hold the loader and its
    batch) stays referenced while the thread waits for the next one."""
    if job is None:
        return False
    fn, results, cancel = job
    if not cancel.is_set():
        try:
            result = failure or fn()
        except BaseException as exc:  # noqa: BLE001
            result = _Failure(exc)
        results.put(result)
    return True


def _stop(tasks):
    for q in tasks:
        q.put(None)


class Pool:
    """Daemon threads, each running the jobs given to it in order; one per WorkerInfo (or None,
    for a thread outside get_worker_info's view), named name.format(index)."""

    def __init__(self, infos, name, init_fn=None):
        self._tasks = [queue.SimpleQueue() for _ in infos]
        self._threads = [threading.Thread(target=_work, args=(q, info, init_fn), name=name.format(i), daemon=True)
                         for i, (q, info) in enumerate(zip(self._tasks, infos))]
        for t in self._threads:
            t.start()
        self._stopper = weakref.finalize(self, _stop, self._tasks)  # a dropped pool's threads end too
        self._stuck = False  # a job ran past a timeout: closing does not wait for it

    @property
    def size(self):
        return len(self._threads)

    def run(self, jobs, depth, timeout):
        """Yield (result, more) for `jobs`, an iterable of (thread index, fn), in job order, keeping
        up to `depth` jobs queued ahead; `more` says whether jobs remain. A job's exception is
        raised here; waiting longer than `timeout` seconds (when > 0) for one raises RuntimeError.
        Jobs still queued when the consumer stops are skipped."""
        cancel = threading.Event()
        results = [queue.SimpleQueue() for _ in self._threads]
        pending = collections.deque()
        jobs = iter(jobs)

        def submit():
            for index, fn in itertools.islice(jobs, 1):
                self._tasks[index].put((fn, results[index], cancel))
                pending.append(index)

        try:
            for _ in range(depth):
                submit()
            while pending:
                index = pending.popleft()
                try:
                    result = results[index].get(timeout=timeout if timeout > 0 else None)
                except queue.Empty:
                    self._stuck = True
                    raise RuntimeError(f"DataLoader timed out after {timeout} seconds") from None
                if isinstance(result, _Failure):
                    raise result.exc
                submit()
                yield result, bool(pending)
        finally:
            cancel.set()

    def close(self):
        """Stop the threads, waiting for them unless one is stuck in a job past a timeout."""
        self._stopper()
        if not self._stuck:
            for t in self._threads:
                t.join()


def run_inline(jobs):
    """Pool.run's (result, more) pairs for jobs run in the caller, one at a time."""
    jobs = iter(jobs)
    job = next(jobs, None)
    while job is not None:
        following = next(jobs, None)
        yield job[1](), following is not None
        job = following
