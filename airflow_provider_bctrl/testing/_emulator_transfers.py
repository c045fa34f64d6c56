"""Moving bytes between a runtime and the durable store: upload, stage, collect, and the browser's writes.

Each function works on an :class:`EmulatorStore` and keeps its promises: nothing half-written is ever
visible (bytes go to scratch space on the same filesystem and are renamed into place), a client-chosen
path never leaves the runtime's root or the space's key space, and a temporary file handed in is
always consumed or deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import uuid
from pathlib import Path
from typing import Any

from airflow_provider_bctrl.testing import _emulator_paths as paths
from airflow_provider_bctrl.testing._emulator_errors import conflict, invalid, not_found
from airflow_provider_bctrl.testing._emulator_records import (
    STAGED_LIFETIME,
    ArtifactRecord,
    FileRecord,
    RuntimeRecord,
    StagedFile,
    UploadedBytes,
    guess_content_type,
    parse_metadata,
    rfc3339,
    utc_now,
)
from airflow_provider_bctrl.testing._emulator_store import EmulatorStore


def _materialise(store: EmulatorStore, runtime: RuntimeRecord, blob: Path, rel_path: str) -> None:
    """Put the bytes of ``blob`` at ``/workspace/<rel_path>`` in ``runtime``."""
    segments = [paths.WORKSPACE, *rel_path.split("/")]
    root = store.runtime_root(runtime.id)
    parent = paths.make_parents_inside(root, segments[:-1], field="runtimePath", shown=rel_path)
    paths.place_file(
        blob,
        parent,
        segments[-1],
        store.runtime_dir(runtime.id) / "tmp",
        field="runtimePath",
        shown=rel_path,
    )


def _staged(record: FileRecord, runtime: RuntimeRecord, name: str, rel_path: str) -> StagedFile:
    return StagedFile(
        file_id=record.id,
        name=name,
        runtime_id=runtime.id,
        runtime_path=rel_path,
        size_bytes=record.size_bytes,
        expires_at=rfc3339(utc_now() + STAGED_LIFETIME),
    )


def commit_upload(
    store: EmulatorStore,
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
        runtime = store.require_active(store.get_runtime(runtime_id))
        display = paths.validate_name(name if name is not None else _default_name(upload.file_name))
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
        with store.lock:
            store.check_path_free(runtime.space_id, durable, "destinationPath")
            # Materialise first: if the workspace path is unusable nothing has been stored yet.
            _materialise(store, runtime, upload.tmp_path, rel_path)
            store.add_file(record, upload.tmp_path)
        return _staged(record, runtime, display, rel_path)
    finally:
        upload.tmp_path.unlink(missing_ok=True)


def _default_name(file_name: str | None) -> str:
    # Some clients send a full client-side path as the filename; only its last segment is a name.
    base = (file_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    return base or "file"


def stage(
    store: EmulatorStore, runtime_id: str, file_id: str, runtime_path: str | None, name: str | None
) -> StagedFile:
    """Materialise the durable file ``file_id`` in ``runtime_id`` (no new durable file)."""
    record = store.get_file(file_id)
    runtime = store.require_active(store.get_runtime(runtime_id))
    display = paths.validate_name(name if name is not None else record.name)
    rel_path = paths.workspace_path(runtime_path, display)
    blob = store.blob_path(record)
    if not blob.is_file():
        raise not_found("file.not_found", "The file's bytes are gone from the store.", fileId=file_id)
    with store.lock:
        _materialise(store, runtime, blob, rel_path)
    return _staged(record, runtime, display, rel_path)


def resolve_runtime_file(
    store: EmulatorStore, runtime_id: str, path: str, *, field_name: str = "path"
) -> str:
    """The real path of an existing regular file at runtime path ``path``; 404 when there is none."""
    segments = paths.runtime_location(path, field=field_name)
    real = paths.resolve_inside(store.runtime_root(runtime_id), segments, field=field_name, shown=path)
    try:
        info = os.stat(real)
    except OSError:
        raise not_found("runtime_file.not_found", "No file at this path in the runtime.", path=path) from None
    if not stat.S_ISREG(info.st_mode):
        raise not_found("runtime_file.not_found", "The path in the runtime is not a regular file.", path=path)
    return real


def collect(
    store: EmulatorStore,
    space_id: str,
    runtime_id: str,
    path: str,
    *,
    storage_path: str | None,
    name: str | None,
    artifact: dict[str, Any] | None,
) -> tuple[FileRecord, ArtifactRecord | None]:
    """Copy a runtime file into the space's store; optionally record it as a run artifact."""
    store.get_space(space_id)
    runtime = store.get_runtime(runtime_id)
    if runtime.space_id != space_id:
        raise not_found("runtime.not_found", "No runtime with this id in this space.", runtimeId=runtime_id)
    store.require_active(runtime)
    if name is not None:
        paths.validate_name(name)
    real = resolve_runtime_file(store, runtime_id, path)
    display = name if name is not None else paths.validate_name(os.path.basename(real))
    file_id = str(uuid.uuid4())
    durable = paths.durable_path(storage_path, display, f"collected/{file_id}/{display}", field="storagePath")
    with store.lock:
        store.check_path_free(space_id, durable, "storagePath")
    tmp = store.scratch_dir() / f"collect-{file_id}"
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
        with store.lock:
            store.check_path_free(space_id, durable, "storagePath")
            store.add_file(record, tmp)
            if artifact is not None:
                recorded = ArtifactRecord(
                    id=str(uuid.uuid4()),
                    file_id=file_id,
                    space_id=space_id,
                    run_id=str(runtime.run_id),  # the active run: collect checked it is active
                    runtime_id=runtime.id,
                    kind=artifact.get("kind") or "file",
                    name=artifact.get("name") or display,
                    size_bytes=size,
                    created_at=now,
                    metadata=artifact.get("metadata"),
                )
                store.add_artifact(recorded)
        return record, recorded
    finally:
        tmp.unlink(missing_ok=True)


def put_runtime_file(store: EmulatorStore, runtime_id: str, path: str, tmp_path: Path) -> tuple[str, int]:
    """Move ``tmp_path`` to runtime path ``path`` as if the browser wrote it; (absolute path, size)."""
    try:
        store.get_runtime(runtime_id)
        segments = paths.runtime_location(path)
        if not segments:
            raise invalid("'path' must name a file.", code="runtime_file.path_invalid", path=path)
        root = store.runtime_root(runtime_id)
        with store.lock:
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
