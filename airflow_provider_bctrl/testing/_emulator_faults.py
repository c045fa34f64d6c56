"""Fault injection and the request log of the emulator's control API.

Both are small thread-safe structures: the HTTP app consumes faults and appends log entries from the
server's event loop, while tests read and change them over the control API (or, in process, directly).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from airflow_provider_bctrl.testing._emulator_errors import invalid

#: Route names a fault can target ("*" matches every /v1 route).
FAULT_ROUTES = (
    "upload",
    "collect",
    "stage",
    "whoami",
    "content",
    "file",
    "list",
    "start",
    "stop",
    "runtime",
    "*",
)
#: When a fault acts: before the emulator acts on the request, or after it has fully acted.
FAULT_PHASES = ("request", "processing")
#: Longest injectable delay; keeps a forgotten fault from hanging a test run for long.
MAX_DELAY_SECONDS = 600.0
#: Most faults that may be pending at once.
MAX_PENDING_FAULTS = 10_000
#: Entries kept in the request log (oldest dropped first).
MAX_LOG_ENTRIES = 10_000


@dataclass(frozen=True)
class Fault:
    """One queued fault; consumed by one matching /v1 request."""

    route: str
    status: int | None = None
    retry_after: str | None = None
    delay_seconds: float | None = None
    drop: bool = False
    after: str = "request"

    def to_json(self) -> dict[str, Any]:
        """The fault as the control API shows it."""
        return {
            "route": self.route,
            "status": self.status,
            "retryAfter": self.retry_after,
            "delaySeconds": self.delay_seconds,
            "drop": self.drop,
            "after": self.after,
        }


def parse_fault_request(body: Any) -> tuple[Fault, int]:
    """Validate a ``POST /_emulator/faults`` body; returns the fault and how many requests it hits."""
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.")
    route = body.get("route")
    if route not in FAULT_ROUTES:
        raise invalid(f"'route' must be one of {', '.join(FAULT_ROUTES)}.", field="route")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PENDING_FAULTS:
        raise invalid(f"'count' must be an integer from 1 to {MAX_PENDING_FAULTS}.", field="count")
    status = body.get("status")
    if status is not None and (
        not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599
    ):
        raise invalid("'status' must be an HTTP error status from 400 to 599.", field="status")
    retry_after = body.get("retryAfter")
    if retry_after is not None and (
        not isinstance(retry_after, str) or not retry_after or "\n" in retry_after
    ):
        raise invalid(
            "'retryAfter' must be a non-empty string (seconds or an HTTP-date).", field="retryAfter"
        )
    delay = body.get("delaySeconds")
    if delay is not None and (
        not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY_SECONDS
    ):
        raise invalid(f"'delaySeconds' must be a number from 0 to {MAX_DELAY_SECONDS}.", field="delaySeconds")
    drop = body.get("drop", False)
    if not isinstance(drop, bool):
        raise invalid("'drop' must be a boolean.", field="drop")
    after = body.get("after", "request")
    if after not in FAULT_PHASES:
        raise invalid(f"'after' must be one of {', '.join(FAULT_PHASES)}.", field="after")
    if status is not None and drop:
        raise invalid("A fault either answers a 'status' or 'drop's the connection, not both.")
    if status is None and not drop and delay is None:
        raise invalid("A fault needs at least one of 'status', 'drop' or 'delaySeconds'.")
    if retry_after is not None and status is None:
        raise invalid("'retryAfter' only goes with a 'status'.", field="retryAfter")
    fault = Fault(
        route=route,
        status=status,
        retry_after=retry_after,
        delay_seconds=float(delay) if delay is not None else None,
        drop=drop,
        after=after,
    )
    return fault, count


class FaultQueue:
    """Pending faults, consumed first-in first-out by the /v1 requests they match."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[Fault] = deque()

    def add(self, fault: Fault, count: int) -> None:
        """Queue ``fault`` for the next ``count`` matching requests."""
        with self._lock:
            if len(self._pending) + count > MAX_PENDING_FAULTS:
                raise invalid(f"At most {MAX_PENDING_FAULTS} faults may be pending.")
            self._pending.extend([fault] * count)

    def take(self, route: str) -> Fault | None:
        """Remove and return the oldest fault matching ``route``, if any."""
        with self._lock:
            for index, fault in enumerate(self._pending):
                if fault.route in (route, "*"):
                    del self._pending[index]
                    return fault
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()

    def pending(self) -> list[dict[str, Any]]:
        """The pending faults, oldest first."""
        with self._lock:
            return [fault.to_json() for fault in self._pending]


class RequestLog:
    """The last :data:`MAX_LOG_ENTRIES` /v1 requests, as the control API shows them."""

    def __init__(self, limit: int = MAX_LOG_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)

    def append(self, entry: dict[str, Any]) -> None:
        """Record one request."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """All recorded requests, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()
