"""Stage and download operators (and upload from object storage) against the real emulator.

The operators run their real ``execute`` with the real hook over HTTP. The context holds what
``execute`` reads: a task instance that records ``xcom_push`` (so the XCom contract can be checked
without a metadata DB) and the line's own ``OutletEventAccessors``. Full DAG runs of these operators
are in ``tests/e2e/test_asset_pair.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from _lines import (
    AIRFLOW_3_LINES,
    attach,
    memory_uri,
    outlet_event_accessors,
    outlet_event_keys,
    positional_arguments_error,
)
from airflow.providers.common.compat.sdk import Asset, ObjectStoragePath

from airflow_provider_bctrl.exceptions import BctrlInputError, BctrlNotFoundError, BctrlServerError
from airflow_provider_bctrl.operators import BctrlDownloadFileOperator as ExportedDownload
from airflow_provider_bctrl.operators import BctrlStageFileOperator as ExportedStage
from airflow_provider_bctrl.operators.files import BctrlDownloadFileOperator
from airflow_provider_bctrl.operators.runtime_files import (
    BctrlCollectFileOperator,
    BctrlStageFileOperator,
    BctrlUploadFileOperator,
)
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

STAGED_KEYS = {"id", "name", "runtimeId", "runtimePath", "sizeBytes", "expiresAt"}


class RecordingTI:
    """Stands in for the task instance: records what the operator pushes to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _context() -> dict[str, Any]:
    return {"ti": RecordingTI(), "outlet_events": outlet_event_accessors()}


@pytest.fixture
def memory_filesystem() -> None:
    """fsspec's in-memory filesystem, attached to Airflow's object storage as ``memory://``."""
    attach("memory", fs=fsspec.filesystem("memory"))


@pytest.fixture
def collected(bctrl_conn_env: str, emu: BctrlEmulator) -> tuple[str, str, bytes]:
    """A file collected out of one runtime: ``(source runtime id, file id, bytes)``."""
    runtime = emu.create_runtime()
    data = json.dumps({"rows": list(range(50)), "nonce": uuid.uuid4().hex}).encode()
    emu.write_runtime_file(runtime, "/tmp/runtime/output/results.json", data)
    op = BctrlCollectFileOperator(
        task_id="collect", runtime_id=runtime, path="/tmp/runtime/output/results.json"
    )
    response = op.execute(_context())  # type: ignore[arg-type]
    return runtime, response["file"]["id"], data


def test_package_exports_the_new_operators() -> None:
    assert ExportedStage is BctrlStageFileOperator
    assert ExportedDownload is BctrlDownloadFileOperator


def test_shapes_and_templating() -> None:
    assert set(BctrlStageFileOperator.template_fields) == {
        "runtime_id",
        "file_id",
        "runtime_path",
        "name",
        "bctrl_conn_id",
        "hook_params",
    }
    assert set(BctrlDownloadFileOperator.template_fields) == {
        "file_id",
        "destination",
        "destination_conn_id",
        "bctrl_conn_id",
        "hook_params",
    }
    for operator in (BctrlStageFileOperator, BctrlDownloadFileOperator):
        assert tuple(operator.template_ext) == ()
        assert operator.ui_color.startswith("#")
    with pytest.raises(positional_arguments_error()):
        BctrlStageFileOperator("rt", "f", task_id="s")  # type: ignore[misc]
    stage = BctrlStageFileOperator(task_id="s", runtime_id="rt", file_id="f", bctrl_conn_id="nope")
    download = BctrlDownloadFileOperator(task_id="d", file_id="f", destination="/tmp/x.json")
    assert "hook" not in vars(stage)
    assert "hook" not in vars(download)


def test_stage_after_collect_across_two_runtimes(
    collected: tuple[str, str, bytes], emu: BctrlEmulator
) -> None:
    source_runtime, file_id, data = collected
    target_runtime = emu.create_runtime()
    assert target_runtime != source_runtime
    files_before = len(emu.stored_files())
    context = _context()

    staged = BctrlStageFileOperator(
        task_id="stage", runtime_id=target_runtime, file_id=file_id, runtime_path="inputs/"
    ).execute(context)  # type: ignore[arg-type]

    assert set(staged) == STAGED_KEYS
    assert staged["id"] == file_id
    assert staged["runtimeId"] == target_runtime
    assert staged["runtimePath"] == "inputs/results.json"
    assert staged["sizeBytes"] == len(data)
    assert context["ti"].pushed == {"file_id": file_id, "runtime_path": "inputs/results.json"}
    assert emu.read_runtime_file(target_runtime, "inputs/results.json") == data
    # Staging copies a stored file: no new durable file, nothing re-uploaded.
    assert len(emu.stored_files()) == files_before
    assert [r["path"] for r in emu.requests_log()][-1] == f"/v1/runtimes/{target_runtime}/files/stage"


