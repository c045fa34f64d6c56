"""A discarding HTTP sink on loopback: the fastest server we can put behind an upload benchmark.

A real server (the emulator) parses, hashes and writes every byte, which caps every client at the
same speed, so it cannot tell a fast client from a slow one. This sink does nothing but read each
request body into one reused buffer with ``socket.recv_into`` and throw it away, so its ceiling is
loopback TCP itself (several GB/s) and the client is what gets measured.

It speaks just enough HTTP/1.1 for the clients under test: ``Content-Length`` and ``chunked``
bodies, ``Expect: 100-continue`` (curl sends it for large bodies), keep-alive, one thread per
connection. Every answer is a small JSON object shaped like the API's ``RuntimeStagedFile``, so
:meth:`BctrlHook.upload_file` parses it like a real response. ``GET /_sink/stats`` returns the byte
and request counters (and the last body's size, which the benchmark checks against the file size).

Run it alone::

    python benchmarks/sink.py --port 0      # prints "SINK listening on http://127.0.0.1:PORT"
    python benchmarks/sink.py --port 0 --tls-cert cert.pem --tls-key key.pem   # https

or in-process with :class:`Sink` (a context manager).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import ssl
import sys
import threading
import time
from types import TracebackType
from typing import Any

__all__ = ["Sink", "main"]

#: Read size of the body loop: large reads keep the per-call Python overhead negligible.
RECV_BUFFER = 1024 * 1024
#: Request heads larger than this are refused (the clients under test send a few hundred bytes).
MAX_HEAD = 64 * 1024
READY_LINE = "SINK listening on {url}"


class _BadRequest(Exception):
    """The request cannot be parsed; the connection is answered 400 and closed."""


class _Connection:
    """One client connection: reads requests one after another until the client closes."""

    def __init__(self, sink: Sink, conn: socket.socket) -> None:
        self.sink = sink
        self.conn = conn
        self.buffer = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buffer)
        self.pending = b""  # bytes received beyond what has been consumed so far

    # -------------------------------------------------------------------------------- reading

    def _fill(self) -> bool:
        count = self.conn.recv_into(self.buffer)
        if not count:
            return False
        self.pending += self.view[:count]
        return True

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.pending:
            if len(self.pending) > MAX_HEAD:
                raise _BadRequest("line too long")
            if not self._fill():
                raise ConnectionError("closed")
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line

    def _read_head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.pending:
            if len(self.pending) > MAX_HEAD:
                raise _BadRequest("head too large")
            if not self._fill():
                return None  # the client closed between requests
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        return head

    def _discard(self, count: int) -> int:
        """Consume exactly ``count`` body bytes, from ``pending`` first, then straight off the socket."""
        done = min(count, len(self.pending))
        self.pending = self.pending[done:]
        recv_into = self.conn.recv_into
        view = self.view
        while done < count:
            got = recv_into(view[: min(RECV_BUFFER, count - done)])
            if not got:
                raise ConnectionError("the client closed in the middle of a body")
            done += got
        return done

    def _discard_chunked(self) -> int:
        total = 0
        while True:
            size_line = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return total
            total += self._discard(size)
            if self._read_line():
                raise _BadRequest("chunk not followed by CRLF")

    # ------------------------------------------------------------------------------- serving

    def serve(self) -> None:
        try:
            if self.sink.tls is not None:  # the handshake runs here, off the accepting thread
                self.conn = self.sink.tls.wrap_socket(self.conn, server_side=True)
            while self._serve_one():
                pass
        except (ConnectionError, OSError):
            pass
        except _BadRequest as exc:
            self._answer(400, {"error": str(exc)}, keep_alive=False)
        finally:
            self.conn.close()

    def _serve_one(self) -> bool:
        head = self._read_head()
        if head is None:
            return False
        started = time.perf_counter()
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise _BadRequest("bad request line") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            self.conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body_bytes = self._discard_chunked()
        else:
            body_bytes = self._discard(int(headers.get("content-length", "0") or 0))
        seconds = time.perf_counter() - started
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        if method == "GET" and target.startswith("/_sink/stats"):
            payload = self.sink.stats()
        else:
            self.sink.record(body_bytes, seconds)
            payload = {
                "id": "file_sink",
                "name": "sink.bin",
                "runtimeId": "rt_sink",
                "runtimePath": "sink/sink.bin",
                "sizeBytes": body_bytes,
                "expiresAt": None,
            }
        self._answer(200, payload, keep_alive=keep_alive)
        return keep_alive

    def _answer(self, status: int, payload: dict[str, Any], *, keep_alive: bool) -> None:
        body = json.dumps(payload).encode()
        reason = "OK" if status == 200 else "Bad Request"
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            self.conn.sendall(head.encode("latin-1") + body)


class Sink:
    """A discarding HTTP server on a loopback port; ``with Sink() as sink: sink.url``.

    :param host: the interface (loopback).
    :param port: the TCP port; 0 picks a free one.
    :param tls: ``(certificate, key)`` PEM files to serve https instead of http.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None) -> None:
        self._listener = socket.create_server((host, port), backlog=64)
        bound_host, bound_port = self._listener.getsockname()[:2]
        self.tls: ssl.SSLContext | None = None
        if tls is not None:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)
        self.url = f"{'https' if tls else 'http'}://{bound_host}:{bound_port}"
        self._lock = threading.Lock()
        self._counters = {"requests": 0, "bodyBytes": 0, "lastBodyBytes": 0, "lastSeconds": 0.0, "accepts": 0}
        self._stopping = False
        self._thread: threading.Thread | None = None

    def record(self, body_bytes: int, seconds: float) -> None:
        """Count one request body."""
        with self._lock:
            self._counters["requests"] += 1
            self._counters["bodyBytes"] += body_bytes
            self._counters["lastBodyBytes"] = body_bytes
            self._counters["lastSeconds"] = seconds

    def stats(self) -> dict[str, Any]:
        """The counters: requests, bodyBytes, lastBodyBytes, lastSeconds, accepts."""
        with self._lock:
            return dict(self._counters)

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop`; one daemon thread per connection."""
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                if self._stopping:
                    return
                raise
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._counters["accepts"] += 1
            threading.Thread(target=_Connection(self, conn).serve, name="sink-conn", daemon=True).start()

    def start(self) -> Sink:
        """Serve in a daemon thread; returns ``self``."""
        self._thread = threading.Thread(target=self.serve_forever, name="sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting (open connections end with their clients)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the sink until SIGTERM / SIGINT; print the ready line with the URL on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", help="serve https with this PEM certificate (and --tls-key)")
    parser.add_argument("--tls-key", help="the certificate's PEM private key")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    sink = Sink(args.host, args.port, (args.tls_cert, args.tls_key) if args.tls_cert else None)
    signal.signal(signal.SIGTERM, lambda *_: sink.stop())
    print(READY_LINE.format(url=sink.url), flush=True)
    try:
        sink.serve_forever()
    except KeyboardInterrupt:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
