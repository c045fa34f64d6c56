"""The retry policy, in one place: which failures may be retried, how long to wait, and the one loop.

What may be retried automatically (documented in ``docs/hook.md``, section "Retry policy"):

* **GET** requests (whoami, file metadata, file content) are read-only: they retry on 408, 429, every
  5xx, timeouts and connection failures.
* **POST** requests (upload, stage, collect) are not idempotent and the API offers no idempotency key
  for them, so they retry only when the server cannot have acted: 429 (rate limited), 503 (upstream
  unavailable, "retry later"), and connection failures before the request was sent. A 500, 502, 504,
  a read timeout or a connection dropped mid-response may hide a stored file: no automatic retry.

Waits honour ``Retry-After`` (seconds or an HTTP-date) capped at the connection's ``max_retry_wait``;
otherwise exponential backoff with jitter. The decision is made once, when a failure is mapped onto
its error (:mod:`airflow_provider_bctrl.exceptions` sets ``retryable``), and :func:`call_with_retries`
is the one loop that acts on it, for JSON requests and downloads alike.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from airflow_provider_bctrl.exceptions import BctrlApiError

T = TypeVar("T")

__all__ = [
    "GET_RETRYABLE_STATUSES",
    "POST_RETRYABLE_STATUSES",
    "RETRY_WAITS_KEPT",
    "backoff_delay",
    "call_with_retries",
    "parse_retry_after",
    "status_is_retryable",
    "transport_failure_is_retryable",
]

#: Statuses a non-idempotent POST may retry: the server says it did not act.
POST_RETRYABLE_STATUSES = frozenset({429, 503})
#: Statuses a read-only GET retries.
GET_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: How many of the latest waits :func:`call_with_retries` keeps in its ``waits`` list.
RETRY_WAITS_KEPT = 100


def status_is_retryable(status: int, *, idempotent: bool) -> bool:
    """Whether a response with ``status`` may be retried automatically."""
    return status in (GET_RETRYABLE_STATUSES if idempotent else POST_RETRYABLE_STATUSES)


def transport_failure_is_retryable(*, tls: bool, idempotent: bool, never_sent: bool) -> bool:
    """Whether a request that got no response may be retried automatically.

    A TLS failure (a bad certificate, a wrong CA bundle) never heals by trying again. Otherwise a GET
    always may; a POST only when the request never left (the server cannot have acted).
    """
    return not tls and (idempotent or never_sent)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date; ``None`` if absent/bad.

    A date in the past gives ``0``. A negative or unparseable value gives ``None`` (use backoff).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # NaN check
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - current).total_seconds())


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff for retry ``attempt`` (1 = first retry), jittered between half and all of it."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def call_with_retries(
    call: Callable[[], T],
    *,
    operation: str,
    retries: int,
    base: float,
    cap: float,
    log: logging.Logger | Any,
    waits: list[float],
    sleep: Callable[[float], None],
) -> T:
    """Run ``call`` until it returns, retrying a :class:`BctrlApiError` marked ``retryable``.

    Before each retry it waits the error's ``Retry-After`` capped at ``cap``, else :func:`backoff_delay`;
    logs a warning; and appends the wait to ``waits``, which keeps the latest :data:`RETRY_WAITS_KEPT`.

    :param operation: names the call in the warning, e.g. ``"upload"``.
    :param retries: how many times at most to repeat ``call`` after its first attempt.
    :param sleep: how to wait (``time.sleep``; tests swap it).
    """
    attempt = 1
    while True:
        try:
            return call()
        except BctrlApiError as exc:
            if not exc.retryable or attempt > retries:
                raise
            if exc.retry_after is not None:
                seconds = min(exc.retry_after, cap)
            else:
                seconds = backoff_delay(attempt, base=base, cap=cap)
            log.warning(
                "BCTRL %s attempt %d of %d failed: %s Retrying in %.2f s.",
                operation,
                attempt,
                retries + 1,
                exc,
                seconds,
            )
            waits.append(seconds)
            del waits[:-RETRY_WAITS_KEPT]
            sleep(seconds)
            attempt += 1
