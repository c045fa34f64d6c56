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
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

__all__ = [
    "BctrlApiError",
    "BctrlAuthError",
    "BctrlConflictError",
    "BctrlConnectionConfigError",
    "BctrlError",
    "BctrlInputError",
    "BctrlInvalidRequestError",
    "BctrlNotFoundError",
    "BctrlRateLimitError",
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
