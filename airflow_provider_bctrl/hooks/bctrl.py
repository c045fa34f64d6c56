"""The BCTRL hook: an Airflow connection turned into an authenticated, pooled HTTP session.

Every API call goes through one path, :meth:`BctrlHook._request`, which applies the timeout, the
retry policy (:mod:`airflow_provider_bctrl._retry`) and the mapping of error responses onto the
exception hierarchy in :mod:`airflow_provider_bctrl.exceptions`.
"""

from __future__ import annotations

import ipaddress
import json
import mimetypes
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from airflow.providers.common.compat.sdk import BaseHook
from requests.auth import AuthBase
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from airflow_provider_bctrl import CONN_TYPE, DEFAULT_BASE_URL, DEFAULT_CONN_ID, __version__
from airflow_provider_bctrl._multipart import FileChangedError, StreamingMultipartBody
from airflow_provider_bctrl._progress import TransferProgress
from airflow_provider_bctrl._retry import (
    backoff_delay,
    parse_retry_after,
    status_is_retryable,
    transport_failure_is_retryable,
)
from airflow_provider_bctrl._storage import (
    Destination,
    resolve_destination,
    resolve_source,
)
from airflow_provider_bctrl._transport import BctrlHTTPAdapter
from airflow_provider_bctrl._validation import (
    check_artifact,
    check_id,
    check_json_object,
    check_name,
    check_runtime_path,
    check_runtime_source_path,
    check_storage_path,
)
from airflow_provider_bctrl.exceptions import (
    BctrlApiError,
    BctrlAuthError,
    BctrlConflictError,
    BctrlConnectionConfigError,
    BctrlInputError,
    BctrlInvalidRequestError,
    BctrlNotFoundError,
    BctrlRateLimitError,
    BctrlServerError,
    BctrlTransportError,
    BctrlUncertainServerError,
    BctrlUncertainTransportError,
    BctrlUnexpectedResponseError,
)
from airflow_provider_bctrl.models import CollectedFile, RuntimeStagedFile, StoredFile, WhoAmI

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

