"""Dynamic micro-batching: concurrent requests are stacked into one model call.

A single worker thread owns the model. It takes the first waiting request, then keeps taking
requests of the same sample shape until the batch holds max_batch samples or max_wait seconds
have passed since the first, runs the model once, and hands each request its rows.
"""

import queue
import threading
import time

import numpy as np

__all__ = ["MicroBatcher"]


class _Request:
    __slots__ = ("x", "done", "result", "error")

    def __init__(self, x):
        self.x, self.done, self.result, self.error = x, threading.Event(), None, None


class MicroBatcher:
    """fn maps a float32 array [B, ...] to an array [B, ...]; submit() may be called from any thread."""

    def __init__(self, fn, max_batch=64, max_wait=0.002, on_batch=None):
        if max_batch < 1:
            raise ValueError(f"MicroBatcher: max_batch must be at least 1, got {max_batch}")
        self.fn, self.max_batch, self.max_wait, self.on_batch = fn, int(max_batch), float(max_wait), on_batch
        self._queue = queue.Queue()
        self._held = []  # taken from the queue but of another shape than the batch being built
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="lepton-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, x, timeout=30.0):
        """The model's output rows for the samples x [n, ...]; raises what the model raised, or
        TimeoutError when the result doesn't come within timeout seconds."""
        r = _Request(x)
        self._queue.put(r)
        if not r.done.wait(timeout):
            raise TimeoutError(f"no result within {timeout:g} s (server overloaded?)")
        if r.error is not None:
            raise r.error
        return r.result

    def close(self):
        self._stop = True
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _next(self, timeout):
        if self._held:
            return self._held.pop(0)
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _run(self):
        while not self._stop:
            first = self._next(None)
            if first is None:
                continue
            batch, n = [first], len(first.x)
            deadline = time.perf_counter() + self.max_wait
            skipped = []
            while n < self.max_batch:
                r = self._next(deadline - time.perf_counter())
                if r is None:
                    break
                if r.x.shape[1:] != first.x.shape[1:] or n + len(r.x) > self.max_batch:
                    skipped.append(r)
                    if len(skipped) > self.max_batch:  # don't scan the whole queue
                        break
                    continue
                batch.append(r)
                n += len(r.x)
            self._held = skipped + self._held
            self._call(batch, n)

    def _call(self, batch, n):
        try:
            x = batch[0].x if len(batch) == 1 else np.concatenate([r.x for r in batch])
            y = self.fn(x)
            if self.on_batch:
                self.on_batch(n)
            at = 0
            for r in batch:
                r.result = y[at:at + len(r.x)]
                at += len(r.x)
        except BaseException as e:  # noqa: BLE001 - handed to every waiting request
            for r in batch:
                r.error = e
        for r in batch:
            r.done.set()
