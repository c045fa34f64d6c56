"""The emulator's HTTP application: the BCTRL ``/v1`` API and the ``/_emulator`` control API.

A plain ASGI application built on Starlette's request and response classes. Routing is a small table
matched on the raw (still percent-encoded) path, so ids containing ``%2F`` stay one segment. Every ``/v1``
request goes through the same pipeline::

    route -> auth -> read input (JSON, or streamed multipart) -> fault "request" -> handler
          -> fault "processing" -> response (+ request log entry)

Failures are raised as :class:`ApiError` and answered with the contract's error envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import json
import logging
import os
import socket
import struct
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.types import Message, Receive, Scope, Send

from airflow_provider_bctrl.testing._emulator_errors import ApiError, fault_error, invalid, unauthorized
from airflow_provider_bctrl.testing._emulator_faults import Fault, FaultQueue, RequestLog, parse_fault_request
from airflow_provider_bctrl.testing._emulator_json import parse_client_json
from airflow_provider_bctrl.testing._emulator_multipart import FormReader
from airflow_provider_bctrl.testing._emulator_runtimes import RuntimeLifecycle
from airflow_provider_bctrl.testing._emulator_store import (
    EmulatorStore,
    FileRecord,
    UploadedBytes,
    decode_cursor,
    encode_cursor,
)

log = logging.getLogger("airflow_provider_bctrl.testing.emulator")

#: Environment variable holding the API key when none is passed explicitly.
API_KEY_ENV = "BCTRL_EMULATOR_API_KEY"
#: Environment variable naming the data directory when none is passed explicitly.
DATA_DIR_ENV = "BCTRL_EMULATOR_DATA_DIR"
#: The key used when neither an argument nor the environment gives one.
DEFAULT_API_KEY = "bctrl_emulator_key"  # a well-known key for a local test server, not a secret
#: Largest JSON body accepted.
MAX_JSON_BYTES = 1024 * 1024
#: Page size of list endpoints: default and maximum.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

#: Fixed identity answered by whoami (plausible values; nothing here is secret).
ORGANIZATION_ID = "7d4f7a52-3c1e-4f0a-9a51-6b0e2f3c9d10"
ACCOUNT_EMAIL = "developer@example.com"
PLAN = "developer"

_WRITE_BUFFER = 1024 * 1024


def new_request_id() -> str:
    """A fresh request id, ``req_<32 hex>``."""
    return f"req_{uuid.uuid4().hex}"


def key_id_for(api_key: str) -> str:
    """A stable key id derived from the key by a one-way hash, so it never reveals the key."""
    digest = hmac.new(b"bctrl-emulator-key-id", api_key.encode(), "sha256").hexdigest()
    return f"key_{digest[:16]}"


# ------------------------------------------------------------------------------ dropping connections


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


# ------------------------------------------------------------------------------------------ helpers


class Download(FileResponse):
    """A file response that reads 1 MiB at a time (Starlette's 64 KiB costs a thread hop per chunk)."""

    chunk_size = 1024 * 1024


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response."""
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(error: ApiError, request_id: str) -> Response:
    """The contract's error envelope for ``error``."""
    return Response(
        error.body(request_id), status_code=error.status, media_type="application/json", headers=error.headers
    )


async def drain(request: Request) -> None:
    """Read and discard the rest of the request body (so the client sees our answer, not a broken pipe)."""
    if request.headers.get("expect", "").lower() == "100-continue":
        return  # the client waits for "100 Continue" before sending; answering now spares the body
    with contextlib.suppress(ClientDisconnect, RuntimeError):
        async for _ in request.stream():  # ends with the body
            pass


async def read_json(request: Request) -> Any:
    """The request's JSON body (at most :data:`MAX_JSON_BYTES`); 400 ``request.invalid`` otherwise."""
    body = bytearray()
    too_big = False
    async for chunk in request.stream():  # ends with the body
        if too_big or len(body) + len(chunk) > MAX_JSON_BYTES:
            too_big = True
            continue
        body += chunk
    if too_big:
        raise invalid(f"The JSON body is larger than {MAX_JSON_BYTES} bytes.")
    return parse_client_json(bytes(body))


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"'{key}' must be a string.", field=key)
    return value


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.")
    return body


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------- routing

