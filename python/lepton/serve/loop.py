"""The server's connections: one thread multiplexes every socket with a selector, so a slow or idle
client costs a buffer, not a thread, and only whole requests reach the application.

What keeps one client from starving the others:
- each request must arrive whole, and each response be taken, within client_timeout seconds of the
  connection becoming ready for it: a deadline, not an idle timer, so a client trickling one byte
  at a time gains nothing (it gets 408, or is closed if it had sent nothing);
- at most max_connections are open; more get 503 at once;
- a connection's next (pipelined) request is read only once the previous response has been
  written, so responses go out in request order and a client that doesn't read them isn't read.

The application is an object with two methods:
  handle(request, reply): answer a Request by calling reply((code, body, content_type)) once, from
      this thread (cheap requests) or any other (model calls); it must not raise;
  reject(error) -> (code, body, content_type): the response to a request refused here (HTTPError).
"""

import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

from lepton.serve.protocol import CONTINUE, HTTPError, parse_head, response

__all__ = ["ConnectionLoop", "Request"]

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_WAKE = object()  # selector key data of the socket other threads write to, to wake the loop


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes


class _Conn:
    __slots__ = ("sock", "inbuf", "out", "head", "deadline", "events", "busy", "closing", "lingering", "closed",
                 "continued", "keep_alive", "head_only")

    def __init__(self, sock, deadline):
        self.sock, self.deadline, self.events = sock, deadline, _READ
        self.inbuf, self.out, self.head = bytearray(), bytearray(), None
        self.busy = self.closing = self.lingering = self.closed = self.continued = self.head_only = False
        self.keep_alive = True


