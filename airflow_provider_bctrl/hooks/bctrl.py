"""The BCTRL hook: an Airflow connection turned into a pooled, authenticated session, and the API methods.

Each layer below it is a private module that says what it owns; ``docs/hook.md`` ("How the code is
laid out") lists them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_bctrl import CONN_TYPE, DEFAULT_CONN_ID
from airflow_provider_bctrl._arguments import (
    CollectArguments,
    DownloadArguments,
    StageArguments,
    UploadArguments,
)
from airflow_provider_bctrl._connection_check import check_connection
from airflow_provider_bctrl._download import CONTENT_HEADERS, receive
from airflow_provider_bctrl._http import new_session, parse_model, send
from airflow_provider_bctrl._lineage import LineageItem, LocalFile, StoredFileRef, report_lineage, space_file
from airflow_provider_bctrl._multipart import StreamingMultipartBody, guess_content_type
from airflow_provider_bctrl._progress import StartLine
from airflow_provider_bctrl._retry import call_with_retries
from airflow_provider_bctrl._settings import (
    DEFAULT_BACKOFF_BASE,
    BctrlConnectionSettings,
    HookArguments,
    load_settings,
    mask,
)
from airflow_provider_bctrl._storage import local_source, resolve_destination, resolve_source
from airflow_provider_bctrl._upload import UploadTransfer
from airflow_provider_bctrl._validation import check_id, check_idempotency_key
from airflow_provider_bctrl.exceptions import (
    BctrlConnectionConfigError,
    BctrlInputError,
)
from airflow_provider_bctrl.models import (
    CollectedFile,
    Runtime,
    RuntimeStagedFile,
    RuntimeStarted,
    RuntimeStopped,
    StoredFile,
    WhoAmI,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

__all__ = ["BctrlConnectionSettings", "BctrlHook", "guess_content_type"]

#: Transfers shorter than this log only their summary line, no progress lines.
PROGRESS_QUIET_SECONDS = 2.0
#: An upload whose answer has not come this many seconds after its last byte went out logs that it
#: is waiting (then again every 30 s), so a server storing a large file leaves no silent stretch.
WAIT_NOTICE_SECONDS = 5.0

_Model = TypeVar("_Model")
_Result = TypeVar("_Result")


class BctrlHook(BaseHook):
    """Talk to the BCTRL API with the credentials of an Airflow connection.

    The connection (type ``bctrl``; its fields: ``docs/connection.md``) gives the API key and base URL.
    One :class:`requests.Session` is created on first use and reused by every call (pooled
    connections); the hook is safe to share between threads.

    :param bctrl_conn_id: the Airflow connection id.
    :param timeout: seconds to wait for the server on each request; overrides the connection's.
    :param max_retries: automatic retries of safe requests; overrides the connection's.
    :param max_retry_wait: the longest single wait between retries, whatever ``Retry-After`` says;
        overrides the connection's ``max_retry_wait`` (default 60 s).
    :param backoff_base: first backoff wait in seconds when the server gives no ``Retry-After``.
    """

    conn_name_attr = "bctrl_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "BCTRL"

    @classmethod
    def get_connection(cls, conn_id: str) -> Any:
        """The Airflow connection ``conn_id``; on Airflow 3.x its key never reaches ``dag.test()``'s debug log."""
        from airflow_provider_bctrl._masking import guard_mask_secret_requests

        guard_mask_secret_requests()
        return super().get_connection(conn_id)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields for Airflow 2.11-3.1 (3.2+ reads ``conn-fields`` from the provider info)."""
        from airflow_provider_bctrl._form import connection_form_widgets

        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled standard fields for Airflow 2.11-3.1 (3.2+: ``ui-field-behaviour``)."""
        from airflow_provider_bctrl._form import ui_field_behaviour

        return ui_field_behaviour()

    def __init__(
        self,
        bctrl_conn_id: str = DEFAULT_CONN_ID,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_wait: float | None = None,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bctrl_conn_id = bctrl_conn_id
        self._arguments = HookArguments(
            timeout=timeout, max_retries=max_retries, max_retry_wait=max_retry_wait, backoff_base=backoff_base
        )
        self._session_lock = threading.Lock()
        self._session: requests.Session | None = None
        self._default_space_id: str | None = None
        #: Seconds slept before each retry by this hook, in order (the latest 100); for logs and tests.
        self.retry_waits: list[float] = []
        self._sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ connection and session

    @cached_property
    def settings(self) -> BctrlConnectionSettings:
        """The connection's settings, read once and checked (raises on a missing or unusable connection)."""
        return load_settings(self.get_connection, self.bctrl_conn_id, self._arguments)

    @property
    def backoff_base(self) -> float:
        """First backoff wait in seconds when the server gives no ``Retry-After``."""
        return self.settings.backoff_base

    @property
    def session(self) -> requests.Session:
        """The hook's HTTP session, created on first use with auth, User-Agent and pooling set up."""
        with self._session_lock:
            if self._session is None:
                self._session = new_session(self.settings)
            return self._session

    def get_conn(self) -> requests.Session:
        """Return the hook's :class:`requests.Session` (Airflow's conventional hook accessor)."""
        return self.session

    def close(self) -> None:
        """Close the session and its pooled connections. The hook can be used again afterwards."""
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def __enter__(self) -> BctrlHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the one request path

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json_body: Mapping[str, Any] | None = None,
        body_factory: Callable[[], StreamingMultipartBody] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        max_retries: int | None = None,
        idempotent: bool | None = None,
        start: StartLine | None = None,
    ) -> requests.Response:
        """Send an API request under the retry policy; return a successful response or raise.

        :param operation: a short name for messages and logs, e.g. ``"upload"``.
        :param body_factory: builds a fresh streaming body for every attempt (uploads).
        :param idempotent: whether a repeat cannot act twice (default: GET/HEAD only); a POST with an
            ``Idempotency-Key`` is, so it gets the read retry policy.
        :param start: a transfer's held-back start line, logged as soon as an attempt fails (before
            the retry's warning or the error), so a failed transfer says what it was.
        """
        settings = self.settings
        session = self.session

        def attempt() -> requests.Response:
            with start.on_failure() if start is not None else contextlib.nullcontext():
                try:
                    body = body_factory() if body_factory is not None else None
                except OSError as exc:  # the source vanished or became unreadable between attempts
                    raise BctrlInputError(f"The file to {operation} can no longer be read: {exc}") from exc
                return send(
                    session,
                    settings,
                    method,
                    path,
                    operation=operation,
                    json_body=json_body,
                    body=body,
                    headers=headers,
                    stream=stream,
                    idempotent=idempotent,
                )

        return self._with_retries(operation, attempt, max_retries)

    def _with_retries(
        self, operation: str, call: Callable[[], _Result], max_retries: int | None = None
    ) -> _Result:
        settings = self.settings
        return call_with_retries(
            call,
            operation=operation,
            retries=settings.max_retries if max_retries is None else max_retries,
            base=settings.backoff_base,
            cap=settings.max_retry_wait,
            log=self.log,
            waits=self.retry_waits,
            sleep=self._sleep,
        )

    def _parse(
        self, response: requests.Response, operation: str, build: Callable[[dict[str, Any]], _Model]
    ) -> _Model:
        return parse_model(response, operation, self.settings, build)

    # ------------------------------------------------------------------ API methods

    def whoami(self, *, max_retries: int | None = None) -> WhoAmI:
        """Who the API key belongs to: organisation, default space, scope (``GET /v1/auth/whoami``)."""
        response = self._request("GET", "/v1/auth/whoami", operation="whoami", max_retries=max_retries)
        return self._parse(response, "whoami", WhoAmI.from_api)

    def get_default_space_id(self) -> str:
        """The space collect uses when none is given: the connection's ``space_id``, else whoami's (once)."""
        if self.settings.space_id:
            return self.settings.space_id
        if self._default_space_id is None:
            who = self.whoami()
            if not who.default_space_id:
                raise BctrlConnectionConfigError(
                    f"BCTRL reports no default space for this key; set space_id on the task or the "
                    f"extra field space_id of connection {self.bctrl_conn_id!r}."
                )
            self._default_space_id = check_id(who.default_space_id, "whoami defaultSpaceId")
        return self._default_space_id

    def upload_file(
        self,
        runtime_id: str,
        source: str | PathLike[str] | ObjectStoragePath,
        *,
        name: str | None = None,
        runtime_path: str | None = None,
        destination_path: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source_conn_id: str | None = None,
    ) -> RuntimeStagedFile:
        """Upload a file into a live runtime's workspace, streamed (it is also kept as a durable space file).

        :param runtime_id: the runtime to receive the file.
        :param source: the file: a local path, an :class:`~airflow.sdk.ObjectStoragePath`, or a URI
            such as ``s3://bucket/key`` read through Airflow's object storage (no temporary copy).
        :param name: display name and the file's name in the runtime; default: the source's file name.
        :param runtime_path: destination relative to the runtime workspace, e.g. ``"inputs/data.csv"``
            (a trailing ``/`` means a directory); default: chosen by BCTRL.
        :param destination_path: durable storage path for the stored copy; default: a managed path.
        :param metadata: caller-owned JSON object stored with the file.
        :param source_conn_id: Airflow connection for an object storage ``source`` URI.
        :return: the staged file; its ``id`` is the durable file id.
        """
        return self._upload(
            UploadArguments.check(
                runtime_id,
                source,
                name=name,
                runtime_path=runtime_path,
                destination_path=destination_path,
                metadata=metadata,
                source_conn_id=source_conn_id,
            )
        )

    def _upload(self, args: UploadArguments) -> RuntimeStagedFile:
        if args.local_source and isinstance(args.source, Path):  # checked with the arguments
            origin = local_source(args.source)
        else:
            origin = resolve_source(args.source, conn_id=args.source_conn_id)
        transfer = UploadTransfer(
            args,
            origin,
            log=self.log,
            server=lambda: self.settings.base_url,  # read once the file's name is checked
            quiet_seconds=PROGRESS_QUIET_SECONDS,
            wait_notice=WAIT_NOTICE_SECONDS,
        )
        try:
            response = self._request(
                "POST",
                f"/v1/runtimes/{_q(args.runtime_id)}/files/upload",
                operation="upload",
                body_factory=transfer.body,
                start=transfer.start,
            )
            staged = transfer.finish(lambda: self._parse(response, "upload", RuntimeStagedFile.from_api))
        finally:
            transfer.start.drop()  # not due yet: the summary line says enough
        read = LocalFile(origin.local_path) if origin.local_path is not None else origin.uri
        self._report_lineage(inputs=[read], outputs=[StoredFileRef(staged.id)])
        return staged

    def collect_file(
        self,
        runtime_id: str,
        path: str,
        *,
        space_id: str | None = None,
        storage_path: str | None = None,
        name: str | None = None,
        artifact: Mapping[str, Any] | None = None,
    ) -> CollectedFile:
        """Copy a file from a runtime into durable space storage, optionally recording a run artifact.

        :param runtime_id: the runtime that holds the file.
        :param path: the file inside the runtime: absolute (``/tmp/out/report.pdf``) or workspace-relative.
        :param space_id: the space to store into; default: the connection's ``space_id``, else the
            key's default space (looked up once per hook with whoami).
        :param storage_path: destination path in space storage; default: a managed path.
        :param name: display name of the stored file; default: the runtime file's name.
        :param artifact: record the file as a run artifact: a mapping with optional ``kind``,
            ``name`` and ``metadata``.
        """
        return self._collect(
            CollectArguments.check(
                runtime_id, path, space_id=space_id, storage_path=storage_path, name=name, artifact=artifact
            )
        )

    def _collect(self, args: CollectArguments) -> CollectedFile:
        space = args.space_id if args.space_id is not None else self.get_default_space_id()
        self.log.info("Collecting %s from runtime %s into space %s", args.path, args.runtime_id, space)
        response = self._request(
            "POST",
            f"/v1/spaces/{_q(space)}/runtimes/{_q(args.runtime_id)}/files/collect",
            operation="collect",
            json_body=args.json_body(),
        )
        collected: CollectedFile = self._parse(response, "collect", CollectedFile.from_api)
        self.log.info(
            "Collected file %s%s",
            collected.file.id,
            f" as artifact {collected.artifact.id}" if collected.artifact else "",
        )
        self._report_lineage(outputs=[space_file(space, collected.file)])
        return collected

    def stage_file(
        self, runtime_id: str, file_id: str, *, runtime_path: str | None = None, name: str | None = None
    ) -> RuntimeStagedFile:
        """Put a file that is already in durable storage into a live runtime (no re-upload).

        :param runtime_id: the runtime to receive the file.
        :param file_id: the durable file's id (from an upload or a collect).
        :param runtime_path: destination relative to the runtime workspace; default: chosen by BCTRL.
        :param name: the file's name in the runtime; default: the stored file's name.
        """
        return self._stage(StageArguments.check(runtime_id, file_id, runtime_path=runtime_path, name=name))

    def _stage(self, args: StageArguments) -> RuntimeStagedFile:
        response = self._request(
            "POST",
            f"/v1/runtimes/{_q(args.runtime_id)}/files/stage",
            operation="stage",
            json_body=args.json_body(),
        )
        staged = self._parse(response, "stage", RuntimeStagedFile.from_api)
        self._report_lineage(inputs=[StoredFileRef(args.file_id)])
        return staged

    def get_file(self, file_id: str) -> StoredFile:
        """The durable file's metadata (``GET /v1/files/{fileId}``)."""
        file_id = check_id(file_id, "file_id")
        response = self._request("GET", f"/v1/files/{_q(file_id)}", operation="get file")
        return self._parse(response, "get file", StoredFile.from_api)

    def download_file(
        self,
        file_id: str,
        destination: str | PathLike[str] | ObjectStoragePath,
        *,
        destination_conn_id: str | None = None,
    ) -> str:
        """Stream a durable file's bytes to a local path or object storage; return the destination URI.

        The bytes appear at the destination only once all of them arrived; a failed download leaves
        nothing behind. A break mid-way is retried from the start, up to ``max_retries`` times.

        :param file_id: the durable file's id.
        :param destination: a local file path, an existing local directory (the stored file's name
            is used), an :class:`~airflow.sdk.ObjectStoragePath`, or a URI such as ``s3://bucket/key``.
        :param destination_conn_id: Airflow connection for an object storage ``destination`` URI.
        :return: the URI written, e.g. ``file:///data/report.pdf`` or ``s3://bucket/report.pdf``.
        """
        return self._download(
            DownloadArguments.check(file_id, destination, destination_conn_id=destination_conn_id)
        )

    def _download(self, args: DownloadArguments) -> str:
        target = resolve_destination(
            args.destination, lambda: self.get_file(args.file_id).name, conn_id=args.destination_conn_id
        )
        # Held back like an upload's: a short download logs its summary line only.
        start = StartLine(
            self.log,
            PROGRESS_QUIET_SECONDS,
            lambda: ("Downloading file %s from %s to %s", args.file_id, self.settings.base_url, target.shown),
        )

        def attempt() -> str:
            with start.on_failure():  # before the retry's warning or the error
                response = self._request(
                    "GET",
                    f"/v1/files/{_q(args.file_id)}/content",
                    operation="download",
                    stream=True,
                    headers=CONTENT_HEADERS,
                    max_retries=0,  # the loop below repeats the whole transfer
                )
                return receive(
                    response,
                    target,
                    file_id=args.file_id,
                    settings=self.settings,
                    stored_size=lambda: self.get_file(args.file_id).size_bytes,
                    log=self.log,
                    quiet_seconds=PROGRESS_QUIET_SECONDS,
                    start=start,
                )

        # The same retry loop as every request, around the whole transfer: a break in the middle of
        # the body starts it again from the first byte, into a fresh temporary file.
        try:
            uri = self._with_retries("download", attempt)
        finally:
            start.drop()
        wrote = LocalFile(target.local_path) if target.local_path is not None else target.uri
        self._report_lineage(inputs=[StoredFileRef(args.file_id)], outputs=[wrote])
        return uri

    # ------------------------------------------------------------------ hook-level lineage

    def _report_lineage(
        self, *, inputs: Sequence[LineageItem] = (), outputs: Sequence[LineageItem] = ()
    ) -> None:
        """Tell Airflow's hook lineage collector what a finished call read and wrote (never raises)."""
        report_lineage(self, inputs=inputs, outputs=outputs, get_file=self.get_file, log=self.log)

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with one read-only whoami call, bounded by the timeout and never retried.

        :return: ``(True, "Connected ...")`` naming the organisation and default space, or
            ``(False, reason)`` saying whether the key, the permissions, the host or the server is at fault.
        """
        return check_connection(self)

    # ------------------------------------------------------------------ runtime lifecycle
    # BCTRL documents these endpoints outside the seed contract; see docs/operators/start_runtime.md.

    def start_runtime(self, runtime_id: str, *, idempotency_key: str | None = None) -> RuntimeStarted:
        """Start a runtime: open a new run, or answer the run it is already executing.

        Start is billable. With an ``idempotency_key`` every repeat answers the first call's run, so
        it is retried like a read; without one, only where the server cannot have acted. The answer's
        ``connect_url`` and ``webdriver_url`` are registered with Airflow's secret masker.

        :param runtime_id: the runtime to start.
        :param idempotency_key: a key unique to this logical start, e.g. derived from the task
            instance (``BctrlStartRuntimeOperator`` does that).
        :raises BctrlQuotaExceededError: 402, e.g. ``browser.concurrent_quota_exceeded``.
        :raises BctrlConflictError: 409, e.g. ``runtime.not_executable``.
        """
        runtime_id = check_id(runtime_id, "runtime_id")
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = check_idempotency_key(idempotency_key)
        response = self._request(
            "POST",
            f"/v1/runtimes/{_q(runtime_id)}/start",
            operation="start runtime",
            headers=headers,
            idempotent=idempotency_key is not None,
        )
        started: RuntimeStarted = self._parse(response, "start runtime", RuntimeStarted.from_api)
        for secret in (started.connect_url, started.webdriver_url):
            if secret:
                mask(secret)
        self.log.info(
            "Runtime %s: run %s is %s (%s)",
            runtime_id,
            started.run_id,
            started.status or "unknown",
            "started now" if started.started else "already running",
        )
        return started

    def stop_runtime(self, runtime_id: str) -> RuntimeStopped:
        """Stop a runtime's active run (``POST /v1/runtimes/{id}/stop``); retried like a read.

        :raises BctrlRuntimeNotActiveError: 409 ``runtime.not_active``: it was not running.
        """
        runtime_id = check_id(runtime_id, "runtime_id")
        response = self._request(
            "POST", f"/v1/runtimes/{_q(runtime_id)}/stop", operation="stop runtime", idempotent=True
        )
        stopped: RuntimeStopped = self._parse(response, "stop runtime", RuntimeStopped.from_api)
        self.log.info("Runtime %s stopped (run %s)", runtime_id, stopped.run_id)
        return stopped

    def get_runtime(self, runtime_id: str) -> Runtime:
        """The runtime's state (``GET /v1/runtimes/{id}``); ``active_run_id`` is None when stopped."""
        runtime_id = check_id(runtime_id, "runtime_id")
        response = self._request("GET", f"/v1/runtimes/{_q(runtime_id)}", operation="get runtime")
        return self._parse(response, "get runtime", Runtime.from_api)


def _q(value: str) -> str:
    """Quote an id for use as one URL path segment (nothing is safe, so '/' cannot split it)."""
    return quote(value, safe="")
