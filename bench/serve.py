"""`lepton serve` under load: requests/s and latency percentiles from N concurrent HTTP clients.

The server is the real command (`python -m lepton.cli serve CHECKPOINT --port 0`) in its own
process, serving an (untrained) mnist-mlp checkpoint, so the client threads here don't share its
GIL. Each client sends single-sample POST /predict requests back to back, either over one
keep-alive connection (reconnecting only when the server closes it) or over a new connection per
request (`Connection: close`). Figures are medians over --repeat runs after a warm-up.

    python bench/serve.py [--quick] [--int8] [--json out.json]
    python bench/serve.py --url http://127.0.0.1:8000 [--url ...]   # running servers (784-input models),
                                                                     # their runs taken in turn
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import environment  # noqa: E402


def write_checkpoint(path):
    import lepton
    from lepton.train.recipes import build_model, make_config
    from lepton.train.trainer import CHECKPOINT_FORMAT

    config = make_config("mnist-mlp")
    lepton.save({"format": CHECKPOINT_FORMAT, "model": build_model(config).state_dict(), "config": config}, path)


def start_server(checkpoint, extra_args):
    proc = subprocess.Popen([sys.executable, "-m", "lepton.cli", "serve", checkpoint, "--port", "0", *extra_args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    port = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not port:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, ("127.0.0.1", int(port.group(1)))


def request_bytes(body, keep_alive):
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n" + ("" if keep_alive else "Connection: close\r\n") + "\r\n")
    return head.encode() + body


def read_response(sock, buf):
    """(status, server_closes, rest of buf) of one response read from sock (buf: bytes already read)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-response")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers.get("content-length", 0))
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-body")
        buf += chunk
    closes = headers.get("connection") == "close" or lines[0].startswith("HTTP/1.0")
    return status, closes, buf[length:]


def load(address, bodies, clients, seconds, keep_alive):
    """Each client loops for `seconds`; returns req/s, latency percentiles, errors, connections opened."""
    latencies = [[] for _ in range(clients)]
    errors, connections = [0] * clients, [0] * clients
    stop_at = time.perf_counter() + seconds

    def client(c):
        sock, buf, i = None, b"", c
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                if sock is None:
                    sock = socket.create_connection(address, timeout=30)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    connections[c] += 1
                sock.sendall(bodies[i % len(bodies)][keep_alive])
                status, closes, buf = read_response(sock, buf)
                errors[c] += status != 200
            except OSError:
                errors[c] += 1
                closes = True
            latencies[c].append(time.perf_counter() - t0)
            if (closes or not keep_alive) and sock is not None:
                sock.close()
                sock, buf = None, b""
            i += clients
        if sock is not None:
            sock.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    all_latencies = [x for per in latencies for x in per]
    q = statistics.quantiles(all_latencies, n=100)
    return {"requests": len(all_latencies), "rps": len(all_latencies) / wall, "p50_ms": q[49] * 1e3,
            "p99_ms": q[98] * 1e3, "errors": sum(errors), "connections": sum(connections)}


def run_all(targets, bodies, args):
    """Each cell (connection mode x clients) on each target {name: address}, the targets' runs taken
    in turn so that a burst of load from other jobs hits them alike."""
    print(f"## single-sample POST /predict on loopback; medians of {args.repeat} x {args.seconds:g} s")
    print(f"{'server':<24} {'connections':<11} {'clients':>7} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'opened':>7}")
    rows = []
    for keep_alive in (True, False):
        for clients in (int(c) for c in args.clients.split(",")):
            runs = {name: [] for name in targets}
            for address in targets.values():
                load(address, bodies, clients, 0.5, keep_alive)  # warm-up
            for _ in range(args.repeat):
                for name, address in targets.items():
                    runs[name].append(load(address, bodies, clients, args.seconds, keep_alive))
            for name, rs in runs.items():
                row = {"server": name, "keep_alive": keep_alive, "clients": clients, "runs": rs,
                       **{k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms")},
                       "errors": sum(r["errors"] for r in rs), "connections": sum(r["connections"] for r in rs)}
                rows.append(row)
                print(f"{name:<24} {'keep-alive' if keep_alive else 'close':<11} {clients:>7} {row['rps']:>7.0f} "
                      f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['errors']:>6} {row['connections']:>7}",
                      flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="1,8,64", help="comma-separated concurrency levels (default 1,8,64)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each timed run (default 3)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per cell; medians are reported (default 3)")
    p.add_argument("--quick", action="store_true", help="one 1.5 s run per cell")
    p.add_argument("--int8", action="store_true", help="serve the int8 model")
    p.add_argument("--threads", type=int, default=1, help="model threads in the server (default 1)")
    p.add_argument("--url", action="append", help="load this running server instead of starting one; repeat "
                                                   "to compare servers side by side")
    p.add_argument("--json", default=None, help="write results here")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.repeat = 1.5, 1
    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(64):
        body = json.dumps({"input": rng.random(784).round(3).tolist()}).encode()
        bodies.append({True: request_bytes(body, True), False: request_bytes(body, False)})
    if args.url:
        rows = run_all({url: (urlsplit(url).hostname, urlsplit(url).port or 80) for url in args.url}, bodies, args)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = os.path.join(tmp, "checkpoint.safetensors")
            write_checkpoint(checkpoint)
            proc, address = start_server(checkpoint, ["--threads", str(args.threads)] + ["--int8"] * args.int8)
            try:
                rows = run_all({f"mnist-mlp{' int8' if args.int8 else ''}": address}, bodies, args)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"environment": environment(), "load": os.getloadavg(), "rows": rows}, f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
