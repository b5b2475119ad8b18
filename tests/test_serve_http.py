"""lepton.serve's HTTP layer over raw sockets: keep-alive, pipelining, HTTP/1.0, framing errors,
size limits, slow clients that must not starve the others, and draining on SIGTERM."""

import http.client
import json
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import lepton
from lepton import nn
from lepton.serve import InferenceServer, Servable


def _model():
    lepton.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()


@pytest.fixture
def server():
    model = _model()
    srv = InferenceServer(Servable(model, (3, 4), name="tiny"), port=0, max_body_bytes=4096, max_wait_ms=20,
                          client_timeout=2.0)
    with srv:
        yield srv, model


def _connect(srv):
    return socket.create_connection((srv.host, srv.port), timeout=5)


def _post(x, extra=""):
    body = json.dumps({"inputs": np.asarray(x).tolist()}).encode()
    return f"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def _read(sock, buf=b""):
    """(status, headers, body, bytes left over) of the next response on sock."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a whole response head; got {buf!r}"
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(buf) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        buf += chunk
    return int(lines[0].split()[1]), headers, buf[:length], buf[length:]


def _closed(sock, timeout=5.0):
    """True once the server has closed sock (after any response bytes it sends first)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def _readable(socks):
    """The sockets of socks with something to read (a response, or the end) right now."""
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        return [key.fileobj for key, _ in sel.select(0)]


def _want(model, x):
    with lepton.no_grad():
        return model(lepton.from_numpy(np.asarray(x, np.float32))).numpy()


def test_pipelined_requests_are_answered_in_order(server):
    srv, model = server
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 3, 4)), rng.standard_normal((1, 3, 4))
    sock = _connect(srv)
    # the slow request (it waits max_wait_ms for a batch) first, the instant one after it
    sock.sendall(_post(x1) + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + _post(x2))
    status, headers, body, rest = _read(sock)
    assert status == 200 and headers["connection"] == "keep-alive"
    np.testing.assert_allclose(json.loads(body)["outputs"], _want(model, x1), rtol=1e-5, atol=1e-6)
    status, _, body, rest = _read(sock, rest)
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body, rest = _read(sock, rest)
    assert status == 200 and rest == b""
    np.testing.assert_allclose(json.loads(body)["outputs"], _want(model, x2), rtol=1e-5, atol=1e-6)
    sock.close()


def test_keep_alive_reuses_one_connection(server):
    srv, _ = server
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    conn.connect()
    first = conn.sock
    for i in range(5):
        conn.request("POST", "/predict", json.dumps({"input": [float(i)] * 12}))
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Connection") == "keep-alive"
        r.read()
        assert conn.sock is first  # http.client reconnects if the server closed the connection
    conn.close()
    sock = _connect(srv)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
    status, headers, _, rest = _read(sock)
    assert status == 200 and headers["connection"] == "close" and rest == b""
    assert _closed(sock)  # and the request after it is not answered


def test_http_1_0_closes_unless_asked_to_keep_alive(server):
    srv, _ = server
    sock = _connect(srv)
    sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, _, rest = _read(sock)
    assert status == 200 and headers["connection"] == "close" and rest == b"" and _closed(sock)
    sock = _connect(srv)
    for _ in range(2):
        sock.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _, rest = _read(sock)
        assert status == 200 and headers["connection"] == "keep-alive"
    sock.close()