def test_stage_renames_and_pushes_nothing_without_xcom(
    collected: tuple[str, str, bytes], emu: BctrlEmulator
) -> None:
    _, file_id, data = collected
    target_runtime = emu.create_runtime()
    context = _context()
    staged = BctrlStageFileOperator(
        task_id="stage",
        runtime_id=target_runtime,
        file_id=file_id,
        runtime_path="in/today/",
        name="today.json",
        do_xcom_push=False,
    ).execute(context)  # type: ignore[arg-type]
    assert staged["runtimePath"] == "in/today/today.json"
    assert context["ti"].pushed == {}
    assert emu.read_runtime_file(target_runtime, "in/today/today.json") == data


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"runtime_id": "rt/../x"}, "runtime_id"),
        ({"file_id": ""}, "file_id"),
        ({"runtime_path": "/workspace/in.csv"}, "runtime_path"),
        ({"name": "a/b.csv"}, "name"),
        ({"bctrl_conn_id": "a b/c"}, "bctrl_conn_id"),
    ],
)
def test_stage_checks_arguments_before_any_request(overrides: dict[str, Any], argument: str) -> None:
    kwargs: dict[str, Any] = {"task_id": "stage", "runtime_id": "rt_1", "file_id": "f_1", **overrides}
    op = BctrlStageFileOperator(**kwargs)
    with pytest.raises(BctrlInputError, match=argument):
        op.execute(_context())  # type: ignore[arg-type]


def test_stage_of_an_unknown_file_is_not_found(bctrl_conn_env: str, runtime_id: str) -> None:
    op = BctrlStageFileOperator(task_id="stage", runtime_id=runtime_id, file_id=str(uuid.uuid4()))
    with pytest.raises(BctrlNotFoundError, match=r"file\.not_found"):
        op.execute(_context())  # type: ignore[arg-type]


def test_download_to_a_local_path_is_byte_exact(collected: tuple[str, str, bytes], tmp_path: Path) -> None:
    _, file_id, data = collected
    context = _context()
    target = tmp_path / "out" / "results-copy.json"
    target.parent.mkdir()

    path = BctrlDownloadFileOperator(task_id="download", file_id=file_id, destination=str(target)).execute(
        context  # type: ignore[arg-type]
    )

    assert path == str(target.resolve())  # a plain path for a local destination, not a file:// URI
    assert target.read_bytes() == data
    assert context["ti"].pushed == {"uri": target.resolve().as_uri()}
    assert sorted(p.name for p in target.parent.iterdir()) == ["results-copy.json"]  # no .part left


def test_download_into_a_directory_uses_the_stored_name(
    collected: tuple[str, str, bytes], tmp_path: Path
) -> None:
    _, file_id, data = collected
    path = BctrlDownloadFileOperator(task_id="download", file_id=file_id, destination=f"{tmp_path}/").execute(
        _context()
    )  # type: ignore[arg-type]
    assert path == str((tmp_path / "results.json").resolve())
    assert (tmp_path / "results.json").read_bytes() == data


def test_download_to_memory_object_storage_is_byte_exact(
    collected: tuple[str, str, bytes], memory_filesystem: None
) -> None:
    _, file_id, data = collected
    folder = f"memory://downloads-{uuid.uuid4().hex}"
    written = memory_uri(folder.removeprefix("memory://"))  # what this line's object storage writes back

    by_uri = BctrlDownloadFileOperator(
        task_id="download", file_id=file_id, destination=f"{folder}/report.json"
    ).execute(_context())  # type: ignore[arg-type]
    by_path = BctrlDownloadFileOperator(
        task_id="download_path", file_id=file_id, destination=ObjectStoragePath(f"{folder}/again.json")
    ).execute(_context())  # type: ignore[arg-type]

    assert by_uri == f"{written}/report.json"
    assert by_path == f"{written}/again.json"
    for uri in (by_uri, by_path):
        with ObjectStoragePath(uri).open("rb") as handle:
            assert handle.read() == data
    assert sorted(p.name for p in ObjectStoragePath(folder).iterdir()) == ["again.json", "report.json"]


def test_failed_download_leaves_the_destination_untouched(
    collected: tuple[str, str, bytes], emu: BctrlEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, file_id, _ = collected
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_NORETRY", emu.airflow_connection_json({"max_retries": 0}))
    target = tmp_path / "results.json"
    target.write_bytes(b"yesterday's good copy")
    emu.add_fault("content", status=500)

    op = BctrlDownloadFileOperator(
        task_id="download", file_id=file_id, destination=str(target), bctrl_conn_id="bctrl_noretry"
    )
    with pytest.raises(BctrlServerError):
        op.execute(_context())  # type: ignore[arg-type]

    assert target.read_bytes() == b"yesterday's good copy"
    assert os.listdir(tmp_path) == ["results.json"]


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"file_id": "a/b"}, "file_id"),
        ({"destination": ""}, "destination"),
        ({"destination": 42}, "destination"),
        ({"destination": "s3://bucket/k", "destination_conn_id": "aws/../x"}, "destination_conn_id"),
    ],
)
def test_download_checks_arguments_before_any_request(overrides: dict[str, Any], argument: str) -> None:
    kwargs: dict[str, Any] = {"task_id": "d", "file_id": "f_1", "destination": "/tmp/x.json", **overrides}
    op = BctrlDownloadFileOperator(**kwargs)
    with pytest.raises(BctrlInputError, match=argument):
        op.execute(_context())  # type: ignore[arg-type]
    assert "hook" not in vars(op)


