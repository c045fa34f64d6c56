"""The emulator's state: spaces, runtimes, durable files and artifacts, persisted in a data directory.

Layout of a data directory (all JSON written atomically with tmp + ``os.replace``)::

    emulator.json                         {"formatVersion": 1, "defaultSpaceId": ...}
    spaces/<spaceId>/space.json
    spaces/<spaceId>/blobs/<fileId>       the bytes of a durable file, written once
    spaces/<spaceId>/files/<fileId>.json  the durable file's record (its metadata sidecar)
    spaces/<spaceId>/artifacts/<id>.json  run artifacts recorded by collect
    runtimes/<runtimeId>/runtime.json
    runtimes/<runtimeId>/root/            the runtime's filesystem; ``root/workspace`` is /workspace
    runtimes/<runtimeId>/tmp/             scratch space on the same filesystem, for atomic renames
    tmp/                                  in-flight uploads and copies, emptied at start

Durable files are stored by id and their ``path`` is a key in the space, so no client-chosen storage path
ever becomes a filesystem path.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import shutil
import stat
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_bctrl.testing import _emulator_paths as paths
from airflow_provider_bctrl.testing._emulator_errors import conflict, invalid, not_found
from airflow_provider_bctrl.testing._emulator_json import parse_client_json

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class RuntimeRecord:
    """A runtime: a live browser in a space, with a run id and its own filesystem."""

    id: str
    space_id: str
    run_id: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The record as persisted and as the control API shows it."""
        return {
            "runtimeId": self.id,
            "spaceId": self.space_id,
            "runId": self.run_id,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuntimeRecord:
        """Read a persisted record."""
        return cls(str(data["runtimeId"]), str(data["spaceId"]), str(data["runId"]), str(data["createdAt"]))


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


class EmulatorStore:
    """Thread-safe state of one emulator, kept in memory and persisted under ``data_dir``.

    :param data_dir: directory holding the state; created when missing, reused when it exists.
    :param default_space_id: the default space; when ``None`` the persisted one, else a new uuid4.
    """

    def __init__(self, data_dir: str | os.PathLike[str], default_space_id: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._lock = threading.RLock()
        self._spaces: set[str] = set()
        self._runtimes: dict[str, RuntimeRecord] = {}
        self._files: dict[str, FileRecord] = {}
        self._paths: dict[tuple[str, str], str] = {}
        self._artifacts: dict[str, ArtifactRecord] = {}
        for sub in ("spaces", "runtimes", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self._clear_scratch()
        self._load()
        self.default_space_id = self._choose_default_space(default_space_id)

    # ----------------------------------------------------------------------------------- start-up

    def _clear_scratch(self) -> None:
        # Anything left in tmp/ belongs to a request that died with a previous process.
        for entry in (self.data_dir / "tmp").iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def _load(self) -> None:
        for space_dir in sorted((self.data_dir / "spaces").iterdir()):
            if not (space_dir / "space.json").is_file():
                continue
            self._spaces.add(space_dir.name)
            for sidecar in sorted((space_dir / "files").glob("*.json")):
                try:
                    record = FileRecord.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("Skipping unreadable file record %s: %s", sidecar, exc)
                    continue
                self._files[record.id] = record
                self._paths[(record.space_id, record.path)] = record.id
            for sidecar in sorted((space_dir / "artifacts").glob("*.json")):
                try:
                    artifact = ArtifactRecord.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("Skipping unreadable artifact record %s: %s", sidecar, exc)
                    continue
                self._artifacts[artifact.id] = artifact
        for runtime_dir in sorted((self.data_dir / "runtimes").iterdir()):
            record_path = runtime_dir / "runtime.json"
            if not record_path.is_file():
                continue
            try:
                runtime = RuntimeRecord.from_json(json.loads(record_path.read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("Skipping unreadable runtime record %s: %s", record_path, exc)
                continue
            self._runtimes[runtime.id] = runtime

    def _choose_default_space(self, requested: str | None) -> str:
        settings_path = self.data_dir / "emulator.json"
        settings: dict[str, Any] = {}
        if settings_path.is_file():
            try:
                settings = json.loads(settings_path.read_text(encoding="utf-8"))
            except ValueError:
                log.warning("Ignoring unreadable %s", settings_path)
        space_id = requested or settings.get("defaultSpaceId") or str(uuid.uuid4())
        paths.validate_id(space_id, kind="spaceId")
        self.ensure_space(space_id)
        if settings.get("defaultSpaceId") != space_id:
            write_json_atomic(settings_path, {"formatVersion": FORMAT_VERSION, "defaultSpaceId": space_id})
        return space_id

    # ---------------------------------------------------------------------------- spaces, runtimes

    def _space_dir(self, space_id: str) -> Path:
        return self.data_dir / "spaces" / space_id

    def _runtime_dir(self, runtime_id: str) -> Path:
        return self.data_dir / "runtimes" / runtime_id

    def runtime_root(self, runtime_id: str) -> Path:
        """The directory that is ``/`` inside the runtime."""
        return self._runtime_dir(runtime_id) / "root"

    def scratch_dir(self) -> Path:
        """Where in-flight uploads are written (same filesystem as the blobs, so renames are atomic)."""
        return self.data_dir / "tmp"

    def ensure_space(self, space_id: str) -> None:
        """Create the space ``space_id`` unless it exists."""
        with self._lock:
            if space_id in self._spaces:
                return
            space_dir = self._space_dir(space_id)
            for sub in ("blobs", "files", "artifacts"):
                (space_dir / sub).mkdir(parents=True, exist_ok=True)
            write_json_atomic(space_dir / "space.json", {"id": space_id, "createdAt": rfc3339(utc_now())})
            self._spaces.add(space_id)

    def get_space(self, space_id: str) -> str:
        """``space_id`` when it exists; 404 ``space.not_found`` otherwise."""
        with self._lock:
            if space_id not in self._spaces:
                raise not_found("space.not_found", "No space with this id.", spaceId=space_id)
        return space_id

    def create_runtime(self, runtime_id: str | None = None, space_id: str | None = None) -> RuntimeRecord:
        """Create a runtime (a uuid4 id when ``runtime_id`` is None) in ``space_id`` (created if new)."""
        runtime_id = paths.validate_id(runtime_id, kind="runtimeId") if runtime_id else str(uuid.uuid4())
        space_id = paths.validate_id(space_id, kind="spaceId") if space_id else self.default_space_id
        with self._lock:
            if runtime_id in self._runtimes:
                raise conflict("runtime.exists", "A runtime with this id exists.", runtimeId=runtime_id)
            self.ensure_space(space_id)
            record = RuntimeRecord(runtime_id, space_id, str(uuid.uuid4()), rfc3339(utc_now()))
            runtime_dir = self._runtime_dir(runtime_id)
            (runtime_dir / "root" / paths.WORKSPACE).mkdir(parents=True, exist_ok=True)
            (runtime_dir / "tmp").mkdir(exist_ok=True)
            write_json_atomic(runtime_dir / "runtime.json", record.to_json())
            self._runtimes[runtime_id] = record
            return record

    def get_runtime(self, runtime_id: str) -> RuntimeRecord:
        """The runtime ``runtime_id``; 404 ``runtime.not_found`` otherwise."""
        with self._lock:
            record = self._runtimes.get(runtime_id)
        if record is None:
            raise not_found("runtime.not_found", "No runtime with this id.", runtimeId=runtime_id)
        return record

    def runtimes(self) -> list[RuntimeRecord]:
        """All runtimes, oldest first."""
        with self._lock:
            return sorted(self._runtimes.values(), key=lambda r: (r.created_at, r.id))

    # ---------------------------------------------------------------------------------- durable files

    def get_file(self, file_id: str) -> FileRecord:
        """The durable file ``file_id``; 404 ``file.not_found`` otherwise."""
        with self._lock:
            record = self._files.get(file_id)
        if record is None:
            raise not_found("file.not_found", "No file with this id.", fileId=file_id)
        return record

    def blob_path(self, record: FileRecord) -> Path:
        """Where the bytes of ``record`` live."""
        return self._space_dir(record.space_id) / "blobs" / record.id

    def files(self) -> list[FileRecord]:
        """The whole durable store, oldest first."""
        with self._lock:
            return sorted(self._files.values(), key=lambda f: (f.created_at, f.id))

    def artifacts(self) -> list[ArtifactRecord]:
        """All recorded artifacts, oldest first."""
        with self._lock:
            return sorted(self._artifacts.values(), key=lambda a: (a.created_at, a.id))

    def runtime_files(self, runtime_id: str) -> list[FileRecord]:
        """Durable files collected out of ``runtime_id``, in a stable order (for paging)."""
        self.get_runtime(runtime_id)
        with self._lock:
            found = [f for f in self._files.values() if f.runtime_id == runtime_id and f.source == "runtime"]
        return sorted(found, key=lambda f: (f.created_at, f.id))

    def _check_path_free(self, space_id: str, path: str, field_name: str) -> None:
        if (space_id, path) in self._paths:
            raise conflict(
                "storage_file.path_exists",
                f"'{field_name}' already names a file in this space.",
                field=field_name,
                path=path,
                fileId=self._paths[(space_id, path)],
            )

    def _store(self, record: FileRecord, tmp_path: Path) -> None:
        """Move finished bytes into the store and persist the record (caller holds the lock)."""
        self._check_path_free(record.space_id, record.path, "path")
        blob = self.blob_path(record)
        os.replace(tmp_path, blob)
        try:
            write_json_atomic(
                self._space_dir(record.space_id) / "files" / f"{record.id}.json", record.to_json()
            )
        except BaseException:
            blob.unlink(missing_ok=True)
            raise
        self._files[record.id] = record
        self._paths[(record.space_id, record.path)] = record.id

    # ------------------------------------------------------------------------ runtime materialisation

    def _materialise(self, runtime: RuntimeRecord, blob: Path, rel_path: str) -> None:
        """Put the bytes of ``blob`` at ``/workspace/<rel_path>`` in ``runtime``."""
        segments = [paths.WORKSPACE, *rel_path.split("/")]
        root = self.runtime_root(runtime.id)
        parent = paths.make_parents_inside(root, segments[:-1], field="runtimePath", shown=rel_path)
        paths.place_file(
            blob,
            parent,
            segments[-1],
            self._runtime_dir(runtime.id) / "tmp",
            field="runtimePath",
            shown=rel_path,
        )

    def _staged(self, record: FileRecord, runtime: RuntimeRecord, name: str, rel_path: str) -> StagedFile:
        return StagedFile(
            file_id=record.id,
            name=name,
            runtime_id=runtime.id,
            runtime_path=rel_path,
            size_bytes=record.size_bytes,
            expires_at=rfc3339(utc_now() + STAGED_LIFETIME),
        )

    def commit_upload(
        self,
        runtime_id: str,
        upload: UploadedBytes,
        *,
        name: str | None,
        runtime_path: str | None,
        destination_path: str | None,
        metadata: str | None,
    ) -> StagedFile:
        """Store an uploaded file once in the runtime's space and materialise it in the runtime.

        Takes ownership of ``upload.tmp_path``: it is moved into the store or deleted, never left.
        """
        try:
            runtime = self.get_runtime(runtime_id)
            display = paths.validate_name(name if name is not None else self._default_name(upload.file_name))
            rel_path = paths.workspace_path(runtime_path, display)
            file_id = str(uuid.uuid4())
            durable = paths.durable_path(
                destination_path, display, f"uploads/{file_id}/{display}", field="destinationPath"
            )
            parsed_metadata = parse_metadata(metadata)
            content_type = upload.content_type
            if not content_type or content_type == "application/octet-stream":
                content_type = guess_content_type(display)
            record = FileRecord(
                id=file_id,
                space_id=runtime.space_id,
                name=display,
                path=durable,
                content_type=content_type,
                size_bytes=upload.size_bytes,
                sha256=upload.sha256,
                created_at=rfc3339(utc_now()),
                source="upload",
                runtime_id=runtime.id,
                run_id=runtime.run_id,
                metadata=parsed_metadata,
            )
            with self._lock:
                self._check_path_free(runtime.space_id, durable, "destinationPath")
                # Materialise first: if the workspace path is unusable nothing has been stored yet.
                self._materialise(runtime, upload.tmp_path, rel_path)
                self._store(record, upload.tmp_path)
            return self._staged(record, runtime, display, rel_path)
        finally:
            upload.tmp_path.unlink(missing_ok=True)

    @staticmethod
    def _default_name(file_name: str | None) -> str:
        # Some clients send a full client-side path as the filename; only its last segment is a name.
        base = (file_name or "").replace("\\", "/").rsplit("/", 1)[-1]
        return base or "file"

    def stage(self, runtime_id: str, file_id: str, runtime_path: str | None, name: str | None) -> StagedFile:
        """Materialise the durable file ``file_id`` in ``runtime_id`` (no new durable file)."""
        record = self.get_file(file_id)
        runtime = self.get_runtime(runtime_id)
        display = paths.validate_name(name if name is not None else record.name)
        rel_path = paths.workspace_path(runtime_path, display)
        blob = self.blob_path(record)
        if not blob.is_file():
            raise not_found("file.not_found", "The file's bytes are gone from the store.", fileId=file_id)
        with self._lock:
            self._materialise(runtime, blob, rel_path)
        return self._staged(record, runtime, display, rel_path)

    # ------------------------------------------------------------------------------------- collect

    def resolve_runtime_file(self, runtime_id: str, path: str, *, field_name: str = "path") -> str:
        """The real path of an existing regular file at runtime path ``path``; 404 when there is none."""
        segments = paths.runtime_location(path, field=field_name)
        real = paths.resolve_inside(self.runtime_root(runtime_id), segments, field=field_name, shown=path)
        try:
            info = os.stat(real)
        except OSError:
            raise not_found(
                "runtime_file.not_found", "No file at this path in the runtime.", path=path
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise not_found(
                "runtime_file.not_found", "The path in the runtime is not a regular file.", path=path
            )
        return real

    def collect(
        self,
        space_id: str,
        runtime_id: str,
        path: str,
        *,
        storage_path: str | None,
        name: str | None,
        artifact: dict[str, Any] | None,
    ) -> tuple[FileRecord, ArtifactRecord | None]:
        """Copy a runtime file into the space's store; optionally record it as a run artifact."""
        self.get_space(space_id)
        runtime = self.get_runtime(runtime_id)
        if runtime.space_id != space_id:
            raise not_found(
                "runtime.not_found", "No runtime with this id in this space.", runtimeId=runtime_id
            )
        if name is not None:
            paths.validate_name(name)
        real = self.resolve_runtime_file(runtime_id, path)
        display = name if name is not None else paths.validate_name(os.path.basename(real))
        file_id = str(uuid.uuid4())
        durable = paths.durable_path(
            storage_path, display, f"collected/{file_id}/{display}", field="storagePath"
        )
        with self._lock:
            self._check_path_free(space_id, durable, "storagePath")
        tmp = self.scratch_dir() / f"collect-{file_id}"
        hasher = hashlib.sha256()
        try:
            try:
                # O_NOFOLLOW: the path was resolved and checked above; a symlink swapped in since then
                # is refused instead of followed. O_NONBLOCK: never hang on a FIFO.
                fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                raise not_found(
                    "runtime_file.not_found", "The runtime file cannot be opened.", path=path
                ) from None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise not_found("runtime_file.not_found", "The path is not a regular file.", path=path)
                size = paths.copy_stream(fd, tmp, hasher)
            finally:
                os.close(fd)
            now = rfc3339(utc_now())
            record = FileRecord(
                id=file_id,
                space_id=space_id,
                name=display,
                path=durable,
                content_type=guess_content_type(display),
                size_bytes=size,
                sha256=hasher.hexdigest(),
                created_at=now,
                source="runtime",
                runtime_id=runtime.id,
                run_id=runtime.run_id,
            )
            recorded: ArtifactRecord | None = None
            with self._lock:
                self._check_path_free(space_id, durable, "storagePath")
                self._store(record, tmp)
                if artifact is not None:
                    recorded = ArtifactRecord(
                        id=str(uuid.uuid4()),
                        file_id=file_id,
                        space_id=space_id,
                        run_id=runtime.run_id,
                        runtime_id=runtime.id,
                        kind=artifact.get("kind") or "file",
                        name=artifact.get("name") or display,
                        size_bytes=size,
                        created_at=now,
                        metadata=artifact.get("metadata"),
                    )
                    write_json_atomic(
                        self._space_dir(space_id) / "artifacts" / f"{recorded.id}.json", recorded.to_json()
                    )
                    self._artifacts[recorded.id] = recorded
            return record, recorded
        finally:
            tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------------- control API: runtime files

    def put_runtime_file(self, runtime_id: str, path: str, tmp_path: Path) -> tuple[str, int]:
        """Move ``tmp_path`` to runtime path ``path`` as if the browser wrote it; (absolute path, size)."""
        try:
            self.get_runtime(runtime_id)
            segments = paths.runtime_location(path)
            if not segments:
                raise invalid("'path' must name a file.", code="runtime_file.path_invalid", path=path)
            root = self.runtime_root(runtime_id)
            with self._lock:
                parent = paths.make_parents_inside(root, segments[:-1], field="path", shown=path)
                target = os.path.join(parent, segments[-1])
                if os.path.isdir(target) and not os.path.islink(target):
                    raise conflict("runtime_file.path_conflict", "'path' names a directory.", path=path)
                size = tmp_path.stat().st_size
                os.replace(tmp_path, target)
            return "/" + "/".join(segments), size
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()

    def runtime_scratch(self, runtime_id: str) -> Path:
        """Scratch directory next to a runtime's root (same filesystem, invisible inside the runtime)."""
        self.get_runtime(runtime_id)
        scratch = self._runtime_dir(runtime_id) / "tmp"
        scratch.mkdir(exist_ok=True)
        return scratch


__all__ = [
    "ArtifactRecord",
    "EmulatorStore",
    "FileRecord",
    "RuntimeRecord",
    "StagedFile",
    "UploadedBytes",
    "decode_cursor",
    "encode_cursor",
    "rfc3339",
]
