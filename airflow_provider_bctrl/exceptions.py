"""The errors the BCTRL provider raises.

Every failure that comes from the BCTRL API (or from trying to reach it) is a :class:`BctrlApiError`,
an :class:`~airflow.exceptions.AirflowException`, so Airflow marks the task failed and applies the
task's own ``retries``. Callers branch on the subclass, never on the message text::

    try:
        hook.collect_file(runtime_id, "/tmp/out/report.pdf")
    except BctrlNotFoundError:
        ...  # the runtime is gone or the file was never produced

Bad arguments are refused before any request with :class:`BctrlInputError` (also a ``ValueError``),
and a connection that cannot be used raises :class:`BctrlConnectionConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

if TYPE_CHECKING:
    import requests

__all__ = [
    "BctrlApiError",
    "BctrlAuthError",
    "BctrlConflictError",
    "BctrlConnectionConfigError",
    "BctrlError",
    "BctrlFileWaitTimeoutError",
    "BctrlInputError",
    "BctrlInvalidRequestError",
    "BctrlNotFoundError",
    "BctrlQuotaExceededError",
    "BctrlRateLimitError",
    "BctrlRuntimeNotActiveError",
    "BctrlServerError",
    "BctrlTransportError",
    "BctrlUncertainOutcomeError",
    "BctrlUncertainServerError",
    "BctrlUncertainTransportError",
    "BctrlUnexpectedResponseError",
]


class BctrlError(AirflowException):
    """Root of every error this provider raises."""


class BctrlInputError(BctrlError, ValueError):
    """An argument is invalid; raised before any request is sent. The message says what to fix."""


class BctrlConnectionConfigError(BctrlError, ValueError):
    """The Airflow connection is missing or cannot be used (no API key, bad base URL, ...)."""


class BctrlUnsupportedError(BctrlError):
    """A feature the installed Airflow line cannot give (``docs/installation.md``), refused at DAG parse time.

    Not a ``ValueError`` on purpose: Airflow 2.11 turns a ``ValueError`` from a URI handler into a warning.
    """


class BctrlApiError(BctrlError):
    """The BCTRL API answered with an error, or could not be reached.

    :ivar status: HTTP status code, or ``None`` when no response arrived.
    :ivar code: the API's dot-namespaced error code, e.g. ``runtime.not_found``.
    :ivar error: the API's human-readable message.
    :ivar reason_class: the API's stable category (``invalid_input``, ``rate_limited``, ...).
    :ivar hint: the API's suggested next action, when it gives one.
    :ivar request_id: the id to quote to BCTRL support.
    :ivar details: structured context from the API (a dict, possibly empty).
    :ivar retry_after: seconds the server asked to wait (429/503), when it said.
    :ivar retryable: whether the hook's retry policy may repeat the call that failed like this.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        error: str | None = None,
        reason_class: str | None = None,
        hint: str | None = None,
        request_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.error = error
        self.reason_class = reason_class
        self.hint = hint
        self.request_id = request_id
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after
        self.retryable = retryable

    @property
    def message(self) -> str:
        """The full message, as shown in the task log."""
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes must survive pickling (Airflow ships exceptions between processes).
        return (_rebuild_api_error, (type(self), self.message, self.__dict__.copy()))


def _rebuild_api_error(cls: type[BctrlApiError], message: str, state: dict[str, Any]) -> BctrlApiError:
    err = cls.__new__(cls)
    BctrlError.__init__(err, message)
    err.__dict__.update(state)
    return err


class BctrlAuthError(BctrlApiError):
    """401 (missing or wrong API key) or 403 (the key may not access this resource)."""


class BctrlNotFoundError(BctrlApiError):
    """404: the runtime, space, file or runtime path does not exist (see ``code``)."""


class BctrlInvalidRequestError(BctrlApiError):
    """400/422: the API refused the request as invalid (see ``code`` and ``details``)."""


class BctrlConflictError(BctrlInvalidRequestError):
    """409: the request conflicts with existing state, e.g. ``storage_file.path_exists``."""


class BctrlRateLimitError(BctrlApiError):
    """429: rate limited, and the retries allowed were used up. ``retry_after`` says how long to wait."""


class BctrlServerError(BctrlApiError):
    """5xx: BCTRL or one of its upstreams failed."""


class BctrlUnexpectedResponseError(BctrlApiError):
    """The server answered, but not like the BCTRL API (wrong content type, unparseable body)."""


class BctrlTransportError(BctrlApiError):
    """The request could not be completed at the network level (refused, timed out, reset)."""


class BctrlUncertainOutcomeError(BctrlApiError):
    """A non-idempotent request (upload, stage, collect) failed after the server may have acted.

    It is not retried automatically: the contract has no idempotency key for these calls, so a blind
    retry could store a second durable file. Check the space's files before retrying, or leave it to
    the task's own ``retries``. Raised as one of the two concrete kinds below, so ``except
    BctrlServerError`` and ``except BctrlTransportError`` keep working as well.
    """


