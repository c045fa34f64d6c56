"""The emulator's records and their JSON forms: runtimes, durable files, artifacts, staged copies.

Frozen dataclasses, each with ``to_json``/``from_json`` (as persisted) and, where the API shows it,
``to_api``; plus the small value helpers they share (timestamps, content types, upload metadata,
list cursors) and the atomic JSON write every record goes through.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_bctrl.testing._emulator_errors import invalid
from airflow_provider_bctrl.testing._emulator_json import parse_client_json

FORMAT_VERSION = 1
#: How long a copy staged into a runtime is said to live (the contract leaves it open; 24 h is typical).
STAGED_LIFETIME = timedelta(hours=24)
#: Longest ``metadata`` JSON text accepted with an upload.
MAX_METADATA_CHARS = 64 * 1024


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime) -> str:
    """``moment`` as an RFC 3339 UTC timestamp with milliseconds and a ``Z`` suffix."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def guess_content_type(name: str) -> str:
    """A content type for ``name`` from its extension; ``application/octet-stream`` when unknown."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so readers only ever see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


#: Runtime states the emulator models (the start endpoint's ``status`` may also say ``failed``).
RUNTIME_ACTIVE = "active"
RUNTIME_STOPPED = "stopped"


@dataclass(frozen=True)
class RuntimeRecord:
    """A runtime: a browser in a space, with its own filesystem, active (running a run) or stopped.

    ``run_id`` is the runtime's latest run: the active one while ``status`` is ``active``, the last
    one that ran (or ``None`` if it never ran) once it is ``stopped``.
    """

    id: str
    space_id: str
    run_id: str | None
    created_at: str
    status: str = RUNTIME_ACTIVE

    @property
    def active_run_id(self) -> str | None:
        """The run in progress, ``None`` when the runtime is stopped."""
        return self.run_id if self.status == RUNTIME_ACTIVE else None

    def to_json(self) -> dict[str, Any]:
        """The record as persisted and as the control API shows it."""
        return {
            "runtimeId": self.id,
            "spaceId": self.space_id,
            "runId": self.run_id,
            "activeRunId": self.active_run_id,
            "status": self.status,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuntimeRecord:
        """Read a persisted record (data dirs from before runtime states hold active runtimes)."""
        run_id = data.get("runId")
        return cls(
            str(data["runtimeId"]),
            str(data["spaceId"]),
            None if run_id is None else str(run_id),
            str(data["createdAt"]),
            str(data.get("status") or RUNTIME_ACTIVE),
        )


@dataclass(frozen=True)
class RuntimeStart:
    """The outcome of a start: the run it answers with and whether this call opened it."""

    runtime: RuntimeRecord
    run_id: str
    started: bool


@dataclass(frozen=True)
class FileRecord:
    """A durable file in a space's store."""

    id: str
    space_id: str
    name: str
    path: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: str
    source: str  # "upload" | "runtime"
    runtime_id: str | None
    run_id: str | None
    metadata: dict[str, Any] | None = None

    def to_api_summary(self) -> dict[str, Any]:
        """The short file object (collect's ``file``); the full one adds its URL, source and owners."""
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "contentType": self.content_type,
            "sizeBytes": self.size_bytes,
            "createdAt": self.created_at,
        }

    def to_json(self) -> dict[str, Any]:
        """The record as persisted in its sidecar."""
        return {
            "id": self.id,
            "spaceId": self.space_id,
            "name": self.name,
            "path": self.path,
            "contentType": self.content_type,
            "sizeBytes": self.size_bytes,
            "sha256": self.sha256,
            "createdAt": self.created_at,
            "source": self.source,
            "runtimeId": self.runtime_id,
            "runId": self.run_id,
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileRecord:
        """Read a persisted sidecar."""
        return cls(
            id=str(data["id"]),
            space_id=str(data["spaceId"]),
            name=str(data["name"]),
            path=str(data["path"]),
            content_type=str(data["contentType"]),
            size_bytes=int(data["sizeBytes"]),
            sha256=str(data["sha256"]),
            created_at=str(data["createdAt"]),
            source=str(data["source"]),
            runtime_id=data.get("runtimeId"),
            run_id=data.get("runId"),
            metadata=data.get("metadata"),
        )


@dataclass(frozen=True)
class ArtifactRecord:
    """A run artifact recorded by collect."""

    id: str
    file_id: str
    space_id: str
    run_id: str
    runtime_id: str
    kind: str
    name: str
    size_bytes: int
    created_at: str
    metadata: dict[str, Any] | None = field(default=None)

    def to_api(self) -> dict[str, Any]:
        """The artifact object of collect's response."""
        return {
            "id": self.id,
            "fileId": self.file_id,
            "runId": self.run_id,
            "runtimeId": self.runtime_id,
            "kind": self.kind,
            "name": self.name,
            "sizeBytes": self.size_bytes,
            "createdAt": self.created_at,
        }

    def to_json(self) -> dict[str, Any]:
        """The record as persisted (the API shape plus space and metadata)."""
        return {**self.to_api(), "spaceId": self.space_id, "metadata": self.metadata}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArtifactRecord:
        """Read a persisted record."""
        return cls(
            id=str(data["id"]),
            file_id=str(data["fileId"]),
            space_id=str(data["spaceId"]),
            run_id=str(data["runId"]),
            runtime_id=str(data["runtimeId"]),
            kind=str(data["kind"]),
            name=str(data["name"]),
            size_bytes=int(data["sizeBytes"]),
            created_at=str(data["createdAt"]),
            metadata=data.get("metadata"),
        )


@dataclass(frozen=True)
class StagedFile:
    """A file materialised in a runtime workspace (the contract's ``RuntimeStagedFile``)."""

    file_id: str
    name: str
    runtime_id: str
    runtime_path: str
    size_bytes: int
    expires_at: str | None

    def to_api(self) -> dict[str, Any]:
        """The ``RuntimeStagedFile`` JSON object."""
        return {
            "id": self.file_id,
            "name": self.name,
            "runtimeId": self.runtime_id,
            "runtimePath": self.runtime_path,
            "sizeBytes": self.size_bytes,
            "expiresAt": self.expires_at,
        }


@dataclass(frozen=True)
class UploadedBytes:
    """An upload's file part, already on disk in the store's scratch directory."""

    tmp_path: Path
    size_bytes: int
    sha256: str
    file_name: str | None
    content_type: str | None


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    """Parse upload's ``metadata`` part: a JSON object serialised as a string."""
    if text is None:
        return None
    if len(text) > MAX_METADATA_CHARS:
        raise invalid(f"'metadata' is longer than {MAX_METADATA_CHARS} characters.", field="metadata")
    value = parse_client_json(text, field="metadata", what="'metadata'")
    if not isinstance(value, dict):
        raise invalid("'metadata' must be a JSON object, not another JSON value.", field="metadata")
    return value


def encode_cursor(offset: int) -> str:
    """An opaque page cursor."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset inside a cursor made by :func:`encode_cursor`; 400 when it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "offset" or not number.isdigit():
            raise ValueError(cursor)
        return int(number)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise invalid("'cursor' is not a cursor this server issued.", field="cursor") from None
