"""The emulator's HTTP application: the BCTRL ``/v1`` API, its request pipeline, and :func:`create_app`.

A plain ASGI application built on Starlette's request and response classes; the ``/_emulator`` control
API is :mod:`._emulator_control`, the shared plumbing :mod:`._emulator_http`. Routing is a small table
matched on the raw (still percent-encoded) path, so ids containing ``%2F`` stay one segment. Every ``/v1``
request goes through the same pipeline::

    route -> auth -> read input (JSON, or streamed multipart) -> fault "request" -> handler
          -> fault "processing" -> response (+ request log entry)

Failures are raised as :class:`ApiError` and answered with the contract's error envelope.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.types import Message, Receive, Scope, Send

from airflow_provider_bctrl.testing import _emulator_transfers as transfers
from airflow_provider_bctrl.testing._emulator_connections import (
    ConnectionRegistry,
    DropConnection,
    PartialThenDrop,
)
from airflow_provider_bctrl.testing._emulator_control import ControlApi
from airflow_provider_bctrl.testing._emulator_errors import ApiError, fault_error, invalid, unauthorized
from airflow_provider_bctrl.testing._emulator_faults import Fault, FaultQueue, RequestLog
from airflow_provider_bctrl.testing._emulator_http import (
    Call,
    Route,
    api_error,
    drain,
    error_response,
    find_route,
    int_header,
    json_response,
    new_request_id,
    optional_str,
    read_json,
    require_object,
    required_str,
    template,
)
from airflow_provider_bctrl.testing._emulator_multipart import FormReader
from airflow_provider_bctrl.testing._emulator_records import (
    FileRecord,
    UploadedBytes,
    decode_cursor,
    encode_cursor,
)
from airflow_provider_bctrl.testing._emulator_runtimes import RuntimeLifecycle
from airflow_provider_bctrl.testing._emulator_store import EmulatorStore

log = logging.getLogger("airflow_provider_bctrl.testing.emulator")

#: Environment variable holding the API key when none is passed explicitly.
API_KEY_ENV = "BCTRL_EMULATOR_API_KEY"
#: Environment variable naming the data directory when none is passed explicitly.
DATA_DIR_ENV = "BCTRL_EMULATOR_DATA_DIR"
#: The key used when neither an argument nor the environment gives one.
DEFAULT_API_KEY = "bctrl_emulator_key"  # a well-known key for a local test server, not a secret
#: Page size of list endpoints: default and maximum.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

#: Fixed identity answered by whoami (plausible values; nothing here is secret).
ORGANIZATION_ID = "7d4f7a52-3c1e-4f0a-9a51-6b0e2f3c9d10"
ACCOUNT_EMAIL = "developer@example.com"
PLAN = "developer"


def key_id_for(api_key: str) -> str:
    """A stable key id derived from the key by a one-way hash, so it never reveals the key."""
    digest = hmac.new(b"bctrl-emulator-key-id", api_key.encode(), "sha256").hexdigest()
    return f"key_{digest[:16]}"


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
            Route("POST", template("v1/runtimes/{}/files/upload"), "upload", self._upload),
            Route("POST", template("v1/spaces/{}/runtimes/{}/files/collect"), "collect", self._collect),
            Route("POST", template("v1/runtimes/{}/files/stage"), "stage", self._stage),
            Route("GET", template("v1/auth/whoami"), "whoami", self._whoami),
            Route("GET", template("v1/files/{}"), "file", self._file),
            Route("GET", template("v1/files/{}/content"), "content", self._content),
            Route("GET", template("v1/runtimes/{}/files"), "list", self._list),
            # Runtime lifecycle (BCTRL's public docs, outside the seed contract): see _emulator_runtimes.
            Route("POST", template("v1/runtimes/{}/start"), "start", self._lifecycle.start),
            Route("POST", template("v1/runtimes/{}/stop"), "stop", self._lifecycle.stop),
            Route("GET", template("v1/runtimes/{}"), "runtime", self._lifecycle.get),
        ]
        self._control = ControlApi(store, self.faults, self.request_log, self._lifecycle)

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
                response = await self._control.serve(call, segments)
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
            "contentLength": int_header(headers.get("content-length")),
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
            route, call.params = find_route(self._v1_routes, request.method, segments)
            call.route = call.entry["route"] = route.name
            if not self._authorized(request):
                await drain(request)
                raise unauthorized()
            await self._read_input(call)
        except (ApiError, OSError) as error:
            await drain(request)
            return error_response(api_error(error), call.request_id)

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
            response = error_response(api_error(error), call.request_id)
        if fault is not None and fault.after == "processing":
            outcome = await self._apply_fault(call, fault, response)
            if outcome is not None:
                return outcome
        return response

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
            transfers.commit_upload,
            self.store,
            call.params[0],
            upload,
            name=fields.get("name"),
            runtime_path=fields.get("runtimePath"),
            destination_path=fields.get("destinationPath"),
            metadata=fields.get("metadata"),
        )
        return json_response(staged.to_api())

    async def _collect(self, call: Call) -> Response:
        body = require_object(call.data)
        path = required_str(body, "path")
        storage_path = optional_str(body, "storagePath")
        name = optional_str(body, "name")
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
            transfers.collect,
            self.store,
            space_id,
            runtime_id,
            path,
            storage_path=storage_path,
            name=name,
            artifact=artifact,
        )
        file_json = record.to_api_summary()
        return json_response({"file": file_json, "artifact": recorded.to_api() if recorded else None})

    async def _stage(self, call: Call) -> Response:
        body = require_object(call.data)
        file_id = required_str(body, "fileId")
        runtime_path = optional_str(body, "runtimePath")
        name = optional_str(body, "name")
        staged = await run_in_threadpool(
            transfers.stage, self.store, call.params[0], file_id, runtime_path, name
        )
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
            **record.to_api_summary(),
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
        emulator's own server passes one; see :func:`._emulator_connections.tracking_protocol`).
    """
    key = api_key or os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY
    directory = data_dir or os.environ.get(DATA_DIR_ENV) or tempfile.mkdtemp(prefix="bctrl-emulator-")
    store = EmulatorStore(directory, space_id)
    return EmulatorApp(store, key, connections=connections)
