"""The emulator's state: spaces, runtimes, durable files and artifacts, persisted in a data directory.

The records are in :mod:`._emulator_records`; moving bytes in and out (upload, stage, collect) is
:mod:`._emulator_transfers`.

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

import dataclasses
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from airflow_provider_bctrl.testing import _emulator_paths as paths
from airflow_provider_bctrl.testing._emulator_errors import conflict, not_found
from airflow_provider_bctrl.testing._emulator_records import (
    FORMAT_VERSION,
    RUNTIME_ACTIVE,
    RUNTIME_STOPPED,
    ArtifactRecord,
    FileRecord,
    RuntimeRecord,
    RuntimeStart,
    rfc3339,
    utc_now,
    write_json_atomic,
)

log = logging.getLogger(__name__)

R = TypeVar("R")


def _read_records(
    files: Iterable[Path], parse: Callable[[dict[str, Any]], R]
) -> Iterator[tuple[dict[str, Any], R]]:
    """Each persisted record that parses, in name order, with its JSON; an unreadable one is logged and skipped."""
    for path in sorted(files):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            yield data, parse(data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("Skipping unreadable record %s: %s", path, exc)


class EmulatorStore:
    """Thread-safe state of one emulator, kept in memory and persisted under ``data_dir``.

    :param data_dir: directory holding the state; created when missing, reused when it exists.
    :param default_space_id: the default space; when ``None`` the persisted one, else a new uuid4.
    """

    def __init__(self, data_dir: str | os.PathLike[str], default_space_id: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.lock = threading.RLock()
        self._spaces: set[str] = set()
        self._runtimes: dict[str, RuntimeRecord] = {}
        self._files: dict[str, FileRecord] = {}
        self._paths: dict[tuple[str, str], str] = {}
        self._artifacts: dict[str, ArtifactRecord] = {}
        #: Per runtime: Idempotency-Key of a start -> {"runId", "started"} it answered first.
        self._start_keys: dict[str, dict[str, dict[str, Any]]] = {}
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
            for _, record in _read_records((space_dir / "files").glob("*.json"), FileRecord.from_json):
                self._files[record.id] = record
                self._paths[(record.space_id, record.path)] = record.id
            for _, artifact in _read_records(
                (space_dir / "artifacts").glob("*.json"), ArtifactRecord.from_json
            ):
                self._artifacts[artifact.id] = artifact
        for data, runtime in _read_records(
            (self.data_dir / "runtimes").glob("*/runtime.json"), RuntimeRecord.from_json
        ):
            self._runtimes[runtime.id] = runtime
            keys = data.get("idempotencyKeys")
            self._start_keys[runtime.id] = dict(keys) if isinstance(keys, dict) else {}

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

    def space_dir(self, space_id: str) -> Path:
        """The space's folder: ``blobs/``, ``files/`` and ``artifacts/``."""
        return self.data_dir / "spaces" / space_id

    def runtime_dir(self, runtime_id: str) -> Path:
        """The runtime's folder: ``root/`` (its filesystem) and ``tmp/`` (scratch)."""
        return self.data_dir / "runtimes" / runtime_id

    def runtime_root(self, runtime_id: str) -> Path:
        """The directory that is ``/`` inside the runtime."""
        return self.runtime_dir(runtime_id) / "root"

    def scratch_dir(self) -> Path:
        """Where in-flight uploads are written (same filesystem as the blobs, so renames are atomic)."""
        return self.data_dir / "tmp"

    def ensure_space(self, space_id: str) -> None:
        """Create the space ``space_id`` unless it exists."""
        with self.lock:
            if space_id in self._spaces:
                return
            space_dir = self.space_dir(space_id)
            for sub in ("blobs", "files", "artifacts"):
                (space_dir / sub).mkdir(parents=True, exist_ok=True)
            write_json_atomic(space_dir / "space.json", {"id": space_id, "createdAt": rfc3339(utc_now())})
            self._spaces.add(space_id)

    def get_space(self, space_id: str) -> str:
        """``space_id`` when it exists; 404 ``space.not_found`` otherwise."""
        with self.lock:
            if space_id not in self._spaces:
                raise not_found("space.not_found", "No space with this id.", spaceId=space_id)
        return space_id

    def create_runtime(
        self, runtime_id: str | None = None, space_id: str | None = None, *, active: bool = True
    ) -> RuntimeRecord:
        """Create a runtime (a uuid4 id when ``runtime_id`` is None) in ``space_id`` (created if new).

        It is created ``active`` with a run of its own, as if someone had started it (what every
        test written before runtime states expects), or ``stopped`` with no run when ``active`` is
        false, for tests that start it through the API.
        """
        runtime_id = paths.validate_id(runtime_id, kind="runtimeId") if runtime_id else str(uuid.uuid4())
        space_id = paths.validate_id(space_id, kind="spaceId") if space_id else self.default_space_id
        with self.lock:
            if runtime_id in self._runtimes:
                raise conflict("runtime.exists", "A runtime with this id exists.", runtimeId=runtime_id)
            self.ensure_space(space_id)
            record = RuntimeRecord(
                runtime_id,
                space_id,
                str(uuid.uuid4()) if active else None,
                rfc3339(utc_now()),
                RUNTIME_ACTIVE if active else RUNTIME_STOPPED,
            )
            runtime_dir = self.runtime_dir(runtime_id)
            (runtime_dir / "root" / paths.WORKSPACE).mkdir(parents=True, exist_ok=True)
            (runtime_dir / "tmp").mkdir(exist_ok=True)
            self._start_keys[runtime_id] = {}
            self._save_runtime(record)
            return record

    def _save_runtime(self, record: RuntimeRecord) -> None:
        """Persist ``record`` with its remembered start keys (caller holds the lock)."""
        data = {**record.to_json(), "idempotencyKeys": self._start_keys.get(record.id, {})}
        write_json_atomic(self.runtime_dir(record.id) / "runtime.json", data)
        self._runtimes[record.id] = record

    def start_runtime(self, runtime_id: str, idempotency_key: str | None = None) -> RuntimeStart:
        """Start ``runtime_id``: open a new run, unless one is active or the key was seen before.

        - A key seen before on this runtime answers the run that key started, whatever happened
          since: a retried start never opens a second run.
        - A start of an active runtime answers its active run with ``started`` false.
        - Otherwise a new run opens and the runtime becomes active.
        """
        with self.lock:
            runtime = self.get_runtime(runtime_id)
            keys = self._start_keys.setdefault(runtime_id, {})
            if idempotency_key is not None and idempotency_key in keys:
                seen = keys[idempotency_key]
                return RuntimeStart(runtime, str(seen["runId"]), bool(seen["started"]))
            if runtime.status == RUNTIME_ACTIVE and runtime.run_id is not None:
                outcome = RuntimeStart(runtime, runtime.run_id, False)
            else:
                runtime = dataclasses.replace(runtime, run_id=str(uuid.uuid4()), status=RUNTIME_ACTIVE)
                outcome = RuntimeStart(runtime, str(runtime.run_id), True)
            if idempotency_key is not None:
                keys[idempotency_key] = {"runId": outcome.run_id, "started": outcome.started}
            self._save_runtime(runtime)
            return outcome

    def stop_runtime(self, runtime_id: str) -> RuntimeRecord:
        """Stop ``runtime_id``'s active run; 409 ``runtime.not_active`` when it is not running.

        The runtime's files stay (the emulator keeps its filesystem), but file operations answer 409
        until it is started again. Returns the stopped record (``run_id`` is the run that ended).
        """
        with self.lock:
            runtime = self.require_active(self.get_runtime(runtime_id))
            stopped = dataclasses.replace(runtime, status=RUNTIME_STOPPED)
            self._save_runtime(stopped)
            return stopped

    @staticmethod
    def require_active(runtime: RuntimeRecord) -> RuntimeRecord:
        """``runtime`` when it is active; 409 ``runtime.not_active`` otherwise."""
        if runtime.status != RUNTIME_ACTIVE:
            raise conflict(
                "runtime.not_active",
                "The runtime is not active; start it before using its files.",
                runtimeId=runtime.id,
                status=runtime.status,
            )
        return runtime

    def get_runtime(self, runtime_id: str) -> RuntimeRecord:
        """The runtime ``runtime_id``; 404 ``runtime.not_found`` otherwise."""
        with self.lock:
            record = self._runtimes.get(runtime_id)
        if record is None:
            raise not_found("runtime.not_found", "No runtime with this id.", runtimeId=runtime_id)
        return record

    def runtimes(self) -> list[RuntimeRecord]:
        """All runtimes, oldest first."""
        with self.lock:
            return sorted(self._runtimes.values(), key=lambda r: (r.created_at, r.id))

    # ---------------------------------------------------------------------------------- durable files

    def get_file(self, file_id: str) -> FileRecord:
        """The durable file ``file_id``; 404 ``file.not_found`` otherwise."""
        with self.lock:
            record = self._files.get(file_id)
        if record is None:
            raise not_found("file.not_found", "No file with this id.", fileId=file_id)
        return record

    def blob_path(self, record: FileRecord) -> Path:
        """Where the bytes of ``record`` live."""
        return self.space_dir(record.space_id) / "blobs" / record.id

    def files(self) -> list[FileRecord]:
        """The whole durable store, oldest first."""
        with self.lock:
            return sorted(self._files.values(), key=lambda f: (f.created_at, f.id))

    def artifacts(self) -> list[ArtifactRecord]:
        """All recorded artifacts, oldest first."""
        with self.lock:
            return sorted(self._artifacts.values(), key=lambda a: (a.created_at, a.id))

    def runtime_files(self, runtime_id: str) -> list[FileRecord]:
        """Durable files collected out of ``runtime_id``, in a stable order (for paging)."""
        self.get_runtime(runtime_id)
        with self.lock:
            found = [f for f in self._files.values() if f.runtime_id == runtime_id and f.source == "runtime"]
        return sorted(found, key=lambda f: (f.created_at, f.id))

    def check_path_free(self, space_id: str, path: str, field_name: str) -> None:
        """409 ``storage_file.path_exists`` when ``path`` already names a file in the space."""
        if (space_id, path) in self._paths:
            raise conflict(
                "storage_file.path_exists",
                f"'{field_name}' already names a file in this space.",
                field=field_name,
                path=path,
                fileId=self._paths[(space_id, path)],
            )

    def add_file(self, record: FileRecord, tmp_path: Path) -> None:
        """Move finished bytes into the store and persist the record (caller holds the lock)."""
        self.check_path_free(record.space_id, record.path, "path")
        blob = self.blob_path(record)
        os.replace(tmp_path, blob)
        try:
            write_json_atomic(
                self.space_dir(record.space_id) / "files" / f"{record.id}.json", record.to_json()
            )
        except BaseException:
            blob.unlink(missing_ok=True)
            raise
        self._files[record.id] = record
        self._paths[(record.space_id, record.path)] = record.id

    def add_artifact(self, record: ArtifactRecord) -> None:
        """Persist and register a run artifact (caller holds the lock)."""
        write_json_atomic(
            self.space_dir(record.space_id) / "artifacts" / f"{record.id}.json", record.to_json()
        )
        self._artifacts[record.id] = record

    # ------------------------------------------------------------------- control API: runtime files

    def runtime_scratch(self, runtime_id: str) -> Path:
        """Scratch directory next to a runtime's root (same filesystem, invisible inside the runtime)."""
        self.get_runtime(runtime_id)
        scratch = self.runtime_dir(runtime_id) / "tmp"
        scratch.mkdir(exist_ok=True)
        return scratch
