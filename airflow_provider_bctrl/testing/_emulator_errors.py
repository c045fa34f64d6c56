"""The BCTRL error envelope as the emulator produces it.

Every failure inside the emulator is raised as :class:`ApiError` and turned into one JSON body of the
contract's ``ErrorResponse`` shape by the app, so handlers never build error responses by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: reasonClass values the contract allows (ErrorResponseReasonClass).
REASON_CLASSES = frozenset(
    {
        "invalid_input",
        "unauthorized",
        "capability_denied",
        "capability_limit_exceeded",
        "rate_limited",
        "not_found",
        "conflict",
        "upstream",
        "server",
    }
)

#: The code and reasonClass an injected fault answers with, per HTTP status. 404 and 409 depend on the
#: route (see :func:`fault_error`), everything else is fixed.
_STATUS_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("request.invalid", "invalid_input", "The request was invalid (injected fault)."),
    401: ("auth.required", "unauthorized", "Authentication required (injected fault)."),
    403: ("auth.forbidden", "capability_denied", "The API key cannot access this resource (injected fault)."),
    429: ("rate_limited", "rate_limited", "Rate limit exceeded (injected fault)."),
    500: ("server.error", "server", "An unexpected server error occurred (injected fault)."),
    502: ("upstream.bad_gateway", "upstream", "An upstream dependency answered badly (injected fault)."),
    503: ("storage.unavailable", "upstream", "An upstream dependency was unavailable (injected fault)."),
    504: ("upstream.timeout", "upstream", "An upstream dependency timed out (injected fault)."),
}

_NOT_FOUND_BY_ROUTE = {
    "upload": "runtime.not_found",
    "stage": "runtime.not_found",
    "list": "runtime.not_found",
    "collect": "runtime_file.not_found",
    "file": "file.not_found",
    "content": "file.not_found",
}


@dataclass
class ApiError(Exception):
    """An error the emulator answers with, in the contract's ``ErrorResponse`` envelope.

    :param status: HTTP status code.
    :param code: stable dot-namespaced code, e.g. ``runtime.not_found``.
    :param message: the human-readable ``error`` text.
    :param reason_class: one of :data:`REASON_CLASSES`.
    :param details: optional structured context.
    :param hint: optional next action, e.g. ``retry after 2s``.
    :param headers: extra response headers (``Retry-After``, ``Allow``).
    """

    status: int
    code: str
    message: str
    reason_class: str
    details: dict[str, Any] | None = None
    hint: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.message}")

    def body(self, request_id: str) -> bytes:
        """The JSON envelope for this error, carrying ``request_id``."""
        envelope: dict[str, Any] = {
            "code": self.code,
            "error": self.message,
            "reasonClass": self.reason_class,
            "requestId": request_id,
        }
        if self.details:
            envelope["details"] = self.details
        if self.hint:
            envelope["hint"] = self.hint
        return json.dumps(envelope, separators=(",", ":")).encode()


def invalid(message: str, *, code: str = "request.invalid", **details: Any) -> ApiError:
    """A 400 ``invalid_input`` error."""
    return ApiError(400, code, message, "invalid_input", details or None)


def not_found(code: str, message: str, **details: Any) -> ApiError:
    """A 404 ``not_found`` error."""
    return ApiError(404, code, message, "not_found", details or None)


def conflict(code: str, message: str, **details: Any) -> ApiError:
    """A 409 ``conflict`` error."""
    return ApiError(409, code, message, "conflict", details or None)


def unauthorized() -> ApiError:
    """The 401 answered for a missing or wrong API key (it never says which, nor echoes the key)."""
    return ApiError(
        401,
        "auth.required",
        "Authentication required: the API key is missing or invalid.",
        "unauthorized",
        hint="Send the header 'Authorization: Bearer <api-key>'.",
    )


def fault_error(status: int, route: str, retry_after: str | None) -> ApiError:
    """The error an injected fault answers with: a fitting code and reasonClass for ``status``."""
    headers: dict[str, str] = {}
    hint: str | None = None
    if status in _STATUS_ERRORS:
        code, reason, message = _STATUS_ERRORS[status]
    elif status == 404:
        code = _NOT_FOUND_BY_ROUTE.get(route, "resource.not_found")
        reason, message = "not_found", "The requested resource was not found (injected fault)."
    elif status == 409:
        code = "storage_file.path_exists" if route in {"upload", "collect"} else "request.conflict"
        reason, message = "conflict", "The request conflicts with existing state (injected fault)."
    elif status < 500:
        code, reason, message = (
            "request.invalid",
            "invalid_input",
            "The request was rejected (injected fault).",
        )
    else:
        code, reason, message = (
            "server.error",
            "server",
            "An unexpected server error occurred (injected fault).",
        )
    if retry_after is not None:
        headers["Retry-After"] = retry_after
        hint = f"retry after {retry_after}s" if retry_after.isdigit() else f"retry after {retry_after}"
    elif status == 503:
        hint = "retry later"
    return ApiError(status, code, message, reason, {"injected": True}, hint, headers)
