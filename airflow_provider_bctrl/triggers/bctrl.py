"""The trigger that waits, in Airflow's triggerer, for a file to appear in a BCTRL runtime and collects it.

:class:`BctrlRuntimeFileTrigger` polls the collect endpoint asynchronously (httpx) until the runtime has
a file at the path. Polling collect is safe: while the file is missing the API answers 404
``runtime_file.not_found`` and stores nothing, so exactly one poll, the first that finds the file,
collects it. The task then resumes on a worker with that result; the worker sends no second collect.

What the trigger shares with :class:`~airflow_provider_bctrl.hooks.bctrl.BctrlHook`: the connection's
settings are parsed by the hook (base URL, the refusal of plain http to other hosts, timeouts,
subaccount, ``max_retry_wait``), error responses are mapped onto the same exception types by the
hook, with the API key redacted, and the TLS bundle comes from the same environment variables
(``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``). Redirects are never followed, so the key only goes to
the API's origin.

What it serializes (and so what the metadata database holds): the connection id, the runtime, space
and path, collect's own arguments, the poll interval and the deadline as a UNIX time. Never the API
key: the triggerer reads the connection itself. Because the deadline is absolute, a trigger that is
restarted on another triggerer keeps the original deadline.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_bctrl import __version__

if TYPE_CHECKING:
    import httpx

    from airflow_provider_bctrl._settings import BctrlConnectionSettings

__all__ = ["WAIT_CODES", "BctrlRuntimeFileTrigger"]

#: The 404 codes that mean "not there yet": everything else ends the wait at once.
WAIT_CODES = frozenset({"runtime_file.not_found"})
#: Statuses after which the next poll waits at least ``Retry-After`` (the server did not act).
_BACKOFF_STATUSES = frozenset({429, 503})


class BctrlRuntimeFileTrigger(BaseTrigger):
    """Poll collect until the runtime has the file, then fire once with the collect response.

    Events (``TriggerEvent.payload``):

    - ``{"status": "success", "collected": <collect response JSON>, "polls": n}``
    - ``{"status": "timeout", "polls": n}`` when ``deadline`` passed first
    - ``{"status": "error", "error_class": ..., "message": ..., ...}`` for any other failure (the
      fields of :class:`~airflow_provider_bctrl.exceptions.BctrlApiError`), raised again on the worker

    :param bctrl_conn_id: the Airflow connection of type ``bctrl``, read in the triggerer.
    :param runtime_id: the runtime that will produce the file.
    :param space_id: the space to collect into (resolved by the operator before deferring).
    :param path: the file's path in the runtime.
    :param storage_path: collect's ``storagePath``, if any.
    :param name: collect's ``name``, if any.
    :param artifact: collect's ``artifact``, if any.
    :param poke_interval: seconds between polls.
    :param deadline: UNIX time after which the wait ends with a ``timeout`` event.
    :param hook_params: the task's checked ``hook_params`` (``timeout``, ``max_retries``,
        ``max_retry_wait``), applied over the connection's settings as the task's hook applies them.
    """

    def __init__(
        self,
        *,
        bctrl_conn_id: str,
        runtime_id: str,
        space_id: str,
        path: str,
        deadline: float,
        poke_interval: float = 5.0,
        storage_path: str | None = None,
        name: str | None = None,
        artifact: Mapping[str, Any] | None = None,
        hook_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.bctrl_conn_id = bctrl_conn_id
        self.runtime_id = runtime_id
        self.space_id = space_id
        self.path = path
        self.deadline = float(deadline)
        self.poke_interval = float(poke_interval)
        self.storage_path = storage_path
        self.name = name
        self.artifact = dict(artifact) if artifact is not None else None
        self.hook_params = dict(hook_params) if hook_params else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the kwargs to rebuild this trigger; holds no secret."""
        kwargs: dict[str, Any] = {
            "bctrl_conn_id": self.bctrl_conn_id,
            "runtime_id": self.runtime_id,
            "space_id": self.space_id,
            "path": self.path,
            "deadline": self.deadline,
            "poke_interval": self.poke_interval,
            "storage_path": self.storage_path,
            "name": self.name,
            "artifact": self.artifact,
        }
        if self.hook_params:  # only when the task had some: numbers, never a secret
            kwargs["hook_params"] = self.hook_params
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    # ------------------------------------------------------------------------------ running

    async def _settings(self) -> BctrlConnectionSettings:
        """The connection's settings, checked by the hook's own rules (:mod:`airflow_provider_bctrl._settings`)."""
        from asgiref.sync import sync_to_async

        from airflow_provider_bctrl._settings import HookArguments, load_settings
        from airflow_provider_bctrl.hooks.bctrl import BctrlHook

        get_connection: Any = BctrlHook.get_connection
        # Airflow 3 offers an async connection lookup for code on the triggerer's event loop; with it
        # the settings parsing below does no I/O. Without it (or when it fails) the synchronous lookup
        # runs in a thread and names any problem in the hook's own words.
        aget_connection = getattr(BctrlHook, "aget_connection", None)
        if aget_connection is not None:
            from airflow_provider_bctrl._masking import guard_mask_secret_requests

            # As BctrlHook.get_connection does: the lookup masks the key through the in-process
            # supervisor of `airflow dags test`, which would log it at DEBUG unguarded.
            guard_mask_secret_requests()
            try:
                connection = await aget_connection(self.bctrl_conn_id)
            except Exception:
                connection = None
            if connection is not None:
                get_connection = lambda conn_id: connection  # noqa: E731
        arguments = HookArguments(**(self.hook_params or {}))
        return await sync_to_async(load_settings)(get_connection, self.bctrl_conn_id, arguments)

    def _url(self, settings: BctrlConnectionSettings) -> str:
        from urllib.parse import quote

        space, runtime = quote(self.space_id, safe=""), quote(self.runtime_id, safe="")
        return f"{settings.base_url}/v1/spaces/{space}/runtimes/{runtime}/files/collect"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the file is collected, the deadline passes, or an error that waiting cannot fix."""
        import httpx

        from airflow_provider_bctrl._arguments import CollectArguments

        try:
            settings = await self._settings()
        except Exception as exc:  # a missing or unusable connection: say so on the worker
            yield TriggerEvent(_error_payload(exc, polls=0))
            return
        # The operator checked these before deferring; the body is built as the hook builds it.
        body = CollectArguments(
            runtime_id=self.runtime_id,
            path=self.path,
            space_id=self.space_id,
            storage_path=self.storage_path,
            name=self.name,
            artifact=self.artifact,
        ).json_body()
        url = self._url(settings)
        polls = 0
        self.log.info(
            "Waiting for %s in runtime %s (poll every %g s, until %s)",
            self.path,
            self.runtime_id,
            self.poke_interval,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.deadline)),
        )
        async with _client(settings) as client:  # closed on every exit, cancellation included
            while True:  # bounded: every pass sleeps, and the deadline ends the loop
                polls += 1
                wait = self.poke_interval
                try:
                    response = await client.post(url, json=body, headers=_headers(settings))
                except httpx.TransportError as exc:
                    if not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                        # The request may have reached the server: it may have stored the file.
                        yield TriggerEvent(_transport_payload(settings, exc, polls))
                        return
                    self.log.warning(
                        "Poll %d could not connect (%s); trying again", polls, type(exc).__name__
                    )
                else:
                    outcome = self._outcome(settings, response, polls)
                    if outcome is not None:
                        yield TriggerEvent(outcome)
                        return
                    if response.status_code in _BACKOFF_STATUSES:
                        from airflow_provider_bctrl._retry import parse_retry_after

                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                        if retry_after is not None:
                            wait = max(wait, min(retry_after, settings.max_retry_wait))
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    yield TriggerEvent({"status": "timeout", "polls": polls})
                    return
                await asyncio.sleep(min(wait, remaining))

    def _outcome(
        self, settings: BctrlConnectionSettings, response: httpx.Response, polls: int
    ) -> dict[str, Any] | None:
        """The event for this poll's answer, or ``None`` to keep waiting."""
        from airflow_provider_bctrl._http import parse_json, redacted_error
        from airflow_provider_bctrl.exceptions import error_from_response

        status = response.status_code
        if status < 300:
            return _success_payload(settings, response, polls)
        # The hook's own mapping (same types, codes, uncertainty rule) and redaction.
        error = redacted_error(
            error_from_response(
                status,
                parse_json(response, settings),  # type: ignore[arg-type]  # httpx has the same interface
                headers=response.headers,
                text=response.text,
                operation="collect",
                idempotent=False,
            ),
            settings,
        )
        if status == 404 and error.code in WAIT_CODES:
            self.log.info("Poll %d: no file at %s yet (%s)", polls, self.path, error.request_id)
            return None
        if status in _BACKOFF_STATUSES:
            self.log.warning("Poll %d: %s; waiting before the next poll", polls, error)
            return None
        return _error_payload(error, polls=polls)


