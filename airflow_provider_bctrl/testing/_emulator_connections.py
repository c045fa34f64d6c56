"""The connections under the emulator's server, so a ``drop`` fault can reset one mid-request.

ASGI gives an application no handle on its socket: :func:`tracking_protocol` makes uvicorn record each
connection's transport in a :class:`ConnectionRegistry`, and the fault responses here
(:class:`DropConnection`, :class:`PartialThenDrop`) find it again through ``scope["client"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send


class ConnectionRegistry:
    """Transports of open connections by client address, so a fault can drop a connection.

    ASGI gives an application no handle on the socket; the emulator's server registers each transport
    here (see :func:`tracking_protocol`) and the app finds it again through ``scope["client"]``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transports: dict[tuple[str, int], asyncio.BaseTransport] = {}

    @staticmethod
    def _key(address: Any) -> tuple[str, int] | None:
        if isinstance(address, (tuple, list)) and len(address) >= 2:
            return str(address[0]), int(address[1])
        return None

    def register(self, transport: asyncio.BaseTransport) -> None:
        """Remember ``transport`` under its peer address."""
        key = self._key(transport.get_extra_info("peername"))
        if key is not None:
            with self._lock:
                self._transports[key] = transport

    def unregister(self, transport: asyncio.BaseTransport) -> None:
        """Forget ``transport`` (when its connection is gone)."""
        key = self._key(transport.get_extra_info("peername"))
        if key is not None:
            with self._lock:
                if self._transports.get(key) is transport:
                    del self._transports[key]

    def find(self, client: Any) -> asyncio.BaseTransport | None:
        """The transport of the connection from ``client`` (``scope["client"]``), if known."""
        key = self._key(client)
        if key is None:
            return None
        with self._lock:
            return self._transports.get(key)


def tracking_protocol(registry: ConnectionRegistry) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class that records every connection's transport in ``registry``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools is optional for uvicorn; h11 always exists
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class TrackingProtocol(Base):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            registry.register(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            registry.unregister(self.transport)
            super().connection_lost(exc)

    return TrackingProtocol


class DropConnection:
    """An ASGI 'response' that closes the connection with a TCP reset and sends nothing."""

    def __init__(self, connections: ConnectionRegistry | None) -> None:
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = self.connections.find(scope.get("client")) if self.connections else None
        if transport is None:
            # Under a server that is not the emulator's own there is no socket to reach: fail loudly.
            raise RuntimeError("Fault 'drop' needs the emulator's own server (BctrlEmulator or the CLI).")
        abort_transport(transport)
        # Let the server notice the disconnect before the app returns, so it does not try to answer.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_wait_disconnect(receive), timeout=1.0)


class PartialThenDrop:
    """Start a file download, send about half of it, then reset the connection (a cut-off download)."""

    def __init__(self, path: Path, headers: dict[str, str], connections: ConnectionRegistry | None) -> None:
        self.path = path
        self.headers = headers
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = self.path.stat().st_size
        headers = [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        headers += [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        remaining = size // 2
        with open(self.path, "rb") as source:
            while remaining > 0:  # bounded by half the file size
                chunk = source.read(min(remaining, 64 * 1024))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        # Give the transport a moment to flush what was sent before the reset.
        await asyncio.sleep(0.05)
        await DropConnection(self.connections)(scope, receive, send)


def abort_transport(transport: asyncio.BaseTransport) -> None:
    """Close ``transport`` at once with a TCP RST (SO_LINGER 0), so the peer sees a reset connection."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    abort = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    else:
        transport.close()


async def _wait_disconnect(receive: Receive) -> None:
    for _ in range(1000):  # each receive() after the body is read only returns on disconnect
        message = await receive()
        if message["type"] == "http.disconnect":
            return