class BctrlUncertainServerError(BctrlServerError, BctrlUncertainOutcomeError):
    """500/502/504 on upload, stage or collect: the server may have stored the file anyway."""


class BctrlUncertainTransportError(BctrlTransportError, BctrlUncertainOutcomeError):
    """The connection failed after the request went out (read timeout, reset mid-response)."""


# ------------------------------------------------------------------ runtime lifecycle and waiting


class BctrlQuotaExceededError(BctrlApiError):
    """402: a plan limit was reached, e.g. ``browser.concurrent_quota_exceeded`` when starting a runtime."""


class BctrlRuntimeNotActiveError(BctrlConflictError):
    """409 ``runtime.not_active``: the runtime is stopped, so its files cannot be used (start it first).

    Stopping a runtime that is already stopped answers this too; ``BctrlStopRuntimeOperator`` treats
    that as success.
    """


class BctrlFileWaitTimeoutError(BctrlError):
    """A collect with ``wait_for_file=True`` gave up: the runtime had no file at the path in time."""


# ---------------------------------------------------------------------- mapping failures onto the errors
# requests is imported inside these functions: this module is imported when DAG files are parsed.

UNCERTAIN_SUFFIX = (
    " The server may have acted on the request, so it was not retried automatically "
    "(a blind retry could store the file twice); check the space's files before retrying."
)


def error_from_response(
    status: int,
    payload: Any,
    *,
    headers: Mapping[str, str],
    text: str,
    operation: str,
    idempotent: bool,
) -> BctrlApiError:
    """The typed error for an error response; ``payload`` is its parsed JSON (already redacted) or None.

    A 500/502/504 on a POST is "uncertain" (the server may have acted); see ``docs/hook.md``.
    """
    from airflow_provider_bctrl._retry import parse_retry_after, status_is_retryable

    request_id = headers.get("X-Request-Id")
    uncertain = not idempotent and status in (500, 502, 504)
    code = error = hint = reason_class = None
    details: Mapping[str, Any] | None = None
    if isinstance(payload, Mapping) and isinstance(payload.get("code"), str):
        code = payload["code"]
        error = str(payload.get("error") or "").strip() or "(no message)"
        hint = _str_or_none(payload.get("hint"))
        reason_class = _str_or_none(payload.get("reasonClass"))
        request_id = _str_or_none(payload.get("requestId")) or request_id
        details = payload.get("details") if isinstance(payload.get("details"), Mapping) else None
        message = f"BCTRL API {status} {code}: {error}"
        if hint:
            message = f"{message.rstrip('.')}. Hint: {hint}"
    else:
        content_type = headers.get("Content-Type", "no content type").split(";")[0]
        snippet = " ".join(text[:200].split())
        message = f"BCTRL API {status} during {operation}: the response was not a BCTRL error object ({content_type})"
        if snippet:
            message += f": {snippet!r}"
    if request_id:
        message += f" (request id {request_id})"
    if uncertain:
        message += "." + UNCERTAIN_SUFFIX
    cls = _error_class(status, uncertain=uncertain, envelope=code is not None, code=code)
    return cls(
        message,
        status=status,
        code=code,
        error=error,
        reason_class=reason_class,
        hint=hint,
        request_id=request_id,
        details=details,
        retry_after=parse_retry_after(headers.get("Retry-After")),
        retryable=status_is_retryable(status, idempotent=idempotent),
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _error_class(
    status: int, *, uncertain: bool, envelope: bool, code: str | None = None
) -> type[BctrlApiError]:
    if uncertain:
        return BctrlUncertainServerError
    if not envelope and status < 500 and status != 429:
        # A 4xx page that is not a BCTRL error object (a wrong base URL, a proxy): saying "not found"
        # would send the user looking for a missing runtime instead of fixing the URL.
        return BctrlUnexpectedResponseError
    if status == 409 and code == "runtime.not_active":
        return BctrlRuntimeNotActiveError
    by_status: dict[int, type[BctrlApiError]] = {
        402: BctrlQuotaExceededError,
        401: BctrlAuthError,
        403: BctrlAuthError,
        404: BctrlNotFoundError,
        409: BctrlConflictError,
        429: BctrlRateLimitError,
    }
    if status in by_status:
        return by_status[status]
    if status >= 500:
        return BctrlServerError
    return BctrlInvalidRequestError if 400 <= status < 500 else BctrlUnexpectedResponseError


def error_from_transport(
    exc: requests.RequestException,
    operation: str,
    *,
    idempotent: bool,
    base_url: str,
    connect_timeout: float,
    read_timeout: float,
) -> BctrlApiError:
    """The typed error for a request that got no (complete) response.

    A failure before the request left (refused, connect timeout, a TLS handshake that did not
    complete) is certain: nothing reached the server. After that, a POST's outcome is uncertain.
    """
    import requests

    where = base_url
    sent = not never_sent(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        message = f"Timed out after {connect_timeout:g} s connecting to BCTRL at {where} ({operation})."
    elif isinstance(exc, requests.exceptions.ReadTimeout) and not sent:
        message = (
            f"The TLS handshake with {where} timed out after {read_timeout:g} s ({operation}). Nothing "
            "was sent."
        )
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        message = f"BCTRL at {where} did not answer within {read_timeout:g} s ({operation})."
    elif isinstance(exc, requests.exceptions.ContentDecodingError):
        message = (
            f"BCTRL at {where} sent the {operation} answer in a Content-Encoding that does not decode "
            f"({short_reason(exc)}); it was not retried, since the same bytes would come again."
        )
    elif isinstance(exc, requests.exceptions.TooManyRedirects):
        message = f"BCTRL at {where} redirected {operation} too many times; check the API base URL."
    elif isinstance(exc, requests.exceptions.SSLError) and not sent:
        message = (
            f"TLS handshake with {where} failed ({operation}): {short_reason(exc)}. Nothing was sent. "
            "Check that the base URL's scheme matches the server (https:// vs http://) and that its "
            "certificate is trusted (REQUESTS_CA_BUNDLE)."
        )
    elif not sent:
        message = f"Could not connect to BCTRL at {where} ({operation}): {short_reason(exc)}."
    else:
        message = f"The connection to BCTRL at {where} failed during {operation}: {short_reason(exc)}."
    from airflow_provider_bctrl._retry import transport_failure_is_retryable

    uncertain = sent and not idempotent
    if uncertain:
        message += UNCERTAIN_SUFFIX
    cls = BctrlUncertainTransportError if uncertain else BctrlTransportError
    # A certificate that fails verification does not heal by trying again; a stalled handshake may.
    tls = isinstance(exc, requests.exceptions.SSLError) and not _is_timeout(exc)
    # A redirect loop repeats itself, and a body that does not decode comes back the same; so would a retry.
    looped = isinstance(exc, (requests.exceptions.TooManyRedirects, requests.exceptions.ContentDecodingError))
    retryable = not looped and transport_failure_is_retryable(
        tls=tls, idempotent=idempotent, never_sent=not sent
    )
    return cls(message, retryable=retryable)


#: Texts of TLS failures that happen during the handshake, before any byte of the request is sent.
_HANDSHAKE_MARKERS = (
    "CERTIFICATE_VERIFY_FAILED",
    "WRONG_VERSION_NUMBER",
    "handshake",
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT",
    "SSLV3_ALERT",
    "hostname mismatch",
    "doesn't match",
    "certificate",
    "EOF occurred in violation of protocol",
)


def never_sent(exc: BaseException) -> bool:
    """Whether a requests failure happened before the request reached the server.

    That is: the connection was refused or timed out, or the TLS handshake failed or stalled (urllib3
    reports a stalled handshake as a read timeout; its cause says "handshake").
    """
    import requests
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ReadTimeout)):
        return in_handshake(exc)
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


