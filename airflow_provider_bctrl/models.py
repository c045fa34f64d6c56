"""The BCTRL API's response shapes as small frozen dataclasses.

Each object keeps the JSON exactly as the API sent it in ``raw``, so operators can hand it to XCom
without losing a field this version does not know yet. Parsing is lenient: timestamps become
:class:`pendulum.DateTime` when they parse and stay the original string otherwise (the collect
schema types ``createdAt`` as a free string), and unknown keys are simply kept in ``raw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pendulum
from pendulum import DateTime

__all__ = [
    "Artifact",
    "CollectedFile",
    "Runtime",
    "RuntimeStagedFile",
    "RuntimeStarted",
    "RuntimeStopped",
    "StoredFile",
    "WhoAmI",
    "parse_timestamp",
]


def parse_timestamp(value: Any) -> DateTime | str | None:
    """Return ``value`` as a pendulum ``DateTime`` when it is an RFC 3339 timestamp, else unchanged.

    ``None`` stays ``None``; a string that does not parse is returned as it was, never raised on.
    """
    if value is None or not isinstance(value, str):
        return value
    try:
        parsed = pendulum.parse(value, strict=False)
    except (ValueError, TypeError, OverflowError):
        return value
    return parsed if isinstance(parsed, DateTime) else value


def _required_id(data: Mapping[str, Any]) -> str:
    # A missing or non-string id must not become "None" in an XCom; the hook turns this into
    # BctrlUnexpectedResponseError naming what was wrong.
    value = data["id"]
    if not isinstance(value, str) or not value:
        raise TypeError(f"'id' is {value!r}, not an id string")
    return value


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# ``raw`` is excluded from eq/hash/repr below: the parsed attributes say what matters, and dicts are
# unhashable.


@dataclass(frozen=True)
class RuntimeStagedFile:
    """A file placed in a live runtime's workspace by ``upload`` or ``stage``.

    ``id`` is the durable file id (the same id ``stage`` and ``GET /v1/files/{id}`` take).
    ``runtime_path`` is where the runtime sees the file, relative to its workspace.
    """

    id: str
    name: str | None
    runtime_id: str | None
    runtime_path: str | None
    size_bytes: int | None
    expires_at: DateTime | str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> RuntimeStagedFile:
        """Build from the API's ``RuntimeStagedFile`` JSON object."""
        return cls(
            id=_required_id(data),
            name=_str_or_none(data.get("name")),
            runtime_id=_str_or_none(data.get("runtimeId")),
            runtime_path=_str_or_none(data.get("runtimePath")),
            size_bytes=_int_or_none(data.get("sizeBytes")),
            expires_at=parse_timestamp(data.get("expiresAt")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class StoredFile:
    """A durable file in a space's storage.

    The collect response carries the first six attributes; ``GET /v1/files/{id}`` adds the rest.
    """

    id: str
    name: str | None
    path: str | None
    content_type: str | None
    size_bytes: int | None
    created_at: DateTime | str | None
    download_url: str | None = None
    source: str | None = None
    space_id: str | None = None
    run_id: str | None = None
    runtime_id: str | None = None
    expires_at: DateTime | str | None = None
    metadata: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> StoredFile:
        """Build from the API's ``File`` JSON object."""
        metadata = data.get("metadata")
        return cls(
            id=_required_id(data),
            name=_str_or_none(data.get("name")),
            path=_str_or_none(data.get("path")),
            content_type=_str_or_none(data.get("contentType")),
            size_bytes=_int_or_none(data.get("sizeBytes")),
            created_at=parse_timestamp(data.get("createdAt")),
            download_url=_str_or_none(data.get("downloadUrl")),
            source=_str_or_none(data.get("source")),
            space_id=_str_or_none(data.get("spaceId")),
            run_id=_str_or_none(data.get("runId")),
            runtime_id=_str_or_none(data.get("runtimeId")),
            expires_at=parse_timestamp(data.get("expiresAt")),
            metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
            raw=dict(data),
        )


@dataclass(frozen=True)
class Artifact:
    """A run artifact recorded by ``collect`` when it was asked for one."""

    id: str
    file_id: str | None
    run_id: str | None
    runtime_id: str | None
    kind: str | None
    name: str | None
    size_bytes: int | None
    created_at: DateTime | str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Artifact:
        """Build from the collect response's ``artifact`` object."""
        return cls(
            id=_required_id(data),
            file_id=_str_or_none(data.get("fileId")),
            run_id=_str_or_none(data.get("runId")),
            runtime_id=_str_or_none(data.get("runtimeId")),
            kind=_str_or_none(data.get("kind")),
            name=_str_or_none(data.get("name")),
            size_bytes=_int_or_none(data.get("sizeBytes")),
            created_at=parse_timestamp(data.get("createdAt")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class CollectedFile:
    """The result of ``collect``: the durable ``file`` and, when one was requested, the ``artifact``."""

    file: StoredFile
    artifact: Artifact | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CollectedFile:
        """Build from the collect response ``{"file": ..., "artifact": ... | null}``."""
        artifact = data.get("artifact")
        file = data["file"]
        if not isinstance(file, Mapping):
            raise TypeError(f"'file' is {file!r}, not an object")
        return cls(
            file=StoredFile.from_api(file),
            artifact=Artifact.from_api(artifact) if isinstance(artifact, Mapping) else None,
            raw=dict(data),
        )


@dataclass(frozen=True)
class WhoAmI:
    """Who the API key belongs to (``GET /v1/auth/whoami``)."""

    organization_id: str | None
    default_space_id: str | None
    scope: str | None
    subaccount_id: str | None
    email: str | None
    key_id: str | None
    plan: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WhoAmI:
        """Build from the whoami JSON object."""
        return cls(
            organization_id=_str_or_none(data.get("organizationId")),
            default_space_id=_str_or_none(data.get("defaultSpaceId")),
            scope=_str_or_none(data.get("scope")),
            subaccount_id=_str_or_none(data.get("subaccountId")),
            email=_str_or_none(data.get("email")),
            key_id=_str_or_none(data.get("keyId")),
            plan=_str_or_none(data.get("plan")),
            raw=dict(data),
        )


# ------------------------------------------------------------------ runtime lifecycle (BCTRL's docs)


def _required_str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key!r} is {value!r}, not an id string")
    return value


@dataclass(frozen=True)
class RuntimeStarted:
    """The answer of ``POST /v1/runtimes/{id}/start``: the run the runtime is (now) executing.

    ``connect_url`` drives the browser: treat it like a credential (it is kept out of ``repr``).
    ``started`` is false when the runtime was already running this run (or the Idempotency-Key had
    started it before).
    """

    run_id: str
    runtime_id: str | None
    status: str | None
    started: bool | None
    protocol: str | None
    connect_url: str | None = field(default=None, repr=False)
    webdriver_url: str | None = field(default=None, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> RuntimeStarted:
        """Build from the start response JSON."""
        started = data.get("started")
        return cls(
            run_id=_required_str(data, "runId"),
            runtime_id=_str_or_none(data.get("runtimeId")),
            status=_str_or_none(data.get("status")),
            started=started if isinstance(started, bool) else None,
            protocol=_str_or_none(data.get("protocol")),
            connect_url=_str_or_none(data.get("connectUrl")),
            webdriver_url=_str_or_none(data.get("webdriverUrl")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class RuntimeStopped:
    """The answer of ``POST /v1/runtimes/{id}/stop``; ``run_id`` is the run that ended (may be None)."""

    run_id: str | None
    runtime_id: str | None
    status: str | None
    stopped: bool | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> RuntimeStopped:
        """Build from the stop response JSON."""
        stopped = data.get("stopped")
        return cls(
            run_id=_str_or_none(data.get("runId")),
            runtime_id=_str_or_none(data.get("runtimeId")),
            status=_str_or_none(data.get("status")),
            stopped=stopped if isinstance(stopped, bool) else None,
            raw=dict(data),
        )


@dataclass(frozen=True)
class Runtime:
    """A runtime as ``GET /v1/runtimes/{id}`` describes it; ``active_run_id`` is None when it is not running."""

    id: str
    status: str | None
    active_run_id: str | None
    space_id: str | None
    created_at: DateTime | str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Runtime:
        """Build from the runtime JSON (``id``, or ``runtimeId`` as some API generations name it)."""
        runtime_id = data.get("id") if data.get("id") is not None else data.get("runtimeId")
        if not isinstance(runtime_id, str) or not runtime_id:
            raise TypeError(f"'id' is {runtime_id!r}, not an id string")
        return cls(
            id=runtime_id,
            status=_str_or_none(data.get("status")),
            active_run_id=_str_or_none(data.get("activeRunId")),
            space_id=_str_or_none(data.get("spaceId")),
            created_at=parse_timestamp(data.get("createdAt")),
            raw=dict(data),
        )
