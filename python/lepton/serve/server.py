"""The HTTP JSON API: POST /predict, GET /healthz, GET /metrics.

Built on the standard library's ThreadingHTTPServer: no dependency to install or keep patched,
and enough here because the HTTP threads only parse JSON and wait, while one batcher thread runs
the model with the GIL released inside Lepton's kernels; an async framework would not make the
model faster. Every request is bounded (body size, samples per request, requests in flight,
time to answer) and every bad input gets a 4xx JSON error instead of reaching the model.
"""

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from lepton.serve.batcher import MicroBatcher
from lepton.serve.metrics import Metrics

__all__ = ["InferenceServer"]


class _HTTPError(Exception):
    def __init__(self, code, message, kind):
        super().__init__(message)
        self.code, self.message, self.kind = code, message, kind


def parse_inputs(body, input_shape, max_samples):
    """float32 [n, *input_shape] from a JSON body {"inputs": [sample, ...]} or {"input": sample};
    a sample with the right number of values but another shape (e.g. flat) is reshaped."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _HTTPError(400, f"body is not valid JSON: {e}", "bad_json") from None
    if not isinstance(doc, dict) or ("inputs" in doc) == ("input" in doc):
        raise _HTTPError(400, 'body must be a JSON object with either "inputs" (a list of samples) or "input" '
                              '(one sample)', "bad_request")
    samples = doc["inputs"] if "inputs" in doc else [doc["input"]]
    if not isinstance(samples, list) or not samples:
        raise _HTTPError(400, '"inputs" must be a non-empty list of samples', "bad_request")
    if len(samples) > max_samples:
        raise _HTTPError(413, f"{len(samples)} samples in one request; the limit is {max_samples}", "too_large")
    try:
        x = np.asarray(samples)
    except ValueError:
        raise _HTTPError(400, "inputs must be a rectangular array of numbers (samples of different sizes?)",
                         "bad_input") from None
    if x.dtype.kind not in "iuf":
        got = "booleans" if x.dtype.kind == "b" else "non-numeric values"
        raise _HTTPError(400, f"inputs must be numbers, got {got}", "bad_input")
    per_sample = math.prod(input_shape)
    if x.shape[1:] != tuple(input_shape):
        if x.size != len(samples) * per_sample:
            raise _HTTPError(400, f"each sample must have shape {list(input_shape)} ({per_sample} values), got "
                                  f"samples of shape {list(x.shape[1:])}", "bad_shape")
        x = x.reshape(len(samples), *input_shape)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise _HTTPError(400, "inputs contain NaN or infinity", "bad_input")
    return x


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: bursts of clients wait instead of being reset


class InferenceServer:
    """Serves a Servable over HTTP. start() runs it in a background thread (tests, benchmarks);
    serve_forever() blocks (the CLI). port=0 picks a free port (see .port)."""

    def __init__(self, servable, host="127.0.0.1", port=8000, max_body_bytes=1 << 20, max_samples=256,
                 max_batch=64, max_wait_ms=2.0, max_in_flight=256, timeout=30.0):
        self.servable = servable
        self.max_body_bytes, self.max_samples, self.timeout = int(max_body_bytes), int(max_samples), float(timeout)
        self.metrics = Metrics(servable.name, servable.version)
        self.batcher = MicroBatcher(servable.predict, max_batch, max_wait_ms / 1000.0, on_batch=self.metrics.batch)
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self.httpd = _HTTPServer((host, port), _handler(self))
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="lepton-serve-http",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        try:
            self.httpd.serve_forever()
        finally:
            self.close()

    def close(self):
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()
        self.batcher.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- endpoints -------------------------------------------------------------------------

    def predict(self, body):
        s = self.servable
        x = parse_inputs(body, s.input_shape, self.max_samples)
        try:
            y = self.batcher.submit(x, self.timeout)
        except TimeoutError as e:
            raise _HTTPError(503, str(e), "timeout") from None
        except Exception as e:  # noqa: BLE001 - the model failed: report it, keep serving
            raise _HTTPError(500, f"the model failed on this input: {type(e).__name__}: {e}", "model_error") from None
        return {"model": s.name, "model_version": s.version, "outputs": [s.postprocess(row) for row in y]}

    def health(self):
        s = self.servable
        return {"status": "ok", "model": s.name, "model_version": s.version, "input_shape": list(s.input_shape)}


def _handler(server):
    class Handler(BaseHTTPRequestHandler):
        server_version = "lepton-serve"

        def log_message(self, format, *args):  # noqa: A002 - quiet by default; /metrics has the figures
            pass

        def _send(self, code, payload, content_type="application/json"):
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, route):
            start = time.perf_counter()
            path = self.path.split("?", 1)[0]
            code = 500
            server.metrics.in_flight(1)
            try:
                if not server._slots.acquire(blocking=False):
                    raise _HTTPError(503, "too many requests in flight; retry later", "overloaded")
                try:
                    code, payload, ctype = route(path)
                finally:
                    server._slots.release()
            except _HTTPError as e:
                code, payload, ctype = e.code, {"error": e.message}, "application/json"
                server.metrics.error(e.kind)
                if e.code == 413:
                    self.close_connection = True  # the body was not read
            except Exception as e:  # noqa: BLE001 - never let a request kill the server
                code, payload, ctype = 500, {"error": f"internal error: {type(e).__name__}: {e}"}, "application/json"
                server.metrics.error("internal")
            finally:
                server.metrics.in_flight(-1)
            # counted before the reply goes out, so a client that has its answer sees it in /metrics
            known = path if path in ("/predict", "/healthz", "/metrics") else "other"
            server.metrics.request(known, code, time.perf_counter() - start)
            try:
                self._send(code, payload, ctype)
            except OSError:  # the client went away
                server.metrics.error("disconnected")

        def _get(self, path):
            if path == "/healthz":
                return 200, server.health(), "application/json"
            if path == "/metrics":
                return 200, server.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"
            if path == "/predict":
                raise _HTTPError(405, "use POST for /predict", "bad_method")
            raise _HTTPError(404, f"no such endpoint {path!r} (try POST /predict, GET /healthz, GET /metrics)",
                             "not_found")

        def _post(self, path):
            if path != "/predict":
                raise _HTTPError(404 if path not in ("/healthz", "/metrics") else 405,
                                 f"POST is only for /predict, not {path!r}", "not_found")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise _HTTPError(411, "a Content-Length header is required", "bad_request")
            if int(length) > server.max_body_bytes:
                raise _HTTPError(413, f"body of {int(length)} bytes exceeds the limit of {server.max_body_bytes}",
                                 "too_large")
            body = self.rfile.read(int(length))
            return 200, server.predict(body), "application/json"

        def do_GET(self):  # noqa: N802 - http.server's naming
            self._handle(self._get)

        def do_POST(self):  # noqa: N802
            self._handle(self._post)

    return Handler