def in_handshake(exc: BaseException) -> bool:
    """Whether a TLS or timeout failure happened during the TLS handshake (so nothing was sent)."""
    text = " ".join(str(part) for part in _chain(exc))
    return any(marker in text for marker in _HANDSHAKE_MARKERS)


def without_frames(exc: BaseException) -> BaseException:
    """``exc`` with the tracebacks of it and of every exception it chains dropped; kept as a cause.

    urllib3's frames hold the Authorization header in their locals, and Airflow 3.0's console
    traceback prints frame locals unredacted. The cause itself stays (its type and text tell
    ``test_connection`` what failed); only the frames go.
    """
    for current in _chain(exc):
        current.__traceback__ = None
    return exc


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its first argument if that is an exception, and their causes and contexts (bounded)."""
    found: list[BaseException] = []
    stack: list[Any] = [exc]
    while stack and len(found) < 20:
        current = stack.pop()
        if not isinstance(current, BaseException) or any(current is seen for seen in found):
            continue
        found.append(current)
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return found


def _is_timeout(exc: BaseException) -> bool:
    return "timed out" in str(exc).lower()


def short_reason(exc: BaseException) -> str:
    """A one-line reason for a network failure, without urllib3's wrapping."""
    from urllib3.exceptions import MaxRetryError

    reason: Any = exc.args[0] if exc.args else exc
    if isinstance(reason, MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    text = str(reason)
    for marker, said in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "name or service not known"),
        ("Connection reset", "connection reset"),
        ("Remote end closed", "the server closed the connection"),
    ):
        if marker in text:
            return said
    if isinstance(reason, BaseException) and reason.args and isinstance(reason.args[0], str):
        return reason.args[0]
    return text[:200]
