"""The emulator's control API, ``/_emulator/...``: what tests use to set the scene and look behind it.

Create runtimes, put files into them as the browser would, read the durable store and the artifacts,
queue faults and read the request log. No authentication: it only ever listens on loopback. The
Python side of it is :class:`~airflow_provider_bctrl.testing.client.EmulatorClient`.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_bctrl.testing import _emulator_transfers as transfers
from airflow_provider_bctrl.testing._emulator_errors import ApiError, invalid
from airflow_provider_bctrl.testing._emulator_faults import FaultQueue, RequestLog, parse_fault_request
from airflow_provider_bctrl.testing._emulator_http import (
    Call,
    Download,
    Route,
    api_error,
    drain,
    error_response,
    find_route,
    json_response,
    optional_str,
    read_json,
    require_object,
    template,
)
from airflow_provider_bctrl.testing._emulator_runtimes import RuntimeLifecycle
from airflow_provider_bctrl.testing._emulator_store import EmulatorStore

_WRITE_BUFFER = 1024 * 1024


class ControlApi:
    """The ``/_emulator`` routes over the emulator's store, fault queue and request log."""

    def __init__(
        self, store: EmulatorStore, faults: FaultQueue, request_log: RequestLog, lifecycle: RuntimeLifecycle
    ) -> None:
        self.store = store
        self.faults = faults
        self.request_log = request_log
        self.routes = [
            Route("GET", template("_emulator/health"), "health", self._health),
            Route("GET", template("_emulator/info"), "info", self._info),
            Route("POST", template("_emulator/runtimes"), "runtimes.create", self._create_runtime),
            Route("GET", template("_emulator/runtimes"), "runtimes.list", self._list_runtimes),
            Route("PUT", template("_emulator/runtimes/{}/fs"), "fs.write", self._fs_write),
            Route("GET", template("_emulator/runtimes/{}/fs"), "fs.read", self._fs_read),
            Route("POST", template("_emulator/runtimes/{}/fs/later"), "fs.later", lifecycle.fs_later),
            Route("GET", template("_emulator/files"), "files", self._stored_files),
            Route("GET", template("_emulator/artifacts"), "artifacts", self._artifacts),
            Route("GET", template("_emulator/faults"), "faults.list", self._faults_list),
            Route("POST", template("_emulator/faults"), "faults.add", self._faults_add),
            Route("DELETE", template("_emulator/faults"), "faults.clear", self._faults_clear),
            Route("GET", template("_emulator/requests"), "requests.list", self._requests_list),
            Route("DELETE", template("_emulator/requests"), "requests.clear", self._requests_clear),
        ]

    async def serve(self, call: Call, segments: list[str]) -> Any:
        """Answer a request outside ``/v1``: a control route, or the contract's 404/405 envelope."""
        try:
            if segments[0] != "_emulator":
                raise ApiError(404, "route.not_found", "No such route.", "not_found")
            route, call.params = find_route(self.routes, call.request.method, segments)
            call.route = route.name
            return await route.handler(call)
        except (ApiError, OSError) as error:
            await drain(call.request)
            return error_response(api_error(error), call.request_id)

    async def _health(self, call: Call) -> Response:
        return json_response({"status": "ok"})

    async def _info(self, call: Call) -> Response:
        return json_response(
            {"defaultSpaceId": self.store.default_space_id, "dataDir": str(self.store.data_dir)}
        )

    async def _control_json(self, call: Call) -> dict[str, Any]:
        body = await read_json(call.request) if await self._has_body(call.request) else {}
        return require_object(body)

    @staticmethod
    async def _has_body(request: Request) -> bool:
        length = request.headers.get("content-length")
        return bool(request.headers.get("transfer-encoding")) or (length is not None and length != "0")

    async def _create_runtime(self, call: Call) -> Response:
        body = await self._control_json(call)
        runtime_id = optional_str(body, "runtimeId")
        space_id = optional_str(body, "spaceId")
        status = optional_str(body, "status") or "active"
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
        shown, size = await run_in_threadpool(transfers.put_runtime_file, self.store, runtime_id, path, tmp)
        return json_response({"path": shown, "sizeBytes": size}, status=201)

    async def _fs_read(self, call: Call) -> Response:
        runtime_id = call.params[0]
        self.store.get_runtime(runtime_id)
        real = transfers.resolve_runtime_file(self.store, runtime_id, self._fs_path(call))
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
