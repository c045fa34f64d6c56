"""The emulator's runtime lifecycle: start, stop and read a runtime, and files that appear later.

BCTRL documents these endpoints outside the seed contract (its public docs and clients); the emulator
follows them as the best available knowledge:

- ``POST /v1/runtimes/{id}/start`` (optional ``Idempotency-Key``) answers ``{connectUrl, protocol,
  runId, runtimeId, started, status, webdriverUrl}``. A key seen before on the runtime answers the run
  that key started; a start of an active runtime answers its active run with ``started: false``;
  otherwise a new run opens.
- ``POST /v1/runtimes/{id}/stop`` answers ``{runId, runtimeId, status, stopped}``; stopping a runtime
  that is not active answers 409 ``runtime.not_active``.
- ``GET /v1/runtimes/{id}`` answers the runtime with ``status`` and ``activeRunId``.

The control route ``POST /_emulator/runtimes/{id}/fs/later?path=...&delay=...`` writes its body into
the runtime ``delay`` seconds later, the way a browser finishes a download while a pipeline waits.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from airflow_provider_bctrl.testing import _emulator_paths as paths
from airflow_provider_bctrl.testing import _emulator_transfers as transfers
from airflow_provider_bctrl.testing._emulator_errors import invalid
from airflow_provider_bctrl.testing._emulator_records import RuntimeRecord, RuntimeStart
from airflow_provider_bctrl.testing._emulator_store import EmulatorStore

if TYPE_CHECKING:
    from airflow_provider_bctrl.testing._emulator_http import Call

log = logging.getLogger("airflow_provider_bctrl.testing.emulator")

#: Longest ``Idempotency-Key`` accepted (BCTRL documents none; 255 is the common limit).
MAX_IDEMPOTENCY_KEY = 255
#: Longest delay ``fs/later`` accepts, in seconds.
MAX_LATER_SECONDS = 600.0
#: Largest body ``fs/later`` keeps (it is held on disk until it lands).
MAX_LATER_BYTES = 64 * 1024 * 1024


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status)


def check_idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header when it is usable; 400 naming the header otherwise."""
    if value is None:
        return None
    if not value or len(value) > MAX_IDEMPOTENCY_KEY or not (value.isascii() and value.isprintable()):
        raise invalid(
            f"'Idempotency-Key' must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
            field="Idempotency-Key",
        )
    return value


class RuntimeLifecycle:
    """Handlers for the lifecycle routes, sharing the app's store.

    :param store: the emulator's state.
    :param api_key: the emulator's key, only used to derive per-run connect tokens (one-way).
    """

    def __init__(self, store: EmulatorStore, api_key: str) -> None:
        self.store = store
        self._token_key = api_key.encode()
        self._pending: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------------------ /v1

    def _connect_url(self, call: Call, run_id: str) -> str:
        # A credential-like URL, as BCTRL's is: whoever holds it can drive the browser.
        token = hmac.new(self._token_key, f"connect:{run_id}".encode(), "sha256").hexdigest()[:32]
        base = str(call.request.base_url).rstrip("/")
        scheme, _, rest = base.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/_emulator/runs/{run_id}/cdp?token={token}"

    def _start_json(self, call: Call, outcome: RuntimeStart) -> dict[str, Any]:
        runtime = outcome.runtime
        status = "active" if runtime.active_run_id == outcome.run_id else runtime.status
        return {
            "connectUrl": self._connect_url(call, outcome.run_id),
            "protocol": "cdp",
            "runId": outcome.run_id,
            "runtimeId": runtime.id,
            "started": outcome.started,
            "status": status,
            "webdriverUrl": None,
        }

    async def start(self, call: Call) -> Response:
        """``POST /v1/runtimes/{id}/start``."""
        key = check_idempotency_key(call.request.headers.get("idempotency-key"))
        if call.entry is not None:
            call.entry["idempotencyKey"] = key
        outcome = await run_in_threadpool(self.store.start_runtime, call.params[0], key)
        return _json(self._start_json(call, outcome))

    async def stop(self, call: Call) -> Response:
        """``POST /v1/runtimes/{id}/stop``."""
        stopped = await run_in_threadpool(self.store.stop_runtime, call.params[0])
        return _json(
            {"runId": stopped.run_id, "runtimeId": stopped.id, "status": stopped.status, "stopped": True}
        )

    async def get(self, call: Call) -> Response:
        """``GET /v1/runtimes/{id}``."""
        return _json(runtime_json(self.store.get_runtime(call.params[0])))

    # ---------------------------------------------------------------------------- control API

    async def fs_later(self, call: Call) -> Response:
        """``POST /_emulator/runtimes/{id}/fs/later?path=...&delay=...``: the body lands after ``delay`` s."""
        runtime_id = call.params[0]
        query = call.request.query_params
        path = query.get("path")
        if not path:
            raise invalid("The query parameter 'path' is required.", field="path")
        try:
            delay = float(query.get("delay", "0"))
        except ValueError:
            raise invalid("'delay' must be a number of seconds.", field="delay") from None
        if not 0 <= delay <= MAX_LATER_SECONDS:
            raise invalid(f"'delay' must be from 0 to {MAX_LATER_SECONDS:g} seconds.", field="delay")
        # The path is checked now (400 runtime_file.path_invalid), not when the file lands unseen.
        if not paths.runtime_location(path):
            raise invalid("'path' must name a file.", code="runtime_file.path_invalid", path=path)
        scratch = self.store.runtime_scratch(runtime_id)  # 404 for an unknown runtime
        tmp = scratch / f"later-{os.urandom(8).hex()}"
        size = 0
        try:
            with open(tmp, "xb") as out:
                async for chunk in call.request.stream():  # ends with the body
                    size += len(chunk)
                    if size > MAX_LATER_BYTES:
                        raise invalid(f"The body is larger than {MAX_LATER_BYTES} bytes.")
                    out.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        task = asyncio.get_running_loop().create_task(self._land_later(runtime_id, path, tmp, delay))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return _json({"path": path, "sizeBytes": size, "delaySeconds": delay}, status=202)

    async def _land_later(self, runtime_id: str, path: str, tmp: Any, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            shown, size = await run_in_threadpool(
                transfers.put_runtime_file, self.store, runtime_id, path, tmp
            )
            log.info("A delayed file landed in runtime %s at %s (%d bytes)", runtime_id, shown, size)
        except asyncio.CancelledError:
            tmp.unlink(missing_ok=True)
            raise
        except Exception:
            log.exception("A delayed file for runtime %s at %s could not be written", runtime_id, path)
            tmp.unlink(missing_ok=True)


def runtime_json(record: RuntimeRecord) -> dict[str, Any]:
    """The runtime object of ``GET /v1/runtimes/{id}``."""
    return {
        "id": record.id,
        "spaceId": record.space_id,
        "status": record.status,
        "activeRunId": record.active_run_id,
        "createdAt": record.created_at,
    }


__all__ = ["RuntimeLifecycle", "check_idempotency_key", "runtime_json"]