__all__ = ["BctrlConnectionSettings", "BctrlHook"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_RETRY_WAIT = 60.0
DEFAULT_BACKOFF_BASE = 0.5
#: Transfers shorter than this log only their summary line, no progress lines.
PROGRESS_QUIET_SECONDS = 2.0
#: Enough pooled connections for many threads sharing one hook without urllib3 discarding them.
POOL_SIZE = 32

_UNCERTAIN_SUFFIX = (
    " The server may have acted on the request, so it was not retried automatically "
    "(a blind retry could store the file twice); check the space's files before retrying."
)


@dataclass(frozen=True)
class BctrlConnectionSettings:
    """What the hook uses from the Airflow connection, parsed and checked.

    The API key is kept out of ``repr`` so the settings can be logged or shown safely.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    space_id: str | None
    subaccount_id: str | None
    connect_timeout: float
    read_timeout: float
    max_retries: int
    max_retry_wait: float
    allow_insecure_http: bool

    @property
    def timeout(self) -> tuple[float, float]:
        """The ``(connect, read)`` timeout pair given to requests."""
        return (self.connect_timeout, self.read_timeout)

    @property
    def origin(self) -> tuple[str, str, int]:
        """Scheme, host and port of the API: the only place the key is ever sent."""
        return _origin(self.base_url)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() in ("localhost", "localhost.localdomain") or hostname.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


class _BearerAuth(AuthBase):
    """Adds the API key to requests for the API's own origin, and to nothing else."""

    def __init__(self, api_key: str, origin: tuple[str, str, int]) -> None:
        self._api_key = api_key
        self._origin = origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.url and _origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def __repr__(self) -> str:
        return "<BearerAuth ***>"


def _extra_value(extra: Mapping[str, Any], key: str) -> Any:
    # Connections saved by older forms prefix extra fields with "extra__<conn_type>__".
    value = extra.get(key)
    if value in (None, ""):
        value = extra.get(f"extra__{CONN_TYPE}__{key}")
    return None if value == "" else value


def _extra_id(extra: Mapping[str, Any], key: str, conn_id: str) -> str | None:
    value = _extra_value(extra, key)
    if value is None:
        return None
    try:
        return check_id(str(value).strip(), f"Connection {conn_id!r}: extra field {key!r}")
    except BctrlInputError as exc:
        raise BctrlConnectionConfigError(str(exc)) from None


def _as_number(
    value: Any, key: str, conn_id: str, *, minimum: float, integer: bool, maximum: float | None = None
) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = int(value) if integer else float(value)
        if integer and isinstance(value, float) and value != int(value):
            raise ValueError
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise BctrlConnectionConfigError(
            f"Connection {conn_id!r}: extra field {key!r} must be {kind}, got {value!r}."
        ) from None
    if number < minimum:
        raise BctrlConnectionConfigError(
            f"Connection {conn_id!r}: extra field {key!r} must be at least {minimum:g}, got {number:g}."
        )
    if maximum is not None and number > maximum:
        raise BctrlConnectionConfigError(
            f"Connection {conn_id!r}: extra field {key!r} must be at most {maximum:g}, got {number:g}."
        )
    return number


def _as_bool(value: Any, key: str, conn_id: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise BctrlConnectionConfigError(f"Connection {conn_id!r}: extra field {key!r} must be true or false.")


def _normalise_base_url(
    host: str | None, port: int | None, conn_id: str, *, allow_insecure_http: bool
) -> str:
    raw = (host or "").strip()
    if not raw:
        return DEFAULT_BASE_URL
    if "://" not in raw:
        raw = f"https://{raw}"
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    shown = (
        raw
        if "@" not in parts.netloc
        else urlunsplit((parts.scheme, "***@" + parts.netloc.rsplit("@", 1)[1], parts.path, "", ""))
    )
    where = f"Connection {conn_id!r}: the API base URL {shown!r}"
    if scheme not in ("http", "https"):
        raise BctrlConnectionConfigError(
            f"{where} must start with https:// (or http:// for a local emulator)."
        )
    try:
        url_port = parts.port
    except ValueError:
        raise BctrlConnectionConfigError(f"{where} has an invalid port.") from None
    if not parts.hostname:
        raise BctrlConnectionConfigError(f"{where} has no host name.")
    if parts.username or parts.password:
        raise BctrlConnectionConfigError(
            f"{where} must not contain credentials; put the API key in the key field."
        )
    if parts.query or parts.fragment:
        raise BctrlConnectionConfigError(f"{where} must not have a query string or fragment.")
    if scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure_http:
        raise BctrlConnectionConfigError(
            f"{where} uses plain http:// to a host that is not on this machine, which would send the API "
            "key unencrypted. Use https://, or set the extra field allow_insecure_http to true if the "
            "network is private."
        )
    netloc = parts.netloc
    if url_port is None and port:
        netloc = f"{netloc}:{int(port)}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


class BctrlHook(BaseHook):
    """Talk to the BCTRL API with the credentials of an Airflow connection.

    The connection (type ``bctrl``) holds the API key in its password field and the API base URL in
    its host field (``https://api.bctrl.ai`` when empty). Extra fields: ``space_id`` (default space
    for collect), ``subaccount_id`` (sent as ``BCTRL-Subaccount-Id``), ``timeout`` (seconds),
    ``max_retries``, ``max_retry_wait`` (seconds) and ``allow_insecure_http``.

    One :class:`requests.Session` is created lazily per hook and reused for every call, so several
    calls share pooled connections. The hook is safe to share between threads.

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
        """The Airflow connection ``conn_id``; on Airflow 3.0-3.2 its key never reaches ``dag.test()``'s debug log."""
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
        self._timeout_override = timeout
        self._max_retries_override = max_retries
        self._max_retry_wait_override = max_retry_wait
        self.backoff_base = backoff_base
        self._lock = threading.RLock()
        self._space_lock = threading.Lock()
        self._settings: BctrlConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._default_space_id: str | None = None
        #: Seconds slept before each retry by this hook, in order; useful in logs and tests.
        self.retry_waits: list[float] = []
        self._sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ connection and session

    @property
    def settings(self) -> BctrlConnectionSettings:
        """The connection's settings, read once and checked (raises on a missing or unusable connection)."""
        settings = self._settings
        if settings is not None:  # the common case takes no lock: threads never queue behind each other
            return settings
        with self._lock:
            if self._settings is None:
                self._settings = self._load_settings()
            return self._settings

    def _load_settings(self) -> BctrlConnectionSettings:
        conn_id = self.bctrl_conn_id
        if not isinstance(conn_id, str) or not conn_id.strip():
            raise BctrlConnectionConfigError("bctrl_conn_id is empty: name the Airflow connection to use.")
        try:
            conn = self.get_connection(conn_id)
        except Exception as exc:
            if type(exc).__name__ in (
                "AirflowNotFoundException",
                "ConnectionNotFound",
            ) or "not defined" in str(exc):
                raise BctrlConnectionConfigError(
                    f"The Airflow connection {conn_id!r} does not exist. Create a connection of type "
                    f"'{CONN_TYPE}' with that id, or set AIRFLOW_CONN_{conn_id.upper()}."
                ) from None
            raise
        api_key = (conn.password or "").strip()
        if not api_key:
            raise BctrlConnectionConfigError(
                f"Connection {conn_id!r} has no API key: put your BCTRL API key (bctrl_...) in the "
                "connection's API key (password) field."
            )
        _mask(api_key)
        if not (api_key.isascii() and api_key.isprintable()) or any(ch.isspace() for ch in api_key):
            # Caught here, never echoed: requests would fail later with the key in its message.
            raise BctrlConnectionConfigError(
                f"Connection {conn_id!r}: the API key contains characters that cannot be sent in an HTTP "
                "header (spaces, line breaks or non-ASCII characters, often from copy and paste); "
                "paste the key again."
            )
        extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
        insecure_value = _extra_value(extra, "allow_insecure_http")
        allow_insecure = (
            False if insecure_value is None else _as_bool(insecure_value, "allow_insecure_http", conn_id)
        )
        base_url = _normalise_base_url(conn.host, conn.port, conn_id, allow_insecure_http=allow_insecure)

        # The connection's extras follow the form's limits (CONN_FIELDS); the hook's own arguments
        # may go finer (sub-second timeouts are useful in tests) but stay positive.
        read_timeout = DEFAULT_TIMEOUT
        if self._timeout_override is not None:
            read_timeout = _as_number(
                self._timeout_override, "timeout", conn_id, minimum=0.001, integer=False
            )
        elif (value := _extra_value(extra, "timeout")) is not None:
            read_timeout = _as_number(value, "timeout", conn_id, minimum=1, integer=False, maximum=3600)
        max_retries = DEFAULT_MAX_RETRIES
        if self._max_retries_override is not None:
            max_retries = int(
                _as_number(self._max_retries_override, "max_retries", conn_id, minimum=0, integer=True)
            )
        elif (value := _extra_value(extra, "max_retries")) is not None:
            max_retries = int(_as_number(value, "max_retries", conn_id, minimum=0, integer=True, maximum=20))
        max_retry_wait = DEFAULT_MAX_RETRY_WAIT
        if self._max_retry_wait_override is not None:
            max_retry_wait = _as_number(
                self._max_retry_wait_override, "max_retry_wait", conn_id, minimum=0, integer=False
            )
        elif (value := _extra_value(extra, "max_retry_wait")) is not None:
            max_retry_wait = _as_number(
                value, "max_retry_wait", conn_id, minimum=1, integer=False, maximum=3600
            )
        space_id = _extra_id(extra, "space_id", conn_id)
        subaccount_id = _extra_id(extra, "subaccount_id", conn_id)
        return BctrlConnectionSettings(
            conn_id=conn_id,
            base_url=base_url,
            api_key=api_key,
            space_id=space_id,
            subaccount_id=subaccount_id,
            connect_timeout=min(DEFAULT_CONNECT_TIMEOUT, read_timeout),
            read_timeout=read_timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            allow_insecure_http=allow_insecure,
        )

    @property
    def session(self) -> requests.Session:
        """The hook's HTTP session, created on first use with auth, User-Agent and pooling set up."""
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                settings = self.settings
                session = requests.Session()
                adapter = BctrlHTTPAdapter(pool_connections=2, pool_maxsize=POOL_SIZE, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.auth = _BearerAuth(settings.api_key, settings.origin)
                session.headers["User-Agent"] = f"airflow-provider-bctrl/{__version__}"
                session.headers["Accept"] = "application/json"
                if settings.subaccount_id:
                    session.headers["BCTRL-Subaccount-Id"] = settings.subaccount_id
                _settle_environment(session, settings.base_url)
                self._session = session
            return self._session

    def get_conn(self) -> requests.Session:
        """Return the hook's :class:`requests.Session` (Airflow's conventional hook accessor)."""
        return self.session

    def close(self) -> None:
        """Close the session and its pooled connections. The hook can be used again afterwards."""
        with self._lock:
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
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        max_retries: int | None = None,
    ) -> requests.Response:
        """Send one API request with the retry policy; return a successful response or raise.

        :param operation: a short name for messages and logs, e.g. ``"upload"``.
        :param body_factory: builds a fresh streaming body for every attempt (uploads).
        """
        settings = self.settings
        session = self.session
        url = settings.base_url + path
        idempotent = method.upper() in ("GET", "HEAD")
        retries = settings.max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            attempt += 1
            try:
                body = body_factory() if body_factory is not None else None
            except OSError as exc:  # the source vanished or became unreadable between attempts
                raise BctrlInputError(f"The file to {operation} can no longer be read: {exc}") from exc
            request_headers = dict(headers or {})
            if body is not None:
                request_headers["Content-Type"] = body.content_type
            try:
                response = session.send(
                    _prepare(
                        session, method, url, request_headers, params=params, json_body=json_body, body=body
                    ),
                    timeout=settings.timeout,
                    allow_redirects=idempotent,
                    stream=stream,
                    proxies=_proxies(session),
                    verify=session.verify,
                    cert=session.cert,
                )
            except requests.RequestException as exc:
                changed = _cause_of_type(exc, FileChangedError)
                if changed is not None:
                    # The local file changed mid-send; the body was cut short, so the server cannot
                    # have stored it. Retrying would race the writer again: say what happened.
                    raise BctrlInputError(
                        f"{changed} (during {operation}). The upload was abandoned and nothing was stored; "
                        "upload the file once whatever writes it has finished."
                    ) from exc
                never_sent = _never_sent(exc)
                error = self._transport_error(exc, operation, uncertain=not (idempotent or never_sent))
                retryable = transport_failure_is_retryable(
                    tls=isinstance(exc, requests.exceptions.SSLError),
                    idempotent=idempotent,
                    never_sent=never_sent,
                )
                if not retryable or attempt > retries:
                    # No chained cause: urllib3's frames hold the Authorization header in their locals,
                    # and Airflow 3.0's console traceback prints frame locals unredacted.
                    raise error from None
                self._wait_before_retry(operation, attempt, retries, str(error), None)
                continue
            finally:
                if body is not None:
                    body.close()

            if response.status_code < 300:
                return response
            error = self._api_error(response, operation, idempotent=idempotent)
            if attempt <= retries and status_is_retryable(response.status_code, idempotent=idempotent):
                response.close()
                self._wait_before_retry(operation, attempt, retries, str(error), error.retry_after)
                continue
            response.close()
            raise error

    def _wait_before_retry(
        self, operation: str, attempt: int, retries: int, reason: str, retry_after: float | None
    ) -> None:
        if retry_after is not None:
            wait = min(retry_after, self.settings.max_retry_wait)
        else:
            wait = backoff_delay(attempt, base=self.backoff_base, cap=self.settings.max_retry_wait)
        self.log.warning(
            "BCTRL %s attempt %d of %d failed: %s Retrying in %.2f s.",
            operation,
            attempt,
            retries + 1,
            reason,
            wait,
        )
        self.retry_waits.append(wait)
        self._sleep(wait)

    def _redact(self, text: str) -> str:
        key = self._settings.api_key if self._settings is not None else None
        return text.replace(key, "***") if key else text

    def _api_error(self, response: requests.Response, operation: str, *, idempotent: bool) -> BctrlApiError:
        status = response.status_code
        payload = _json_or_none(response)
        request_id = response.headers.get("X-Request-Id")
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        uncertain = not idempotent and status in (500, 502, 504)
        code: str | None
        error_text: str | None
        hint: str | None
        reason_class: str | None
        details: Mapping[str, Any] | None = None
        if isinstance(payload, Mapping) and isinstance(payload.get("code"), str):
            code = payload["code"]
            error_text = str(payload.get("error") or "").strip() or "(no message)"
            hint = payload.get("hint") if isinstance(payload.get("hint"), str) else None
            reason_class = payload.get("reasonClass") if isinstance(payload.get("reasonClass"), str) else None
            request_id = payload.get("requestId") if isinstance(payload.get("requestId"), str) else request_id
            details = payload.get("details") if isinstance(payload.get("details"), Mapping) else None
            message = f"BCTRL API {status} {code}: {error_text}"
            if hint:
                message = f"{message.rstrip('.')}. Hint: {hint}"
        else:
            code = error_text = hint = reason_class = None
            content_type = response.headers.get("Content-Type", "no content type").split(";")[0]
            snippet = " ".join(response.text[:200].split()) if response.content else ""
            message = f"BCTRL API {status} during {operation}: the response was not a BCTRL error object ({content_type})"
            if snippet:
                message += f": {snippet!r}"
        if request_id:
            message += f" (request id {request_id})"
        if uncertain:
            message += "." + _UNCERTAIN_SUFFIX
        cls = _error_class(status, uncertain=uncertain, envelope=code is not None)
        return cls(
            self._redact(message),
            status=status,
            code=code,
            error=error_text,
            reason_class=reason_class,
            hint=hint,
            request_id=request_id,
            details=details,
            retry_after=retry_after,
        )

    def _transport_error(
        self, exc: requests.RequestException, operation: str, *, uncertain: bool
    ) -> BctrlApiError:
        settings = self.settings
        where = settings.base_url
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            message = f"Timed out after {settings.connect_timeout:g} s connecting to BCTRL at {where} ({operation})."
        elif isinstance(exc, requests.exceptions.ReadTimeout):
            message = f"BCTRL at {where} did not answer within {settings.read_timeout:g} s ({operation})."
        elif isinstance(exc, requests.exceptions.SSLError):
            message = f"TLS handshake with {where} failed ({operation}): {_short_reason(exc)}."
        elif _never_sent(exc):
            message = f"Could not connect to BCTRL at {where} ({operation}): {_short_reason(exc)}."
        else:
            message = f"The connection to BCTRL at {where} failed during {operation}: {_short_reason(exc)}."
        if uncertain:
            message += _UNCERTAIN_SUFFIX
        cls = BctrlUncertainTransportError if uncertain else BctrlTransportError
        return cls(self._redact(message))

    def _json_object(self, response: requests.Response, operation: str) -> dict[str, Any]:
        payload = _json_or_none(response)
        if not isinstance(payload, dict):
            content_type = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise BctrlUnexpectedResponseError(
                f"BCTRL API {response.status_code} during {operation}: expected a JSON object, got "
                f"{content_type}. Is the connection's API base URL ({self.settings.base_url}) a BCTRL API?",
                status=response.status_code,
                request_id=response.headers.get("X-Request-Id"),
            )
        return payload

    def _parse(
        self, response: requests.Response, operation: str, build: Callable[[dict[str, Any]], Any]
    ) -> Any:
        payload = self._json_object(response, operation)
        try:
            return build(payload)
        except (KeyError, TypeError, AttributeError) as exc:
            problem = f"lacks the key {exc}" if isinstance(exc, KeyError) else f"is malformed: {exc}"
            raise BctrlUnexpectedResponseError(
                f"BCTRL API {response.status_code} during {operation}: the response {problem} "
                f"(request id {response.headers.get('X-Request-Id')}).",
                status=response.status_code,
                request_id=response.headers.get("X-Request-Id"),
            ) from None

    # ------------------------------------------------------------------ API methods

    def whoami(self, *, max_retries: int | None = None) -> WhoAmI:
        """Who the API key belongs to: organisation, default space, scope (``GET /v1/auth/whoami``)."""
        response = self._request("GET", "/v1/auth/whoami", operation="whoami", max_retries=max_retries)
        return self._parse(response, "whoami", WhoAmI.from_api)

    def get_default_space_id(self) -> str:
        """The space collect uses when none is given: the connection's ``space_id``, else whoami's default.

        The whoami lookup happens at most once per hook.
        """
        if self.settings.space_id:
            return self.settings.space_id
        if self._default_space_id is not None:
            return self._default_space_id
        # Its own lock, so the whoami call (and its retries) never blocks other calls on this hook.
        with self._space_lock:
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
        """Upload a file into a live runtime's workspace (it is also kept as a durable space file).

        The file is streamed, never read whole into memory, with an exact ``Content-Length``. Each
        retry (only on 429/503 or a refused connection) reopens it and starts again.

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
        runtime_id = check_id(runtime_id, "runtime_id")
        origin = resolve_source(source, conn_id=source_conn_id)
        filename = check_name(name) if name is not None else check_name(origin.name, "the source file name")
        fields: list[tuple[str, str]] = []
        if name is not None:
            fields.append(("name", name))
        elif '"' in filename:
            # The file part's filename="..." escapes a quote as %22 (HTML5 rules), which a server may
            # keep literally; the name part carries the exact name.
            fields.append(("name", filename))
        if runtime_path is not None:
            fields.append(("runtimePath", check_runtime_path(runtime_path)))
        if destination_path is not None:
            fields.append(("destinationPath", check_storage_path(destination_path, "destination_path")))
        if metadata is not None:
            document = check_json_object(metadata, "metadata")
            fields.append(("metadata", json.dumps(document, separators=(",", ":"), ensure_ascii=False)))
        content_type = guess_content_type(filename)
        settings = self.settings  # connection problems surface before the file is opened

        progress: TransferProgress | None = None

        def build_body() -> StreamingMultipartBody:
            nonlocal progress
            body = StreamingMultipartBody(
                fields=fields,
                file_field="file",
                stream=origin.open(),
                # A local file is sized again when opened, so one that changed since is caught.
                size=None if origin.local_path is not None else origin.size,
                filename=filename,
                content_type=content_type,
            )
            progress = TransferProgress(
                self.log, f"Upload of {filename}", body.file_size, quiet_seconds=PROGRESS_QUIET_SECONDS
            )
            body.on_progress = progress.update  # a fresh counter per attempt
            return body

        self.log.info(
            "Uploading %s (%d bytes) into runtime %s at %s",
            origin.uri,
            origin.size,
            runtime_id,
            settings.base_url,
        )
        response = self._request(
            "POST", f"/v1/runtimes/{_q(runtime_id)}/files/upload", operation="upload", body_factory=build_body
        )
        staged: RuntimeStagedFile | None = None
        try:
            staged = self._parse(response, "upload", RuntimeStagedFile.from_api)
        finally:
            # The summary is logged even when the answer cannot be parsed: the bytes did go.
            if progress is not None:
                progress.finish(_upload_outcome(staged))
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
        runtime_id = check_id(runtime_id, "runtime_id")
        body: dict[str, Any] = {"path": check_runtime_source_path(path, "path")}
        if storage_path is not None:
            body["storagePath"] = check_storage_path(storage_path, "storage_path")
        if name is not None:
            body["name"] = check_name(name)
        if artifact is not None:
            body["artifact"] = check_artifact(artifact)
        space = check_id(space_id, "space_id") if space_id is not None else self.get_default_space_id()
        self.log.info("Collecting %s from runtime %s into space %s", path, runtime_id, space)
        response = self._request(
            "POST",
            f"/v1/spaces/{_q(space)}/runtimes/{_q(runtime_id)}/files/collect",
            operation="collect",
            json_body=body,
        )
        collected: CollectedFile = self._parse(response, "collect", CollectedFile.from_api)
        self.log.info(
            "Collected file %s%s",
            collected.file.id,
            f" as artifact {collected.artifact.id}" if collected.artifact else "",
        )
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
        runtime_id = check_id(runtime_id, "runtime_id")
        body: dict[str, Any] = {"fileId": check_id(file_id, "file_id")}
        if runtime_path is not None:
            body["runtimePath"] = check_runtime_path(runtime_path)
        if name is not None:
            body["name"] = check_name(name)
        response = self._request(
            "POST", f"/v1/runtimes/{_q(runtime_id)}/files/stage", operation="stage", json_body=body
        )
        return self._parse(response, "stage", RuntimeStagedFile.from_api)

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

        The bytes go to a temporary sibling first and are moved into place only when all of them
        arrived (the count is checked against ``Content-Length``), so a failed download never leaves
        a half file behind and never clobbers an existing one. A download that breaks off mid-way is
        retried from the start (it is a read), up to ``max_retries`` times.

        :param file_id: the durable file's id.
        :param destination: a local file path, an existing local directory (the stored file's name
            is used), an :class:`~airflow.sdk.ObjectStoragePath`, or a URI such as ``s3://bucket/key``.
        :param destination_conn_id: Airflow connection for an object storage ``destination`` URI.
        :return: the URI written, e.g. ``file:///data/report.pdf`` or ``s3://bucket/report.pdf``.
        """
        file_id = check_id(file_id, "file_id")
        target = resolve_destination(
            destination, lambda: self.get_file(file_id).name, conn_id=destination_conn_id
        )
        # One retry loop for the whole download (a read, so everything transient is retried): a break
        # in the middle of the body starts it again from the first byte, into a fresh temporary file.
        retries = self.settings.max_retries
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._download_once(file_id, target)
            except BctrlApiError as exc:
                retryable = (
                    isinstance(exc, BctrlTransportError)
                    and transport_failure_is_retryable(
                        tls=isinstance(exc.__cause__, requests.exceptions.SSLError),
                        idempotent=True,
                        never_sent=False,
                    )
                ) or (exc.status is not None and status_is_retryable(exc.status, idempotent=True))
                if not retryable or attempt > retries:
                    raise
                self._wait_before_retry("download", attempt, retries, str(exc), exc.retry_after)

    def _download_once(self, file_id: str, target: Destination) -> str:
        response = self._request(
            "GET",
            f"/v1/files/{_q(file_id)}/content",
            operation="download",
            stream=True,
            # The bytes as stored: no transparent decompression, so Content-Length counts what we read.
            headers={"Accept": "*/*", "Accept-Encoding": "identity"},
            max_retries=0,  # download_file's own loop retries the whole transfer
        )
        expected = _int_header(response, "Content-Length")
        progress = TransferProgress(
            self.log, f"Download of {file_id}", expected or 0, quiet_seconds=PROGRESS_QUIET_SECONDS
        )
        received = 0
        try:
            with target.atomic_writer() as out:
                for chunk in response.iter_content(chunk_size=1024 * 1024):
                    out.write(chunk)
                    received += len(chunk)
                    if expected:
                        progress.update(received)
                if expected is not None and received != expected:
                    raise BctrlTransportError(
                        f"The download of {file_id} ended after {received} of {expected} bytes; "
                        "nothing was written."
                    )
        except requests.RequestException as exc:
            raise self._transport_error(exc, "download", uncertain=False) from None  # see _request
        finally:
            response.close()
        progress.done = received
        progress.finish(f"written to {target.uri}")
        return target.uri

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with one read-only whoami call, bounded by the timeout and never retried.

        :return: ``(True, "Connected ...")`` naming the organisation and default space, or
            ``(False, reason)`` saying whether the key, the permissions, the host or the server is at fault.
        """
        try:
            settings = self.settings
            who = self.whoami(max_retries=0)
        except BctrlConnectionConfigError as exc:
            return False, str(exc)
        except BctrlAuthError as exc:
            # The API's own words and the request id; its hint is written for raw API users.
            said = f"{exc.error or 'no message'} (request id {exc.request_id or 'unknown'})"
            if exc.status == 403:
                return (
                    False,
                    f"The API key is not allowed to use this API (403 {exc.code or 'forbidden'}): {said}",
                )
            return (
                False,
                f"BCTRL rejected the API key (401 {exc.code or 'unauthorized'}): check the API key field. {said}",
            )
        except BctrlTransportError as exc:
            cause = exc.__cause__
            if isinstance(cause, requests.exceptions.Timeout):
                return False, f"Timed out: {exc}"
            if cause is None or _never_sent(cause):
                return False, f"Host unreachable: {exc}"
            # The TCP connection was made, so "unreachable" would send the user to the wrong place:
            # something answered that is not an HTTP(S) API, or the connection broke mid-answer.
            return False, f"Host reached, but it gave no valid HTTP answer: {exc}"
        except BctrlUnexpectedResponseError as exc:
            return False, f"Not a BCTRL API: {exc}"
        except (BctrlRateLimitError, BctrlServerError) as exc:
            # 429 or 5xx, with or without BCTRL's error object: a gateway in front of an outage answers
            # in its own format, and the base URL may well be right.
            return False, f"BCTRL is unavailable right now, try again later: {exc}"
        except BctrlApiError as exc:
            if exc.code is None:
                return False, f"Not a BCTRL API: {exc}"
            return False, str(exc)
        if not (who.organization_id or who.default_space_id):
            return False, (
                f"Not a BCTRL API: {settings.base_url} answered whoami without an organisation or default "
                "space. Check the API base URL."
            )
        message = (
            f"Connected to BCTRL at {settings.base_url}: organisation {who.organization_id or '?'}, "
            f"default space {who.default_space_id or '(none)'}"
            + (f", subaccount {who.subaccount_id}" if who.subaccount_id else "")
            + "."
        )
        # `airflow connections test` prints only "Connection success!"; with -v it shows this log line.
        self.log.info("%s", message)
        return True, message


# ---------------------------------------------------------------------- helpers


def guess_content_type(filename: str) -> str:
    """The file part's ``Content-Type`` from the name's extension, ``application/octet-stream`` if unknown.

    Uses Python's built-in table only, not the machine's ``/etc/mime.types``: the same file gets the
    same type on every worker, and the first upload in a process does not pay ~15 ms to parse that
    file (measured in benchmarks/upload.py).
    """
    extension = os.path.splitext(filename)[1].lower()
    return _BUILTIN_TYPES.get(extension) or "application/octet-stream"


_BUILTIN_TYPES: dict[str, str] = {
    **mimetypes.MimeTypes(filenames=()).types_map[True],
    # Common in pipelines but missing from Python's built-in table.
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".parquet": "application/vnd.apache.parquet",
    ".gz": "application/gzip",
    ".jsonl": "application/jsonl",
    ".ndjson": "application/x-ndjson",
    ".md": "text/markdown",
    ".webp": "image/webp",
}


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


def _settle_environment(session: requests.Session, base_url: str) -> None:
    """Read the proxy and CA-bundle environment once, for the API's URL, instead of on every request.

    requests re-reads ``HTTP(S)_PROXY``/``NO_PROXY``/``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (and
    ``~/.netrc``) for each request when ``trust_env`` is on, which costs more than the rest of a small
    request (measured in benchmarks/). The values are the same for the hook's lifetime, so they are
    resolved here with requests' own rules and ``trust_env`` is turned off. Authorization comes from
    the connection, never from ``.netrc``.
    """
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


def _upload_outcome(staged: RuntimeStagedFile | None) -> str:
    """The end of an upload's summary line: where the file went, as far as the answer says."""
    if staged is None:
        return "the answer could not be read"
    where = f", runtime path {staged.runtime_path}" if staged.runtime_path else ""
    return f"stored as file {staged.id}{where}"


def _proxies(session: requests.Session) -> dict[str, str]:
    """The session's proxies without ``None`` entries (``{"http": None}`` falls through to ``all``)."""
    return {scheme: proxy for scheme, proxy in session.proxies.items() if proxy is not None}


def _prepare(
    session: requests.Session,
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    params: Mapping[str, Any] | None,
    json_body: Mapping[str, Any] | None,
    body: StreamingMultipartBody | None,
) -> requests.PreparedRequest:
    """Prepare a request from the hook's session as ``Session.request`` does, without its generic merging.

    ``Session.prepare_request`` merges the session's headers, params, cookies and hooks into every
    request through requests' general-purpose helpers, whose runtime protocol checks make that merge
    the costliest step of preparing a request (about 0.5 ms on a process's first request, measured with
    benchmarks/upload.py). The same rules are applied here directly: the request's headers and params
    win over the session's, a ``None`` value removes a header or param (requests' documented way to
    drop a default header), the session's cookies are sent, and ``Session.send`` runs its hooks.

    A streaming body is attached after preparing, with its exact ``Content-Length``: requests would only
    inspect it to learn what is already known, and its first such inspection in a process checks the
    body's type against every ``Mapping`` subclass loaded (about 0.25 ms with Airflow imported).
    """
    merged_headers = CaseInsensitiveDict(session.headers)
    merged_headers.update(headers)
    # The hook's own params never hold None; a session with params of its own gets requests' merge.
    query = merge_setting(params, session.params) if session.params else params
    prepared = requests.PreparedRequest()
    prepared.prepare(
        method=method,
        url=url,
        headers={name: value for name, value in merged_headers.items() if value is not None},
        data={},  # "no form data", as Session.request passes it (None would cost an ABC scan)
        json=json_body,
        params=query,
        auth=session.auth,
        cookies=session.cookies.copy() if len(session.cookies) else None,
        hooks=session.hooks,
    )
    if body is not None:
        prepared.body = body  # type: ignore[assignment]  # an iterable body, as requests allows
        prepared.headers["Content-Length"] = str(len(body))
    return prepared


def _q(value: str) -> str:
    """Quote an id for use as one URL path segment (nothing is safe, so '/' cannot split it)."""
    return quote(value, safe="")


def _mask(secret: str) -> None:
    # Airflow already masks connection passwords it hands out; this also covers keys set another way.
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(secret)


def _json_or_none(response: requests.Response) -> Any:
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type.lower():
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _cause_of_type(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """Find ``kind`` among an exception's args, causes and contexts (urllib3 wraps what a body raised)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        stack.extend([current.__cause__, current.__context__, *current.args])
        stack.append(getattr(current, "reason", None))
    return None


def _never_sent(exc: BaseException) -> bool:
    """Whether a requests failure happened before the request reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, requests.exceptions.SSLError
    ):
        reason: Any = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


def _short_reason(exc: BaseException) -> str:
    reason: Any = exc.args[0] if exc.args else exc
    if isinstance(reason, MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    text = str(reason)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "Connection reset",
        "Remote end closed",
    ):
        if marker in text:
            return marker.lower() if marker != "Remote end closed" else "the server closed the connection"
    if isinstance(reason, BaseException) and reason.args and isinstance(reason.args[0], str):
        return reason.args[0]
    return text[:200]


def _error_class(status: int, *, uncertain: bool, envelope: bool) -> type[BctrlApiError]:
    if uncertain:
        return BctrlUncertainServerError
    if not envelope and status < 500 and status != 429:
        # A 4xx page that is not a BCTRL error object (a wrong base URL, a proxy): saying "not found"
        # would send the user looking for a missing runtime instead of fixing the URL.
        return BctrlUnexpectedResponseError
    if status in (401, 403):
        return BctrlAuthError
    if status == 404:
        return BctrlNotFoundError
    if status == 409:
        return BctrlConflictError
    if status == 429:
        return BctrlRateLimitError
    if status >= 500:
        return BctrlServerError
    if 400 <= status < 500:
        return BctrlInvalidRequestError
    return BctrlUnexpectedResponseError
