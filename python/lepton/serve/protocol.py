"""HTTP/1.x framing for the connection loop: parse a request head from the bytes received so far,
format a response. No sockets here.

Only what a JSON API needs: bodies framed by Content-Length (chunked request bodies get 501),
persistent connections by the HTTP/1.1 and HTTP/1.0 rules, `Expect: 100-continue`. A head over
max_head_bytes gets 431, a body over max_body_bytes 413; both are refused before the body is read.
"""

import re
import time
from dataclasses import dataclass
from http import HTTPStatus

__all__ = ["HTTPError", "Head", "parse_head", "response", "CONTINUE"]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE = re.compile(r"\r?\n")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_DIGITS = re.compile(r"[0-9]{1,18}")  # (str.isdigit would take "²", and int() refuses 4300+ digits)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HTTPError(Exception):
    """A request refused with status `code`; kind labels it in /metrics."""

    def __init__(self, code, message, kind):
        super().__init__(message)
        self.code, self.message, self.kind = code, message, kind


@dataclass
class Head:
    method: str
    path: str  # the target without its query string
    headers: dict  # lower-case name -> value (repeated headers joined with ", ")
    length: int  # body bytes that follow the head
    keep_alive: bool
    expects_continue: bool


def _bad(message, code=400):
    return HTTPError(code, message, "bad_request")


def parse_head(buf, max_head_bytes, max_body_bytes):
    """(Head, bytes of buf it took) once buf holds a whole request head, or None while it doesn't."""
    start = len(buf) - len(buf.lstrip(b"\r\n"))  # blank lines before a request are ignored (RFC 9112 2.2)
    end = _HEAD_END.search(buf, start)
    if (end.start() if end else len(buf)) > max_head_bytes:
        raise HTTPError(431, f"request head exceeds {max_head_bytes} bytes", "too_large")
    if end is None:
        return None
    lines = _LINE.split(buf[start:end.start()].decode("latin-1"))
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise _bad(f"malformed request line {lines[0][:80]!r} (want METHOD /path HTTP/1.1)")
    method, target, version = parts
    v = _VERSION.fullmatch(version)
    if not v:
        raise _bad(f"malformed HTTP version {version[:20]!r}")
    if v.group(1) != "1":
        raise _bad(f"HTTP version {version} is not supported; use HTTP/1.1", 505)
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):  # also refuses obsolete line folding
            raise _bad(f"malformed header line {line[:80]!r}")
        name, value = name.lower(), value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "transfer-encoding" in headers:
        raise _bad("Transfer-Encoding (chunked bodies) is not supported; send a Content-Length", 501)
    lengths = {s.strip() for s in headers.get("content-length", "0").split(",")}
    if len(lengths) != 1 or not _DIGITS.fullmatch(next(iter(lengths))):
        raise _bad(f"bad Content-Length {headers['content-length'][:40]!r}")
    length = int(lengths.pop())
    if length > max_body_bytes:
        raise HTTPError(413, f"body of {length} bytes exceeds the limit of {max_body_bytes}", "too_large")
    if "://" in target:  # absolute form, e.g. from a proxy: keep the path
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens if v.group(2) != "0" else "keep-alive" in tokens
    return Head(method, target.split("?", 1)[0], headers, length, keep_alive,
                headers.get("expect", "").lower() == "100-continue" and v.group(2) != "0"), end.end()


def response(code, body, content_type, keep_alive, head_only=False):
    """The bytes of a whole response; head_only for HEAD requests (the body's length, not the body)."""
    head = (f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nServer: lepton-serve\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode("latin-1") + (b"" if head_only else body)
