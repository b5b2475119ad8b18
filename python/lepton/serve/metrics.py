"""Thread-safe server metrics rendered in the Prometheus text exposition format (version 0.0.4)."""

import bisect
import threading

__all__ = ["Metrics", "LATENCY_BUCKETS", "BATCH_BUCKETS"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _Histogram:
    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value):
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def render(self, name, labels=""):
        lines, acc = [], 0
        sep = "," if labels else ""
        for bound, count in zip(list(self.bounds) + ["+Inf"], self.counts):
            acc += count
            lines.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {acc}')
        brace = f"{{{labels}}}" if labels else ""
        lines += [f"{name}_sum{brace} {self.total:.6f}", f"{name}_count{brace} {acc}"]
        return lines


class Metrics:
    """Request counts by path and status code, request latency per path, errors by kind, model
    batch sizes and the model's identity."""

    def __init__(self, model_name, model_version):
        self._lock = threading.Lock()
        self.model_name, self.model_version = model_name, model_version
        self._requests = {}  # (path, code) -> count
        self._latency = {}  # path -> histogram
        self._errors = {}  # kind -> count
        self._batches = _Histogram(BATCH_BUCKETS)
        self._in_flight = 0

    def request(self, path, code, seconds):
        with self._lock:
            self._requests[(path, code)] = self._requests.get((path, code), 0) + 1
            self._latency.setdefault(path, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def error(self, kind):
        with self._lock:
            self._errors[kind] = self._errors.get(kind, 0) + 1

    def batch(self, size):
        with self._lock:
            self._batches.observe(size)

    def in_flight(self, delta):
        with self._lock:
            self._in_flight += delta

    def render(self):
        with self._lock:
            out = ["# HELP lepton_model_info The served model (value is always 1).", "# TYPE lepton_model_info gauge",
                   f'lepton_model_info{{name="{_esc(self.model_name)}",version="{_esc(self.model_version)}"}} 1',
                   "# HELP lepton_requests_total HTTP requests by path and status code.",
                   "# TYPE lepton_requests_total counter"]
            out += [f'lepton_requests_total{{path="{_esc(p)}",code="{c}"}} {n}'
                    for (p, c), n in sorted(self._requests.items())]
            out += ["# HELP lepton_request_duration_seconds Time from request to response.",
                    "# TYPE lepton_request_duration_seconds histogram"]
            for path, h in sorted(self._latency.items()):
                out += h.render("lepton_request_duration_seconds", f'path="{_esc(path)}"')
            out += ["# HELP lepton_errors_total Failed requests by kind.", "# TYPE lepton_errors_total counter"]
            out += [f'lepton_errors_total{{kind="{_esc(k)}"}} {n}' for k, n in sorted(self._errors.items())]
            out += ["# HELP lepton_batch_size Samples per model call (after micro-batching).",
                    "# TYPE lepton_batch_size histogram"]
            out += self._batches.render("lepton_batch_size")
            out += ["# HELP lepton_requests_in_flight Requests being handled now.",
                    "# TYPE lepton_requests_in_flight gauge",
                    f"lepton_requests_in_flight {self._in_flight}"]
        return "\n".join(out) + "\n"


def _esc(s):
    return str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
