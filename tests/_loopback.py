"""Raw TCP and HTTP servers on loopback for the tests that need a server misbehaving, or recording.

One accept loop, used by every such test: it listens on 127.0.0.1 at a free port (or a given one),
hands each accepted connection to ``handle`` in its own thread, counts them, and stops on ``close()``
or after ``max_seconds`` at the latest.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class LoopbackServer:
    """Accepts connections on 127.0.0.1 and gives each to ``handle(connection)`` in a thread of its own."""

    def __init__(
        self, handle: Callable[[socket.socket], None], *, port: int = 0, max_seconds: float = 120.0
    ) -> None:
        self._handle = handle
        self._server = socket.create_server(("127.0.0.1", port))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self.accepted = 0
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._thread = threading.Thread(target=self._accept, name="loopback-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            with self._lock:
                self.accepted += 1
                self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self._handle(conn)

    def track(self, sock: socket.socket) -> None:
        """Close ``sock`` too when the server closes (an upstream connection a handler opened)."""
        with self._lock:
            self._connections.append(sock)

    def close(self) -> None:
        """Stop accepting and close every connection still open."""
        self._stop.set()
        self._server.close()
        self._thread.join(5)
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.close()


def pipe(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes from ``source`` to ``target`` until ``source`` ends, then end ``target``'s sending side."""
    try:
        while chunk := source.recv(256 * 1024):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def read_head(conn: socket.socket) -> bytes:
    """Read off ``conn`` until a whole HTTP head has arrived: every byte read (the head and whatever came
    with it, as a proxy forwards it), or ``b""`` when the peer closed first. Bounded by a 10 s socket timeout.
    """
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


def read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request's head and body (by Content-Length) off ``conn``; its request line.

    ``b""`` when the peer closed before a whole head arrived. Bounded by a 10 s socket timeout.
    """
    data = read_head(conn)
    if not data:
        return b""
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        body += chunk
    return head.split(b"\r\n")[0]


def relay_to(upstream: tuple[str, int], server: Callable[[], LoopbackServer | None], timeout: float = 30.0):
    """A handler that forwards each connection to ``upstream`` (both directions)."""

    def handle(client: socket.socket) -> None:
        remote = socket.create_connection(upstream, timeout=timeout)
        client.settimeout(timeout)
        owner = server()
        if owner is not None:
            owner.track(remote)
        back = threading.Thread(target=pipe, args=(remote, client), daemon=True)
        back.start()
        pipe(client, remote)
        back.join(timeout)

    return handle


class HttpRecorder:
    """A raw HTTP/1.1 server on loopback that records requests and answers with ``respond(request)``."""

    def __init__(self, respond: Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes]]) -> None:
        self.respond = respond
        self.requests: list[dict[str, Any]] = []
        self._server = LoopbackServer(self._serve)
        self.url = f"http://127.0.0.1:{self._server.port}"

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        reader = conn.makefile("rb")
        try:
            for _ in range(1000):  # requests on one keep-alive connection
                line = reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
                headers: dict[str, str] = {}
                while (raw := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, value = raw.decode("latin-1").split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", "0")))
                request = {"method": method, "target": target, "headers": headers, "body": body}
                self.requests.append(request)
                status, answer_headers, answer = self.respond(request)
                head = f"HTTP/1.1 {status} X\r\n"
                if answer_headers.get("Transfer-Encoding") == "chunked":  # the answer in 64 KiB chunks
                    pieces = [answer[i : i + 65536] for i in range(0, len(answer), 65536)] + [b""]
                    answer = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
                else:
                    head += f"Content-Length: {len(answer)}\r\n"
                head += "".join(f"{name}: {value}\r\n" for name, value in answer_headers.items())
                conn.sendall(head.encode() + b"\r\n" + answer)
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._server.close()