Handler = Callable[["Call"], Awaitable[Response]]


@dataclass
class Call:
    """One request on its way through the pipeline."""

    request: Request
    request_id: str
    params: list[str]
    route: str = ""
    entry: dict[str, Any] | None = None  # the request-log entry (/v1 only)
    data: Any = None  # parsed input: JSON body, or an UploadedBytes
    subaccount_id: str | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class Route:
    """A method and a path template; ``{}`` matches one segment, passed to the handler in order."""

    method: str
    template: tuple[str, ...]
    name: str
    handler: Handler

    def match(self, segments: list[str]) -> list[str] | None:
        """The path parameters when ``segments`` fit the template."""
        if len(segments) != len(self.template):
            return None
        params = []
        for part, expected in zip(segments, self.template, strict=True):
            if expected == "{}":
                if not part:
                    return None
                params.append(part)
            elif part != expected:
                return None
        return params


def _template(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/"))


# -------------------------------------------------------------------------------------------- app


class EmulatorApp:
    """The emulator as an ASGI application (see :func:`create_app`)."""

    def __init__(
        self,
        store: EmulatorStore,
        api_key: str,
        *,
        connections: ConnectionRegistry | None = None,
        faults: FaultQueue | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("The emulator needs a non-empty API key.")
        self.store = store
        self.connections = connections
        self.faults = faults or FaultQueue()
        self.request_log = request_log or RequestLog()
        self._api_key = api_key.encode()
        self._key_id = key_id_for(api_key)
        self._lifecycle = RuntimeLifecycle(store, api_key)
        self._v1_routes = [
            Route("POST", _template("v1/runtimes/{}/files/upload"), "upload", self._upload),
            Route("POST", _template("v1/spaces/{}/runtimes/{}/files/collect"), "collect", self._collect),
            Route("POST", _template("v1/runtimes/{}/files/stage"), "stage", self._stage),
            Route("GET", _template("v1/auth/whoami"), "whoami", self._whoami),
            Route("GET", _template("v1/files/{}"), "file", self._file),
            Route("GET", _template("v1/files/{}/content"), "content", self._content),
            Route("GET", _template("v1/runtimes/{}/files"), "list", self._list),
            # Runtime lifecycle (BCTRL's public docs, outside the seed contract): see _emulator_runtimes.
            Route("POST", _template("v1/runtimes/{}/start"), "start", self._lifecycle.start),
            Route("POST", _template("v1/runtimes/{}/stop"), "stop", self._lifecycle.stop),
            Route("GET", _template("v1/runtimes/{}"), "runtime", self._lifecycle.get),
        ]
        self._control_routes = [
            Route("GET", _template("_emulator/health"), "health", self._health),
            Route("GET", _template("_emulator/info"), "info", self._info),
            Route("POST", _template("_emulator/runtimes"), "runtimes.create", self._create_runtime),
            Route("GET", _template("_emulator/runtimes"), "runtimes.list", self._list_runtimes),
            Route("PUT", _template("_emulator/runtimes/{}/fs"), "fs.write", self._fs_write),
            Route("GET", _template("_emulator/runtimes/{}/fs"), "fs.read", self._fs_read),
            Route("POST", _template("_emulator/runtimes/{}/fs/later"), "fs.later", self._lifecycle.fs_later),
            Route("GET", _template("_emulator/files"), "files", self._stored_files),
            Route("GET", _template("_emulator/artifacts"), "artifacts", self._artifacts),
            Route("GET", _template("_emulator/faults"), "faults.list", self._faults_list),
            Route("POST", _template("_emulator/faults"), "faults.add", self._faults_add),
            Route("DELETE", _template("_emulator/faults"), "faults.clear", self._faults_clear),
            Route("GET", _template("_emulator/requests"), "requests.list", self._requests_list),
            Route("DELETE", _template("_emulator/requests"), "requests.clear", self._requests_clear),
        ]

    # ------------------------------------------------------------------------------ ASGI entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here; the server closes them
        request_id = new_request_id()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        request = Request(scope, receive)
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        segments = [unquote(part) for part in raw_path.strip("/").split("/")]
        call = Call(request=request, request_id=request_id, params=[])
        try:
            if segments[0] == "v1":
                response = await self._serve_v1(call, raw_path, segments)
            else:
                response = await self._serve_control(call, segments)
        except ClientDisconnect:
            log.debug("Client went away during %s %s", scope["method"], raw_path)
            return
        except Exception:  # a bug in the emulator: still answer in the contract's envelope, never plain text
            log.exception("Unexpected error in the emulator during %s %s", scope["method"], raw_path)
            response = error_response(
                ApiError(500, "server.error", "The emulator hit an unexpected error.", "server"), request_id
            )
        finally:
            for cleanup in call.cleanup:
                cleanup()
        await response(scope, receive, send_with_id)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        for _ in range(100):  # startup, then shutdown; bounded against a misbehaving server
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _route(self, routes: list[Route], method: str, segments: list[str]) -> tuple[Route, list[str]]:
        allowed = []
        for route in routes:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method:
                return route, params
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                "route.method_not_allowed",
                f"{method} is not allowed here; use {', '.join(sorted(set(allowed)))}.",
                "invalid_input",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, "route.not_found", "No such route.", "not_found", {"method": method})

    # ------------------------------------------------------------------------------------ /v1

    def _log_entry(self, call: Call, raw_path: str) -> dict[str, Any]:
        headers = call.request.headers
        subaccount = headers.get("bctrl-subaccount-id")
        call.subaccount_id = subaccount or None
        return {
            "method": call.request.method,
            "path": raw_path,
            "query": call.request.scope.get("query_string", b"").decode("latin-1"),
            "route": None,
            "status": None,
            "requestId": call.request_id,
            "subaccountId": call.subaccount_id,
            "userAgent": headers.get("user-agent"),
            "contentType": headers.get("content-type"),
            "contentLength": _int_header(headers.get("content-length")),
            "transferEncoding": headers.get("transfer-encoding"),
            "formParts": None,
            "formFields": None,
            "fileName": None,
            "fileContentType": None,
            "json": None,
            "fault": None,
        }

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        # compare_digest takes time independent of where the bytes differ, so the key cannot be guessed
        # byte by byte from response times. Header values arrive as latin-1 text; encode them back.
        given = token.strip().encode("latin-1", "replace")
        matches = hmac.compare_digest(given, self._api_key)
        return scheme.lower() == "bearer" and matches

    async def _serve_v1(self, call: Call, raw_path: str, segments: list[str]) -> Any:
        entry = call.entry = self._log_entry(call, raw_path)
        response: Any = None
        try:
            response = await self._v1_pipeline(call, segments)
            return response
        finally:
            entry["status"] = getattr(response, "status_code", None)
            self.request_log.append(entry)
            log.debug("%s %s -> %s", call.request.method, entry["route"] or raw_path, entry["status"])

    async def _v1_pipeline(self, call: Call, segments: list[str]) -> Any:
        request = call.request
        assert call.entry is not None
        try:
            route, call.params = self._route(self._v1_routes, request.method, segments)
            call.route = call.entry["route"] = route.name
            if not self._authorized(request):
                await drain(request)
                raise unauthorized()
            await self._read_input(call)
        except (ApiError, OSError) as error:
            await drain(request)
            return error_response(self._api_error(error), call.request_id)

        fault = self.faults.take(route.name)
        if fault is not None:
            call.entry["fault"] = fault.to_json()
            if fault.after == "request":
                outcome = await self._apply_fault(call, fault, None)
                if outcome is not None:
                    return outcome
        try:
            response: Any = await route.handler(call)
        except (ApiError, OSError) as error:
            response = error_response(self._api_error(error), call.request_id)
        if fault is not None and fault.after == "processing":
            outcome = await self._apply_fault(call, fault, response)
            if outcome is not None:
                return outcome
        return response

    @staticmethod
    def _api_error(error: ApiError | OSError) -> ApiError:
        """The error to answer: an :class:`ApiError` as it is, a storage error mapped by its errno."""
        if isinstance(error, ApiError):
            return error
        if error.errno == errno.ENAMETOOLONG:
            # The lexical checks bound each segment and the whole path; this is the backstop for a path
            # that only becomes too long once joined under the emulator's data directory.
            return invalid(
                "A path in the request is too long for the emulator's file system; use shorter names.",
                code="request.path_too_long",
            )
        log.exception("Storage error in the emulator", exc_info=error)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return ApiError(
                503, "storage.unavailable", "The emulator's disk is full.", "upstream", hint="retry later"
            )
        return ApiError(500, "server.error", "The emulator hit a storage error.", "server")

    async def _apply_fault(self, call: Call, fault: Fault, response: Any) -> Any:
        """Act out ``fault``: wait, then answer an error, drop, or (None) let the request go on."""
        if fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        if fault.drop:
            if response is not None and call.route == "content" and isinstance(response, FileResponse):
                disposition = response.headers.get("content-disposition", "")
                return PartialThenDrop(
                    Path(response.path), {"Content-Disposition": disposition}, self.connections
                )
            return DropConnection(self.connections)
        if fault.status is not None:
            return error_response(fault_error(fault.status, call.route, fault.retry_after), call.request_id)
        return None

    async def _read_input(self, call: Call) -> None:
        request = call.request
        assert call.entry is not None
        if call.route == "upload":
            # 404 or 409 (stopped) before writing a possibly huge body to disk.
            self.store.require_active(self.store.get_runtime(call.params[0]))
            reader = FormReader(self.store.scratch_dir())
            try:
                upload = await reader.read(request.stream(), request.headers.get("content-type"))
            finally:
                call.entry["formParts"] = reader.part_names
                call.entry["formFields"] = dict(reader.fields)
                call.entry["fileName"] = reader.file_name
                call.entry["fileContentType"] = reader.file_content_type
            call.data = upload
            call.cleanup.append(lambda: upload.tmp_path.unlink(missing_ok=True))
        elif request.method == "POST" and call.route in ("start", "stop"):
            await drain(request)  # no body is defined; whatever is sent is ignored
        elif request.method == "POST":
            call.data = await read_json(request)
            call.entry["json"] = call.data
        else:
            await drain(request)

    # --------------------------------------------------------------------------- /v1 handlers

    async def _upload(self, call: Call) -> Response:
        upload: UploadedBytes = call.data
        fields: dict[str, str] = (call.entry or {}).get("formFields") or {}
        staged = await run_in_threadpool(
            self.store.commit_upload,
            call.params[0],
            upload,
            name=fields.get("name"),
            runtime_path=fields.get("runtimePath"),
            destination_path=fields.get("destinationPath"),
            metadata=fields.get("metadata"),
        )
        return json_response(staged.to_api())

    async def _collect(self, call: Call) -> Response:
        body = _require_object(call.data)
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise invalid("'path' is required and must be a non-empty string.", field="path")
        storage_path = _optional_str(body, "storagePath")
        name = _optional_str(body, "name")
        artifact = body.get("artifact")
        if artifact is not None:
            if not isinstance(artifact, dict):
                raise invalid("'artifact' must be an object.", field="artifact")
            for key in ("kind", "name"):
                if artifact.get(key) is not None and not isinstance(artifact[key], str):
                    raise invalid(f"'artifact.{key}' must be a string.", field=f"artifact.{key}")
            if artifact.get("metadata") is not None and not isinstance(artifact["metadata"], dict):
                raise invalid("'artifact.metadata' must be an object.", field="artifact.metadata")
        space_id, runtime_id = call.params
        record, recorded = await run_in_threadpool(
            self.store.collect,
            space_id,
            runtime_id,
            path,
            storage_path=storage_path,
            name=name,
            artifact=artifact,
        )
        file_json = {
            "id": record.id,
            "name": record.name,
            "path": record.path,
            "contentType": record.content_type,
            "sizeBytes": record.size_bytes,
            "createdAt": record.created_at,
        }
        return json_response({"file": file_json, "artifact": recorded.to_api() if recorded else None})

    async def _stage(self, call: Call) -> Response:
        body = _require_object(call.data)
        file_id = body.get("fileId")
        if not isinstance(file_id, str) or not file_id:
            raise invalid("'fileId' is required and must be a non-empty string.", field="fileId")
        runtime_path = _optional_str(body, "runtimePath")
        name = _optional_str(body, "name")
        staged = await run_in_threadpool(self.store.stage, call.params[0], file_id, runtime_path, name)
        return json_response(staged.to_api())

    async def _whoami(self, call: Call) -> Response:
        return json_response(
            {
                "defaultSpaceId": self.store.default_space_id,
                "email": ACCOUNT_EMAIL,
                "keyId": self._key_id,
                "organizationId": ORGANIZATION_ID,
                "plan": PLAN,
                "scope": "subaccount" if call.subaccount_id else "organization",
                "subaccountId": call.subaccount_id,
            }
        )

    def _file_json(self, record: FileRecord, request: Request) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        data: dict[str, Any] = {
            "id": record.id,
            "name": record.name,
            "path": record.path,
            "contentType": record.content_type,
            "sizeBytes": record.size_bytes,
            "createdAt": record.created_at,
            "downloadUrl": f"{base}/v1/files/{quote(record.id, safe='')}/content",
            "source": record.source,
            "spaceId": record.space_id,
            "runId": record.run_id,
            "runtimeId": record.runtime_id,
            # Durable files do not expire in the emulator (the contract allows null).
            "expiresAt": None,
        }
        if record.metadata is not None:
            data["metadata"] = record.metadata
        return data

    async def _file(self, call: Call) -> Response:
        return json_response(self._file_json(self.store.get_file(call.params[0]), call.request))

    async def _content(self, call: Call) -> Response:
        record = self.store.get_file(call.params[0])
        blob = self.store.blob_path(record)
        if not blob.is_file():
            raise ApiError(404, "file.not_found", "The file's bytes are gone from the store.", "not_found")
        disposition = f"attachment; filename*=UTF-8''{quote(record.name, safe='')}"
        return FileResponse(
            blob, media_type="application/octet-stream", headers={"Content-Disposition": disposition}
        )

    async def _list(self, call: Call) -> Response:
        query = call.request.query_params
        limit_text = query.get("limit")
        limit = DEFAULT_PAGE_SIZE
        if limit_text is not None:
            # ASCII digits only, and few of them: '²' passes isdigit() and int() refuses 5,000 digits.
            digits = limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 9
            if not digits or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
                raise invalid(f"'limit' must be an integer from 1 to {MAX_PAGE_SIZE}.", field="limit")
            limit = int(limit_text)
        cursor = query.get("cursor")
        offset = decode_cursor(cursor) if cursor else 0
        files = self.store.runtime_files(call.params[0])
        wanted = query.get("type")
        if wanted:
            # The emulator reads `type` as a content-type filter: "image/png" exactly, or "image" for all.
            files = [f for f in files if f.content_type == wanted or f.content_type.split("/")[0] == wanted]
        page = files[offset : offset + limit]
        next_cursor = encode_cursor(offset + limit) if offset + limit < len(files) else None
        return json_response(
            {"data": [self._file_json(f, call.request) for f in page], "nextCursor": next_cursor}
        )

    # ------------------------------------------------------------------------------- control API

    async def _serve_control(self, call: Call, segments: list[str]) -> Any:
        try:
            if segments[0] != "_emulator":
                raise ApiError(404, "route.not_found", "No such route.", "not_found")
            route, call.params = self._route(self._control_routes, call.request.method, segments)
            call.route = route.name
            return await route.handler(call)
        except (ApiError, OSError) as error:
            await drain(call.request)
            return error_response(self._api_error(error), call.request_id)

    async def _health(self, call: Call) -> Response:
        return json_response({"status": "ok"})

    async def _info(self, call: Call) -> Response:
        return json_response(
            {"defaultSpaceId": self.store.default_space_id, "dataDir": str(self.store.data_dir)}
        )

    async def _control_json(self, call: Call) -> dict[str, Any]:
        body = await read_json(call.request) if await self._has_body(call.request) else {}
        return _require_object(body)

    @staticmethod
    async def _has_body(request: Request) -> bool:
        length = request.headers.get("content-length")
        return bool(request.headers.get("transfer-encoding")) or (length is not None and length != "0")

    async def _create_runtime(self, call: Call) -> Response:
        body = await self._control_json(call)
        runtime_id = _optional_str(body, "runtimeId")
        space_id = _optional_str(body, "spaceId")
        status = _optional_str(body, "status") or "active"
        if status not in ("active", "stopped"):
            raise invalid("'status' must be 'active' or 'stopped'.", field="status")
        record = await run_in_threadpool(
            self.store.create_runtime, runtime_id, space_id, active=status == "active"
        )
        return json_response(
            {"runtimeId": record.id, "spaceId": record.space_id, "status": record.status}, status=201
        )

    async def _list_runtimes(self, call: Call) -> Response:
        return json_response({"data": [r.to_json() for r in self.store.runtimes()]})

    def _fs_path(self, call: Call) -> str:
        path = call.request.query_params.get("path")
        if not path:
            raise invalid("The query parameter 'path' is required.", field="path")
        return path

    async def _fs_write(self, call: Call) -> Response:
        runtime_id = call.params[0]
        path = self._fs_path(call)
        scratch = self.store.runtime_scratch(runtime_id)
        tmp = scratch / f"put-{os.urandom(8).hex()}"
        call.cleanup.append(lambda: tmp.unlink(missing_ok=True))
        with open(tmp, "xb", buffering=_WRITE_BUFFER) as out:
            async for chunk in call.request.stream():  # ends with the body
                out.write(chunk)
        shown, size = await run_in_threadpool(self.store.put_runtime_file, runtime_id, path, tmp)
        return json_response({"path": shown, "sizeBytes": size}, status=201)

    async def _fs_read(self, call: Call) -> Response:
        runtime_id = call.params[0]
        self.store.get_runtime(runtime_id)
        real = self.store.resolve_runtime_file(runtime_id, self._fs_path(call))
        return Download(real, media_type="application/octet-stream")

    async def _stored_files(self, call: Call) -> Response:
        data = [
            {
                "id": f.id,
                "name": f.name,
                "path": f.path,
                "spaceId": f.space_id,
                "sizeBytes": f.size_bytes,
                "sha256": f.sha256,
                "source": f.source,
                "runtimeId": f.runtime_id,
                "metadata": f.metadata,
                "createdAt": f.created_at,
            }
            for f in self.store.files()
        ]
        return json_response({"data": data})

    async def _artifacts(self, call: Call) -> Response:
        return json_response({"data": [a.to_json() for a in self.store.artifacts()]})

    async def _faults_list(self, call: Call) -> Response:
        return json_response({"data": self.faults.pending()})

    async def _faults_add(self, call: Call) -> Response:
        fault, count = parse_fault_request(await read_json(call.request))
        self.faults.add(fault, count)
        return json_response({"data": self.faults.pending()}, status=201)

    async def _faults_clear(self, call: Call) -> Response:
        self.faults.clear()
        return Response(status_code=204)

    async def _requests_list(self, call: Call) -> Response:
        return json_response({"data": self.request_log.entries()})

    async def _requests_clear(self, call: Call) -> Response:
        self.request_log.clear()
        return Response(status_code=204)


def create_app(
    *,
    api_key: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    space_id: str | None = None,
    connections: ConnectionRegistry | None = None,
) -> EmulatorApp:
    """Build the emulator's ASGI application.

    Every argument is optional so the factory also works with ``uvicorn --factory``:

    :param api_key: the accepted API key; default ``$BCTRL_EMULATOR_API_KEY``, else ``bctrl_emulator_key``.
    :param data_dir: where state is kept; default ``$BCTRL_EMULATOR_DATA_DIR``, else a new temporary dir.
    :param space_id: the default space id; default the one persisted in ``data_dir``, else a new uuid4.
    :param connections: registry of the server's connections, needed by the ``drop`` fault (the
        emulator's own server passes one; see :func:`tracking_protocol`).
    """
    key = api_key or os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY
    directory = data_dir or os.environ.get(DATA_DIR_ENV) or tempfile.mkdtemp(prefix="bctrl-emulator-")
    store = EmulatorStore(directory, space_id)
    return EmulatorApp(store, key, connections=connections)