def test_head_request_has_no_body_and_keeps_framing(server):
    srv, _ = server
    sock = _connect(srv)
    sock.sendall(b"HEAD /healthz HTTP/1.1\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: " in head and rest == b""
    sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
    status, _, body, rest = _read(sock)  # would read the HEAD answer's body, if one had been sent, as its head
    assert status == 200 and json.loads(body)["status"] == "ok" and rest == b""
    sock.close()


@pytest.mark.parametrize("request_bytes,code,message", [
    (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
    (b"GET /healthz HTTP/2.0\r\n\r\n", 505, "HTTP version HTTP/2.0 is not supported"),
    (b"GET /healthz HTTX/1.1\r\n\r\n", 400, "malformed HTTP version"),
    (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header line"),
    (b"GET /healthz HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "malformed header line"),
    (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, "Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400, "bad Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, "bad Content-Length"),
    ("POST /predict HTTP/1.1\r\nContent-Length: \u00b2\r\n\r\n".encode("latin-1"), 400, "bad Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 400, "bad Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n{", 413, "100000000 bytes exceeds the limit of 4096"),
    (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431, "request head exceeds 16384 bytes"),
])
def test_framing_errors_get_a_json_error_and_close(server, request_bytes, code, message):
    srv, _ = server
    sock = _connect(srv)
    sock.sendall(request_bytes)
    status, headers, body, _ = _read(sock)
    assert status == code and headers["connection"] == "close"
    assert re.search(message, json.loads(body)["error"]), body
    assert _closed(sock)


def test_parse_head_accepts_or_refuses_any_bytes():
    """Whatever a client sends, the parser returns a head, asks for more, or raises HTTPError (an
    exception of another kind would end the connection loop). Seeded random heads from pieces
    that matter, valid and not."""
    from lepton.serve.protocol import HTTPError, parse_head

    rng = random.Random(0)
    lines = [b"GET / HTTP/1.1", b"POST /predict?x=1 HTTP/1.0", b"POST http://h/predict HTTP/1.1", b"GET / HTTP/2.0",
             b"GET / HTTP/\xb9.1", b"G T / HTTP/1.1", b"", b" "]
    names = [b"Content-Length", b"Connection", b"Expect", b"Transfer-Encoding", b"X", b" X", b""]
    values = [b"0", b"7", b"1000", b"\xb2", b"9" * 30, b",", b" ", b"close", b"keep-alive", b"100-continue",
              b"\x00\xff"]
    outcomes = set()
    for _ in range(5000):
        head = rng.choice([b"", b"\r\n"]) + rng.choice(lines) + b"\r\n"
        for _ in range(rng.randint(0, 4)):
            head += rng.choice(names) + b": " + b"".join(rng.choices(values, k=rng.randint(0, 3))) + b"\r\n"
        head += rng.choice([b"\r\n", b"\n", b""]) + rng.randbytes(rng.randint(0, 8))
        try:
            outcomes.add("head" if parse_head(bytearray(head), 256, 100) else "more")
        except HTTPError as e:
            assert 400 <= e.code < 600 and e.message
            outcomes.add(e.code)
    assert outcomes >= {"head", "more", 400, 413, 501, 505}


def test_oversized_body_sent_anyway_still_gets_its_413(server):
    """The client writes its whole 2 MB body before reading: the server must take (and drop) it
    rather than reset the connection, or the 413 would be lost."""
    srv, _ = server
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("POST", "/predict", b"[" + b"0," * 1_000_000 + b"0]")
    r = conn.getresponse()
    assert r.status == 413 and "exceeds the limit of 4096" in json.loads(r.read())["error"]
    conn.close()


def test_expect_100_continue(server):
    srv, model = server
    sock = _connect(srv)
    body = json.dumps({"input": [1.0] * 12}).encode()
    sock.sendall(f"POST /predict HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(body)
    status, _, out, _ = _read(sock)
    assert status == 200
    np.testing.assert_allclose(json.loads(out)["outputs"], _want(model, np.ones((1, 12))), rtol=1e-5, atol=1e-6)
    sock.close()


def test_slow_clients_do_not_starve_others():
    """300 connections that never finish their request (270 stalled mid-body, 30 sending their head a
    byte at a time) plus idle ones: /healthz and /predict still answer at once, without a thread per
    connection, and the stalled ones are cut off by the deadline however they trickle."""
    timeout = 2.0
    srv = InferenceServer(Servable(_model(), (3, 4), name="tiny"), port=0, client_timeout=timeout).start()
    slow = []
    try:
        threads_before = threading.active_count()
        opened = time.monotonic()
        for i in range(300):
            sock = _connect(srv)
            if i % 10:
                sock.sendall(b"POST /predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"inputs\":")
            else:
                sock.sendall(b"G")
            slow.append((sock, i % 10 == 0))
        idle = [_connect(srv) for _ in range(5)]
        for _ in range(10):
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=timeout)
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["status"] == "ok"
            conn.request("POST", "/predict", json.dumps({"input": [0.5] * 12}))
            r = conn.getresponse()
            assert r.status == 200 and len(json.loads(r.read())["outputs"]) == 1
            conn.close()
        assert threading.active_count() - threads_before < 10  # a worker or two, not one per connection
        assert not _readable([s for s, _ in slow])  # all still held open by the server, unanswered
        # the trickling ones keep sending; the deadline counts from when they connected all the same
        trickle = b"ET /healthz HTTP/1.1\r\nX: " + b"a" * 100
        for k in range(int(timeout / 0.1) + 5):
            if time.monotonic() - opened > timeout + 0.5:
                break
            for sock, trickling in slow:
                if trickling:
                    sock.sendall(trickle[k:k + 1])
            time.sleep(0.1)
        for sock, _ in slow:
            status, _, body, _ = _read(sock)
            assert status == 408 and "did not arrive whole within 2 s" in json.loads(body)["error"]
        for sock in idle:  # idle keep-alive connections are closed without a word
            sock.settimeout(5)
            assert sock.recv(100) == b""
    finally:
        for sock, _ in slow:
            sock.close()
        srv.close()


def test_connection_limit():
    with InferenceServer(Servable(_model(), (3, 4)), port=0, max_connections=3) as srv:
        held = [_connect(srv) for _ in range(3)]
        for sock in held:  # each is accepted and served
            sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert _read(sock)[0] == 200
        extra = _connect(srv)
        status, _, body, _ = _read(extra)
        assert status == 503 and "too many open connections (the limit is 3)" in json.loads(body)["error"]
        held[0].close()
        time.sleep(0.1)
        again = _connect(srv)
        again.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert _read(again)[0] == 200
        for sock in held[1:] + [extra, again]:
            sock.close()


def test_stop_answers_the_request_in_flight_then_refuses():
    with InferenceServer(Servable(_model(), (3, 4)), port=0, max_wait_ms=500) as srv:
        busy, idle = _connect(srv), _connect(srv)
        busy.sendall(_post(np.ones((1, 12))))  # waits 500 ms for a batch
        time.sleep(0.2)
        srv.stop()
        assert _closed(idle, timeout=1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((srv.host, srv.port), timeout=1)
        assert not _readable([busy])  # still in flight
        status, headers, body, _ = _read(busy)
        assert status == 200 and headers["connection"] == "close" and len(json.loads(body)["outputs"]) == 1
        assert _closed(busy)


def test_sigterm_drains_the_request_in_flight_and_exits_0(tmp_path):
    """`lepton serve` in its own process: SIGTERM while a request waits (--max-wait-ms 1500) for its
    batch; the answer arrives whole, new connections are refused, and the process exits 0."""
    trainer = pytest.importorskip("lepton.train.trainer")
    recipes = pytest.importorskip("lepton.train.recipes")
    config = recipes.make_config("mnist-mlp")
    path = tmp_path / "checkpoint.safetensors"
    lepton.save({"format": trainer.CHECKPOINT_FORMAT, "model": recipes.build_model(config).state_dict(),
                 "config": config}, str(path))
    proc = subprocess.Popen([sys.executable, "-m", "lepton.cli", "serve", str(path), "--port", "0",
                             "--max-wait-ms", "1500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(url.group(1))
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = json.dumps({"input": [0.5] * 784}).encode()
        sock.sendall(f"POST /predict HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.3)
        assert not _readable([sock])  # still in flight
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while True:  # the listening socket closes at once
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.02)
        assert not _readable([sock])  # and the request still in flight
        status, headers, out, _ = _read(sock)
        assert status == 200 and headers["connection"] == "close"
        assert len(json.loads(out)["outputs"][0]["probabilities"]) == 10
        assert proc.wait(timeout=10) == 0
        assert "SIGTERM: finishing the requests in flight" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