# ---------------------------------------------------------------------- helpers


def _client(settings: BctrlConnectionSettings) -> httpx.AsyncClient:
    import httpx

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    verify: ssl.SSLContext | bool = True
    if bundle:
        verify = (
            ssl.create_default_context(capath=bundle)
            if os.path.isdir(bundle)
            else ssl.create_default_context(cafile=bundle)
        )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        verify=verify,
        follow_redirects=False,  # the key goes to the API's origin and nowhere else
        trust_env=True,  # HTTP(S)_PROXY / NO_PROXY, as the hook's session reads them
    )


def _headers(settings: BctrlConnectionSettings) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {settings.api_key}",
        "Accept": "application/json",
        "User-Agent": f"airflow-provider-bctrl/{__version__} (trigger)",
    }
    if settings.subaccount_id:
        headers["BCTRL-Subaccount-Id"] = settings.subaccount_id
    return headers


def _success_payload(
    settings: BctrlConnectionSettings, response: httpx.Response, polls: int
) -> dict[str, Any]:
    from airflow_provider_bctrl._http import parse_json
    from airflow_provider_bctrl.exceptions import BctrlUnexpectedResponseError
    from airflow_provider_bctrl.models import CollectedFile

    request_id = settings.redact(response.headers.get("X-Request-Id") or "") or None
    # Decision 9: the API's JSON as received, except the key wherever a server echoed it.
    payload = parse_json(response, settings)  # type: ignore[arg-type]  # httpx has the same interface
    try:
        CollectedFile.from_api(payload)  # the same checks the hook applies to a collect answer
    except (KeyError, TypeError, AttributeError) as exc:
        error = BctrlUnexpectedResponseError(
            f"BCTRL API {response.status_code} during collect: the answer is not a collect result ({exc}) "
            f"(request id {request_id}). The file may have been stored.",
            status=response.status_code,
            request_id=request_id,
        )
        return _error_payload(error, polls=polls)
    return {"status": "success", "collected": payload, "polls": polls, "request_id": request_id}


def _transport_payload(settings: BctrlConnectionSettings, exc: Exception, polls: int) -> dict[str, Any]:
    from airflow_provider_bctrl.exceptions import UNCERTAIN_SUFFIX, BctrlUncertainTransportError

    message = (
        f"The connection to BCTRL at {settings.base_url} failed during collect ({type(exc).__name__}: {exc})."
        + UNCERTAIN_SUFFIX
    )
    return _error_payload(BctrlUncertainTransportError(settings.redact(message)), polls=polls)


def _error_payload(exc: BaseException, *, polls: int) -> dict[str, Any]:
    """A JSON-safe description of ``exc`` that the worker turns back into the same exception type."""
    payload: dict[str, Any] = {
        "status": "error",
        "error_class": type(exc).__name__,
        "message": str(exc),
        "polls": polls,
    }
    for attr in ("status", "code", "error", "reason_class", "hint", "request_id", "details", "retry_after"):
        value = getattr(exc, attr, None)
        if value is not None:
            payload[f"api_{attr}"] = value
    return payload
