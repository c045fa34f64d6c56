"""Request and response plumbing shared by the emulator's handlers: the route table, JSON in and out.

A request travels as a :class:`Call` through a table of :class:`Route` s (matched on the raw path's
segments); handlers read JSON with :func:`read_json`, answer with :func:`json_response`, and raise
:class:`ApiError`, which :func:`api_error` and :func:`error_response` turn into the contract's envelope.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response

from airflow_provider_bctrl.testing._emulator_errors import ApiError, invalid
from airflow_provider_bctrl.testing._emulator_json import parse_client_json

log = logging.getLogger("airflow_provider_bctrl.testing.emulator")

#: Largest JSON body accepted.
MAX_JSON_BYTES = 1024 * 1024


def new_request_id() -> str:
    """A fresh request id, ``req_<32 hex>``."""
    return f"req_{uuid.uuid4().hex}"


class Download(FileResponse):
    """A file response that reads 1 MiB at a time (Starlette's 64 KiB costs a thread hop per chunk)."""

    chunk_size = 1024 * 1024


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response."""
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(error: ApiError, request_id: str) -> Response:
    """The contract's error envelope for ``error``."""
    return Response(
        error.body(request_id), status_code=error.status, media_type="application/json", headers=error.headers
    )


async def drain(request: Request) -> None:
    """Read and discard the rest of the request body (so the client sees our answer, not a broken pipe)."""
    if request.headers.get("expect", "").lower() == "100-continue":
        return  # the client waits for "100 Continue" before sending; answering now spares the body
    with contextlib.suppress(ClientDisconnect, RuntimeError):
        async for _ in request.stream():  # ends with the body
            pass


async def read_json(request: Request) -> Any:
    """The request's JSON body (at most :data:`MAX_JSON_BYTES`); 400 ``request.invalid`` otherwise."""
    body = bytearray()
    too_big = False
    async for chunk in request.stream():  # ends with the body
        if too_big or len(body) + len(chunk) > MAX_JSON_BYTES:
            too_big = True
            continue
        body += chunk
    if too_big:
        raise invalid(f"The JSON body is larger than {MAX_JSON_BYTES} bytes.")
    return parse_client_json(bytes(body))


def optional_str(body: dict[str, Any], key: str) -> str | None:
    """``body[key]`` when it is a string or absent; 400 naming the field otherwise."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"'{key}' must be a string.", field=key)
    return value


def required_str(body: dict[str, Any], key: str) -> str:
    """``body[key]`` when it is a non-empty string; 400 naming the field otherwise."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise invalid(f"'{key}' is required and must be a non-empty string.", field=key)
    return value


def require_object(body: Any) -> dict[str, Any]:
    """``body`` when it is a JSON object; 400 otherwise."""
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.")
    return body


def int_header(value: str | None) -> int | None:
    """A header's integer value, or None when it is absent or not a number."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------- routing

Handler = Callable[["Call"], Awaitable[Response]]


@dataclass
class Call:
    """One request on its way through the pipeline."""

    request: Request
    request_id: str
    params: list[str]
    route: str = ""
    entry: dict[str, Any] | None = None  # the request-log entry (/v1 only)
    data: Any = None  # parsed input: JSON body, or an UploadedBytes
    subaccount_id: str | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class Route:
    """A method and a path template; ``{}`` matches one segment, passed to the handler in order."""

    method: str
    template: tuple[str, ...]
    name: str
    handler: Handler

    def match(self, segments: list[str]) -> list[str] | None:
        """The path parameters when ``segments`` fit the template."""
        if len(segments) != len(self.template):
            return None
        params = []
        for part, expected in zip(segments, self.template, strict=True):
            if expected == "{}":
                if not part:
                    return None
                params.append(part)
            elif part != expected:
                return None
        return params


def template(path: str) -> tuple[str, ...]:
    """A route's path template from ``"a/{}/b"``."""
    return tuple(path.strip("/").split("/"))


def find_route(routes: list[Route], method: str, segments: list[str]) -> tuple[Route, list[str]]:
    """The route for ``method`` and ``segments`` and its parameters; 405 or 404 when there is none."""
    allowed = []
    for route in routes:
        params = route.match(segments)
        if params is None:
            continue
        if route.method == method:
            return route, params
        allowed.append(route.method)
    if allowed:
        raise ApiError(
            405,
            "route.method_not_allowed",
            f"{method} is not allowed here; use {', '.join(sorted(set(allowed)))}.",
            "invalid_input",
            headers={"Allow": ", ".join(sorted(set(allowed)))},
        )
    raise ApiError(404, "route.not_found", "No such route.", "not_found", {"method": method})


def api_error(error: ApiError | OSError) -> ApiError:
    """The error to answer: an :class:`ApiError` as it is, a storage error mapped by its errno."""
    if isinstance(error, ApiError):
        return error
    if error.errno == errno.ENAMETOOLONG:
        # The lexical checks bound each segment and the whole path; this is the backstop for a path
        # that only becomes too long once joined under the emulator's data directory.
        return invalid(
            "A path in the request is too long for the emulator's file system; use shorter names.",
            code="request.path_too_long",
        )
    log.exception("Storage error in the emulator", exc_info=error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ApiError(
            503, "storage.unavailable", "The emulator's disk is full.", "upstream", hint="retry later"
        )
    return ApiError(500, "server.error", "The emulator hit a storage error.", "server")
