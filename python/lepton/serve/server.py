"""The HTTP JSON API: POST /predict, GET /healthz, GET /metrics.

Standard library only: nothing to install or keep patched. One thread (ConnectionLoop) owns every
socket and answers /healthz and /metrics itself, so they stay up however slow the model or the
clients are. /predict goes to a pool of at most max_in_flight worker threads that parse the JSON
and wait on the micro-batcher, whose single thread runs the model with the GIL released inside
Lepton's kernels; an async framework would not make the model faster. Every request is bounded
(head and body size, JSON nesting, samples, requests in flight, time to arrive, time to answer)
and every bad input gets a 4xx JSON error instead of reaching the model.
"""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from lepton.serve.batcher import MicroBatcher
from lepton.serve.loop import ConnectionLoop
from lepton.serve.metrics import Metrics
from lepton.serve.payload import encode_json, parse_inputs
from lepton.serve.protocol import HTTPError

__all__ = ["InferenceServer"]

_JSON = "application/json"
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_ENDPOINTS = {"/predict": "POST", "/healthz": "GET", "/metrics": "GET"}


def _encodes(doc):
    try:
        encode_json(doc)
        return True
    except ValueError:
        return False


class InferenceServer:
    """Serves a Servable over HTTP/1.1. start() runs it in a background thread (tests, benchmarks),
    serve_forever() on this one (the CLI); stop() makes either finish the requests in flight and
    return. port=0 picks a free port (see .port). client_timeout: seconds a client may take to send
    a whole request or to take a response (idle keep-alive connections close after it too);
    timeout: seconds a request may wait for the model."""

    def __init__(self, servable, host="127.0.0.1", port=8000, max_body_bytes=1 << 20, max_samples=256,
                 max_batch=64, max_wait_ms=2.0, max_in_flight=256, timeout=30.0, client_timeout=10.0,
                 max_connections=1000):
        self.servable = servable
        self.max_samples, self.timeout, self.client_timeout = int(max_samples), float(timeout), float(client_timeout)
        self.metrics = Metrics(servable.name, servable.version)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=1024)  # bursts wait, not reset
        self.host, self.port = listener.getsockname()[:2]
        self._loop = ConnectionLoop(listener, self, self.client_timeout, max_connections,
                                    max_body_bytes=max_body_bytes)
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="lepton-serve-worker")
        self.batcher = MicroBatcher(servable.predict, max_batch, max_wait_ms / 1000.0, on_batch=self.metrics.batch)
        self._thread = None
        self._finished = False

    @property
    def url(self):
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, name="lepton-serve-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        """Serves until stop(), then waits for the workers and the batcher."""
        try:
            self._loop.run()
        finally:
            self._pool.shutdown(wait=True)
            self.batcher.close()
            self._finished = True

    def stop(self, grace=None):
        """Stops accepting and lets the requests in flight finish (within grace seconds, by default
        timeout + client_timeout: long enough for any of them); returns at once. Signal-safe."""
        self._loop.stop(self.timeout + self.client_timeout if grace is None else grace)

    def close(self):
        """stop(), and wait until the server started with start() has finished (or, never started,
        release its socket)."""
        self.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        elif not self._finished:
            self.serve_forever()  # returns at once: stop() has asked it to, and nothing is in flight

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- the ConnectionLoop's application interface ---------------------------------------------

    def handle(self, request, reply):
        start = time.perf_counter()
        if (request.method, request.path) != ("POST", "/predict"):
            reply(self._answer(request.path, start, self._route, request))
        elif not self._slots.acquire(blocking=False):
            reply(self._refused("/predict", start, HTTPError(503, "too many requests in flight; retry later",
                                                             "overloaded")))
        else:
            self.metrics.in_flight(1)
            self._pool.submit(self._predict_task, request, reply, start)

    def reject(self, error):
        return self._refused("other", time.perf_counter(), error)

    # ---- endpoints -------------------------------------------------------------------------

    def _predict_task(self, request, reply, start):
        try:
            resp = self._answer("/predict", start, self._predict, request)
        finally:
            self._slots.release()
            self.metrics.in_flight(-1)
        reply(resp)

    def _predict(self, request):
        if "content-length" not in request.headers:
            raise HTTPError(411, "a Content-Length header is required", "bad_request")
        s = self.servable
        x = parse_inputs(request.body, s.input_shape, self.max_samples)
        try:
            y = self.batcher.submit(x, self.timeout)
        except TimeoutError as e:
            raise HTTPError(503, str(e), "timeout") from None
        except Exception as e:  # noqa: BLE001 - the model failed: report it, keep serving
            raise HTTPError(500, f"the model failed on this input: {type(e).__name__}: {e}", "model_error") from None
        outputs = [s.postprocess(row) for row in y]
        try:
            return 200, encode_json({"model": s.name, "model_version": s.version, "outputs": outputs}), _JSON
        except ValueError:
            # An error, not null in place of the NaN: a null looks like an answer to a client that
            # doesn't check for it, and a silent wrong answer is the worst kind of bug here (DESIGN.md);
            # NaN in an input is refused the same way.
            bad = [i for i, out in enumerate(outputs) if not _encodes(out)]
            raise HTTPError(500, f"the model's output for sample(s) {bad} of this request contains NaN or "
                                 "infinity, which JSON cannot carry", "model_nonfinite") from None

    def _route(self, request):
        method, path = request.method, request.path
        if path not in _ENDPOINTS:
            raise HTTPError(404, f"no such endpoint {path!r} (try POST /predict, GET /healthz, GET /metrics)",
                            "not_found")
        if method != _ENDPOINTS[path] and not (method == "HEAD" and _ENDPOINTS[path] == "GET"):
            raise HTTPError(405, f"use {_ENDPOINTS[path]} for {path}, not {method}", "bad_method")
        if path == "/healthz":
            return 200, encode_json(self.health()), _JSON
        return 200, self.metrics.render().encode(), _PROMETHEUS

    def health(self):
        s = self.servable
        return {"status": "ok", "model": s.name, "model_version": s.version, "input_shape": list(s.input_shape)}

    # ---- responses and their metrics ------------------------------------------------------------

    def _answer(self, path, start, fn, request):
        """fn(request)'s response, or the error it raised as a JSON response; counted in the metrics."""
        try:
            code, body, ctype = fn(request)
        except HTTPError as e:
            return self._refused(path, start, e)
        except Exception as e:  # noqa: BLE001 - never let a request kill the server
            self.metrics.error("internal")
            code, body, ctype = 500, encode_json({"error": f"internal error: {type(e).__name__}: {e}"}), _JSON
        return self._counted(path, start, code, body, ctype)

    def _refused(self, path, start, error):
        self.metrics.error(error.kind)
        return self._counted(path, start, error.code, encode_json({"error": error.message}), _JSON)

    def _counted(self, path, start, code, body, ctype):
        # counted before the reply goes out, so a client that has its answer sees it in /metrics
        self.metrics.request(path if path in _ENDPOINTS else "other", code, time.perf_counter() - start)
        return code, body, ctype