class ConnectionLoop:
    """Serves the bound, listening socket `listener` with `app` until stop()."""

    def __init__(self, listener, app, client_timeout=10.0, max_connections=1000, max_head_bytes=16 << 10,
                 max_body_bytes=1 << 20):
        if client_timeout <= 0 or max_connections < 1:
            raise ValueError(f"client_timeout must be > 0 and max_connections >= 1, got {client_timeout}, "
                             f"{max_connections}")
        self._listener, self._app = listener, app
        self._timeout, self._max_connections = float(client_timeout), int(max_connections)
        self._max_head, self._max_body = int(max_head_bytes), int(max_body_bytes)
        self._tick = min(0.25, self._timeout / 4)  # how often deadlines are checked
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (listener, self._wake_r, self._wake_w):
            s.setblocking(False)
        self._sel.register(listener, _READ)
        self._sel.register(self._wake_r, _READ, _WAKE)
        self._accepting = True
        self._conns = set()
        self._ready = deque()  # (conn, response) from any thread, written out by the loop
        self._stop_by = None  # set by stop(): when run() returns even if requests are still in flight
        self._draining = False
        self._thread_id = None

    def stop(self, grace):
        """Makes run() stop accepting, finish the requests in flight (for at most grace seconds) and
        return. Safe from any thread and from a signal handler."""
        self._stop_by = time.monotonic() + grace
        self._wake()

    def run(self):
        self._thread_id = threading.get_ident()
        next_sweep = time.monotonic() + self._tick
        try:
            while True:
                if self._stop_by is not None:
                    if not self._draining:
                        self._drain()
                    if not any(c.busy or c.out for c in self._conns) or time.monotonic() > self._stop_by:
                        return
                for key, mask in self._sel.select(self._tick):
                    if key.data is None:
                        self._accept()
                    elif key.data is _WAKE:
                        self._clear_wake()
                    elif not key.data.closed:  # (closed earlier in this batch)
                        if mask & _WRITE:
                            self._flush(key.data)
                        if mask & _READ and not key.data.closed:
                            self._read(key.data)
                self._deliver()
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + self._tick
        finally:
            for conn in list(self._conns):
                self._close(conn)
            self._sel.close()
            for s in (self._listener, self._wake_r, self._wake_w):
                s.close()

    # ---- accepting and reading ----------------------------------------------------------------------

    def _accept(self):
        for _ in range(64):  # then serve the open connections before accepting more
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # the client gave up while waiting in the backlog
                continue
            except OSError:  # out of file descriptors, most likely: pause until the next sweep
                self._sel.unregister(self._listener)
                self._accepting = False
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a response is one write: send it now
            if len(self._conns) >= self._max_connections:
                code, body, ctype = self._app.reject(HTTPError(503, f"too many open connections (the limit is "
                                                                    f"{self._max_connections}); retry later",
                                                               "overloaded"))
                try:
                    sock.send(response(code, body, ctype, keep_alive=False))
                except OSError:
                    pass
                sock.close()
                continue
            conn = _Conn(sock, time.monotonic() + self._timeout)
            self._conns.add(conn)
            self._sel.register(sock, _READ, conn)

    def _read(self, conn):
        try:
            data = conn.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or reset) the connection
            self._close(conn)
        elif not conn.lingering:
            conn.inbuf += data
            self._advance(conn)

    def _advance(self, conn):
        """Hands conn's next request to the application once it has arrived whole and the one before
        it has been answered."""
        if conn.busy or conn.out or conn.closing or conn.closed or self._draining:
            return
        try:
            if conn.head is None:
                parsed = parse_head(conn.inbuf, self._max_head, self._max_body)
                if parsed is None:
                    return
                conn.head, used = parsed
                del conn.inbuf[:used]
        except HTTPError as e:
            self._send(conn, self._app.reject(e), close=True)
            return
        head = conn.head
        if len(conn.inbuf) < head.length:
            if head.expects_continue and not conn.continued:
                conn.continued = True
                self._write(conn, CONTINUE)
            return
        body = bytes(conn.inbuf[:head.length])
        del conn.inbuf[:head.length]
        conn.head, conn.continued, conn.busy = None, False, True
        conn.keep_alive, conn.head_only = head.keep_alive, head.method == "HEAD"
        self._set_events(conn)
        self._app.handle(Request(head.method, head.path, head.headers, body), lambda r: self._reply(conn, r))

    # ---- answering --------------------------------------------------------------------------------

    def _reply(self, conn, resp):
        self._ready.append((conn, resp))
        if threading.get_ident() != self._thread_id:
            self._wake()

    def _deliver(self):
        while self._ready:
            conn, resp = self._ready.popleft()
            conn.busy = False
            if not conn.closed:
                self._send(conn, resp, close=not conn.keep_alive or self._draining, head_only=conn.head_only)

    def _send(self, conn, resp, close, head_only=False):
        code, body, ctype = resp
        conn.closing = close
        conn.deadline = time.monotonic() + self._timeout  # for the client to take the response
        self._write(conn, response(code, body, ctype, keep_alive=not close, head_only=head_only))

    def _write(self, conn, data):
        conn.out += data
        self._flush(conn)

    def _flush(self, conn):
        try:
            del conn.out[:conn.sock.send(conn.out)]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close(conn)
            return
        if conn.out:
            self._set_events(conn)
        elif conn.closing:
            self._linger(conn)
        else:
            if conn.head is None:  # a whole response went out (not a 100 Continue): the next request may come
                conn.deadline = time.monotonic() + self._timeout
            self._set_events(conn)
            self._advance(conn)

    def _linger(self, conn):
        """Half-closes conn and reads until the client closes too. Closing at once while the client
        is still sending (say, a body refused with 413) would reset the connection and could destroy
        the response before the client reads it."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingering = True
        conn.inbuf.clear()
        self._set_events(conn)

    # ---- housekeeping -----------------------------------------------------------------------------

    def _set_events(self, conn):
        want = _WRITE if conn.out else _READ if conn.lingering or not conn.busy else 0
        if want == conn.events or conn.closed:
            return
        if not conn.events:
            self._sel.register(conn.sock, want, conn)
        elif not want:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, want, conn)
        conn.events = want

    def _sweep(self, now):
        if not self._accepting and not self._draining:
            self._sel.register(self._listener, _READ)
            self._accepting = True
        for conn in [c for c in self._conns if not c.busy and now > c.deadline]:
            if conn.lingering or conn.out or not (conn.inbuf or conn.head):  # done, not reading, or idle
                self._close(conn)
            else:
                self._send(conn, self._app.reject(HTTPError(
                    408, f"the request did not arrive whole within {self._timeout:g} s", "timeout")), close=True)

    def _drain(self):
        self._draining = True
        if self._accepting:
            self._sel.unregister(self._listener)
            self._accepting = False
        self._listener.close()  # new clients are refused now
        for conn in list(self._conns):
            if conn.out:
                conn.closing = True
            elif not conn.busy:  # a busy one's answer goes out with `Connection: close`
                self._close(conn)

    def _close(self, conn):
        if conn.closed:
            return
        conn.closed = True
        if conn.events:
            self._sel.unregister(conn.sock)
        conn.sock.close()
        self._conns.discard(conn)

    def _wake(self):
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the buffer is full (the loop will wake anyway) or the loop has ended
            pass

    def _clear_wake(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
