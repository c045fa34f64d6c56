"""The hook's HTTP transport: requests' adapter, with plain-http connections that can use sendfile(2).

A :class:`~airflow_provider_bctrl._multipart.StreamingMultipartBody` sent over one of these
connections hands its file part to the kernel with sendfile(2): the bytes go from the page
cache to the socket without ever entering the process (no buffer, no copy). That only works on a
plain TCP socket, so it applies to ``http://`` base URLs (the local emulator, a plain-http gateway
inside a cluster). Over ``https://`` TLS must encrypt every byte in the process, and the body streams
in large ``readinto`` chunks instead. Any other connection (a proxy pool, an adapter a user mounts)
iterates the body the ordinary way, so the body is correct on every path.
"""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from airflow_provider_bctrl._multipart import StreamingMultipartBody

__all__ = ["BctrlHTTPAdapter"]


class _SendfileHTTPConnection(HTTPConnection):
    """urllib3's plain-http connection, giving a streaming multipart body access to its socket."""

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> None:
        if isinstance(body, StreamingMultipartBody):
            body = body.chunks_through(self)
        super().request(method, url, body=body, headers=headers, **kwargs)


class _SendfileHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _SendfileHTTPConnection


class BctrlHTTPAdapter(HTTPAdapter):
    """requests' :class:`~requests.adapters.HTTPAdapter` whose plain-http pools use sendfile for uploads.

    Everything else (pooling, TLS, proxies, timeouts) is the stock adapter's.
    """

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Create the pool manager as requests does, with the sendfile-capable pool for ``http``."""
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "http": _SendfileHTTPConnectionPool,
        }