def test_download_of_an_unknown_file_is_not_found(bctrl_conn_env: str, tmp_path: Path) -> None:
    op = BctrlDownloadFileOperator(
        task_id="download", file_id=str(uuid.uuid4()), destination=str(tmp_path / "x.json")
    )
    with pytest.raises(BctrlNotFoundError):
        op.execute(_context())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_upload_from_memory_object_storage(
    bctrl_conn_env: str, emu: BctrlEmulator, runtime_id: str, memory_filesystem: None
) -> None:
    data = os.urandom(300_000)
    source = ObjectStoragePath(f"memory://exports-{uuid.uuid4().hex}/2030/export.bin")
    source.parent.mkdir(parents=True, exist_ok=True)
    with source.open("wb") as handle:
        handle.write(data)
    context = _context()

    staged = BctrlUploadFileOperator(
        task_id="upload", runtime_id=runtime_id, source=str(source), runtime_path="inputs/"
    ).execute(context)  # type: ignore[arg-type]

    assert staged["runtimePath"] == "inputs/export.bin"
    assert context["ti"].pushed["file_id"] == staged["id"]
    stored = next(f for f in emu.stored_files() if f["id"] == staged["id"])
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert emu.read_runtime_file(runtime_id, "inputs/export.bin") == data


def test_a_download_outlet_gets_the_ids_in_its_event_extra(
    collected: tuple[str, str, bytes], emu: BctrlEmulator, tmp_path: Path
) -> None:
    """The download adds what it moved to the event of the asset (2.11: dataset) declared in its outlets."""
    _, file_id, _ = collected
    stored = next(f for f in emu.stored_files() if f["id"] == file_id)
    space = emu.space_id
    local = Asset(f"file://{tmp_path}/report.json")
    other = Asset(f"file://{tmp_path}/not-declared.json")

    context = _context()
    path = BctrlDownloadFileOperator(
        task_id="download", file_id=file_id, destination=str(tmp_path / "report.json"), outlets=[local]
    ).execute(context)  # type: ignore[arg-type]

    assert context["outlet_events"][local].extra == {
        "file_id": file_id,
        "destination": path,
        "destination_uri": Path(path).as_uri(),
        "space_id": space,
        "path": stored["path"],
        "uri": f"bctrl://{space}/{stored['path']}",
    }
    # Only declared outlets get events: the accessor was never asked for another asset.
    assert outlet_event_keys(context["outlet_events"]) == [local.uri]
    assert other.uri not in outlet_event_keys(context["outlet_events"])


@pytest.mark.airflow_lines(
    *AIRFLOW_3_LINES, reason="a bctrl:// outlet needs Airflow 3: 2.11 refuses bctrl:// assets by design"
)
def test_a_stage_outlet_gets_the_ids_in_its_event_extra(
    collected: tuple[str, str, bytes], emu: BctrlEmulator
) -> None:
    """Stage's natural outlet is the logical ``bctrl://`` asset the staged file belongs to."""
    _, file_id, _ = collected
    space = emu.space_id
    logical = Asset(f"bctrl://{space}/reports/daily")
    undeclared = Asset(f"bctrl://{space}/not/declared")

    context = _context()
    target_runtime = emu.create_runtime()
    BctrlStageFileOperator(
        task_id="stage", runtime_id=target_runtime, file_id=file_id, outlets=[logical]
    ).execute(context)  # type: ignore[arg-type]

    assert context["outlet_events"][logical].extra == {
        "file_id": file_id,
        "runtime_id": target_runtime,
        "runtime_path": "results.json",
    }
    assert outlet_event_keys(context["outlet_events"]) == [logical.uri]
    assert undeclared.uri not in outlet_event_keys(context["outlet_events"])


def test_no_outlets_means_no_lookup_and_no_events(
    collected: tuple[str, str, bytes], emu: BctrlEmulator, tmp_path: Path
) -> None:
    _, file_id, _ = collected
    emu.clear_requests_log()
    context = _context()
    BctrlDownloadFileOperator(task_id="download", file_id=file_id, destination=str(tmp_path / "x")).execute(
        context  # type: ignore[arg-type]
    )
    assert len(context["outlet_events"]) == 0
    assert [r["path"] for r in emu.requests_log()] == [f"/v1/files/{file_id}/content"]
