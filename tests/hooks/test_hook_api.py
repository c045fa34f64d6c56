"""BctrlHook against the real emulator over loopback: upload, collect, whoami, stage, errors."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pendulum
import pytest

from airflow_provider_bctrl.exceptions import (
    BctrlApiError,
    BctrlAuthError,
    BctrlConflictError,
    BctrlInputError,
    BctrlInvalidRequestError,
    BctrlNotFoundError,
    BctrlRateLimitError,
    BctrlServerError,
    BctrlUncertainOutcomeError,
)
from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.models import CollectedFile, RuntimeStagedFile
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = pytest.mark.usefixtures("bctrl_conn_env")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "q3 report.csv"
    path.write_bytes(b"region,revenue\nnorth,10\nsouth,12\n" * 1000)
    return path


@pytest.fixture
def hook() -> BctrlHook:
    with BctrlHook(max_retries=0) as hook:
        yield hook


def _upload_requests(emu: BctrlEmulator) -> list[dict]:
    return [entry for entry in emu.requests_log() if entry["route"] == "upload"]


# ---------------------------------------------------------------------------- upload


def test_upload_streams_the_file_into_the_runtime_and_the_store(
    emu: BctrlEmulator, hook: BctrlHook, runtime_id: str, report: Path
) -> None:
    staged = hook.upload_file(runtime_id, report, runtime_path="inputs/q3.csv", metadata={"quarter": 3})

    assert isinstance(staged, RuntimeStagedFile)
    assert staged.runtime_id == runtime_id
    assert staged.runtime_path == "inputs/q3.csv"
    assert staged.size_bytes == report.stat().st_size
    assert staged.name == "q3 report.csv"
    assert staged.raw["id"] == staged.id
    assert set(staged.raw) >= {"expiresAt", "sizeBytes", "runtimePath"}
    assert staged.expires_at is None or isinstance(staged.expires_at, pendulum.DateTime)

    assert emu.read_runtime_file(runtime_id, "inputs/q3.csv") == report.read_bytes()
    stored = {f["id"]: f for f in emu.stored_files()}
    assert stored[staged.id]["sha256"] == _sha256(report.read_bytes())
    assert stored[staged.id]["source"] == "upload"


def test_upload_sends_only_the_parts_given(
    emu: BctrlEmulator, hook: BctrlHook, runtime_id: str, report: Path
) -> None:
    emu.clear_requests_log()
    hook.upload_file(runtime_id, report)
    (plain,) = _upload_requests(emu)
    assert plain["formParts"] == ["file"]
    assert plain["fileName"] == "q3 report.csv"
    assert plain["fileContentType"] == "text/csv"
    assert plain["contentLength"] is not None
    assert plain["transferEncoding"] in (None, "")
    assert plain["userAgent"].startswith("airflow-provider-bctrl/")

    emu.clear_requests_log()
    hook.upload_file(
        runtime_id,
        report,
        name="renamed.json",
        runtime_path="in/",
        destination_path="pipelines/q3/renamed.json",
        metadata={"source": "airflow", "rows": [1, 2], "ünï": "cødé"},
    )
    (full,) = _upload_requests(emu)
    assert sorted(full["formParts"]) == ["destinationPath", "file", "metadata", "name", "runtimePath"]
    assert full["fileName"] == "renamed.json"
    assert full["fileContentType"] == "application/json"
    fields = full["formFields"]
    assert fields["name"] == "renamed.json"
    assert fields["runtimePath"] == "in/"
    assert fields["destinationPath"] == "pipelines/q3/renamed.json"
    assert json.loads(fields["metadata"]) == {"source": "airflow", "rows": [1, 2], "ünï": "cødé"}


def test_upload_of_an_empty_file(
    hook: BctrlHook, runtime_id: str, tmp_path: Path, emu: BctrlEmulator
) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    staged = hook.upload_file(runtime_id, empty)
    assert staged.size_bytes == 0
    assert emu.read_runtime_file(runtime_id, staged.runtime_path or "") == b""


def test_upload_from_dev_shm(hook: BctrlHook, runtime_id: str, emu: BctrlEmulator) -> None:
    """/dev/shm is tmpfs: its regular files are real files, unlike /proc's and /sys's."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("this machine has no /dev/shm")
    data = os.urandom(70_000)
    with tempfile.NamedTemporaryFile(dir=shm, prefix="bctrl-test-", suffix=".bin") as handle:
        handle.write(data)
        handle.flush()
        staged = hook.upload_file(runtime_id, handle.name)
    assert staged.size_bytes == len(data)
    assert emu.read_runtime_file(runtime_id, staged.runtime_path or "") == data


def test_ids_are_quoted_into_one_path_segment(hook: BctrlHook, emu: BctrlEmulator, report: Path) -> None:
    emu.clear_requests_log()
    with pytest.raises(BctrlNotFoundError):
        hook.upload_file("rt odd:id@1", report)
    (entry,) = _upload_requests(emu)
    assert entry["path"] == "/v1/runtimes/rt%20odd%3Aid%401/files/upload"
    assert entry["status"] == 404


def test_upload_to_unknown_runtime_is_not_found(hook: BctrlHook, report: Path) -> None:
    with pytest.raises(BctrlNotFoundError) as info:
        hook.upload_file("7d6b6ee5-0000-4000-8000-000000000000", report)
    err = info.value
    assert (err.status, err.code, err.reason_class) == (404, "runtime.not_found", "not_found")
    assert err.request_id
    assert err.request_id in str(err)
    assert str(err).startswith("BCTRL API 404 runtime.not_found: ")


# ---------------------------------------------------------------------------- collect


def test_collect_without_artifact_uses_the_default_space_from_whoami(
    emu: BctrlEmulator, hook: BctrlHook, runtime_id: str
) -> None:
    payload = b'{"rows": 3}'
    emu.write_runtime_file(runtime_id, "/tmp/runtime/output/results.json", payload)
    emu.clear_requests_log()

    first = hook.collect_file(runtime_id, "/tmp/runtime/output/results.json")
    second = hook.collect_file(runtime_id, "/tmp/runtime/output/results.json", name="again.json")

    assert isinstance(first, CollectedFile)
    assert first.artifact is None
    assert first.raw["artifact"] is None
    assert first.file.name == "results.json"
    assert first.file.size_bytes == len(payload)
    assert first.file.content_type == "application/json"
    assert second.file.name == "again.json"
    assert second.file.id != first.file.id
    routes = [entry["route"] for entry in emu.requests_log()]
    assert routes.count("whoami") == 1, routes  # looked up once per hook
    collects = [e for e in emu.requests_log() if e["route"] == "collect"]
    assert all(f"/v1/spaces/{emu.space_id}/" in e["path"] for e in collects)
    assert collects[0]["json"] == {"path": "/tmp/runtime/output/results.json"}
    stored = {f["id"]: f for f in emu.stored_files()}
    assert stored[first.file.id]["sha256"] == _sha256(payload)
    assert stored[first.file.id]["source"] == "runtime"


def test_collect_with_artifact_and_explicit_space(emu: BctrlEmulator, hook: BctrlHook) -> None:
    space_id = "5f2b8f0e-1111-4222-8333-444455556666"
    runtime_id = emu.create_runtime(space_id=space_id)
    emu.write_runtime_file(runtime_id, "reports/out.pdf", b"%PDF-1.7 fake")
    emu.clear_requests_log()

    collected = hook.collect_file(
        runtime_id,
        "reports/out.pdf",
        space_id=space_id,
        storage_path="exports/2026/out.pdf",
        name="out.pdf",
        artifact={"kind": "report", "name": "Quarterly", "metadata": {"pages": 1}},
    )

    assert collected.file.path == "exports/2026/out.pdf"
    artifact = collected.artifact
    assert artifact is not None
    assert artifact.file_id == collected.file.id
    assert artifact.runtime_id == runtime_id
    assert (artifact.kind, artifact.name, artifact.size_bytes) == ("report", "Quarterly", 13)
    assert artifact.raw == collected.raw["artifact"]
    (entry,) = [e for e in emu.requests_log() if e["route"] == "collect"]
    assert entry["json"] == {
        "path": "reports/out.pdf",
        "storagePath": "exports/2026/out.pdf",
        "name": "out.pdf",
        "artifact": {"kind": "report", "name": "Quarterly", "metadata": {"pages": 1}},
    }
    assert not [e for e in emu.requests_log() if e["route"] == "whoami"]

    with pytest.raises(BctrlConflictError) as info:
        hook.collect_file(
            runtime_id, "reports/out.pdf", space_id=space_id, storage_path="exports/2026/out.pdf"
        )
    assert info.value.status == 409


def test_collect_space_from_connection_extra(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    space_id = "0b7d2d7a-aaaa-4bbb-8ccc-ddddeeeeffff"
    runtime_id = emu.create_runtime(space_id=space_id)
    emu.write_runtime_file(runtime_id, "a.txt", b"a")
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_SPACE", emu.airflow_connection_json({"space_id": space_id}))
    emu.clear_requests_log()
    collected = BctrlHook("bctrl_space").collect_file(runtime_id, "a.txt")
    assert collected.file.size_bytes == 1
    assert [e["route"] for e in emu.requests_log()] == ["collect"]


def test_collect_missing_runtime_file_and_unknown_space(hook: BctrlHook, runtime_id: str) -> None:
    with pytest.raises(BctrlNotFoundError) as missing:
        hook.collect_file(runtime_id, "/tmp/runtime/output/never-written.json")
    assert missing.value.status == 404
    with pytest.raises(BctrlNotFoundError) as space:
        hook.collect_file(runtime_id, "a.txt", space_id="9e1d0c6a-0000-4000-8000-000000000000")
    assert space.value.code == "space.not_found"


def test_collect_through_an_escaping_symlink_is_refused_by_the_server(
    emu: BctrlEmulator, hook: BctrlHook, runtime_id: str
) -> None:
    emu.write_runtime_file(runtime_id, "inside.txt", b"x")
    runtime_root = next(p for p in (emu.data_dir).rglob("inside.txt")).parent
    (runtime_root / "escape").symlink_to("/etc")
    with pytest.raises(BctrlInvalidRequestError) as info:
        hook.collect_file(runtime_id, "escape/hostname")
    assert info.value.code == "runtime_file.path_invalid"
    assert info.value.status == 400


# ---------------------------------------------------------------------------- whoami, stage, get_file


def test_whoami(hook: BctrlHook, emu: BctrlEmulator) -> None:
    who = hook.whoami()
    assert who.default_space_id == emu.space_id
    assert who.organization_id
    assert who.scope == "organization"
    assert emu.api_key not in json.dumps(who.raw)


def test_subaccount_header_is_sent(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_SUB", emu.airflow_connection_json({"subaccount_id": "sub-42"}))
    emu.clear_requests_log()
    who = BctrlHook("bctrl_sub").whoami()
    assert who.scope == "subaccount"
    assert who.subaccount_id == "sub-42"
    assert emu.requests_log()[-1]["subaccountId"] == "sub-42"


def test_stage_and_get_file(hook: BctrlHook, emu: BctrlEmulator, runtime_id: str, report: Path) -> None:
    uploaded = hook.upload_file(runtime_id, report, metadata={"k": "v"})
    other_runtime = emu.create_runtime()
    staged = hook.stage_file(other_runtime, uploaded.id, runtime_path="from-store/q3.csv")
    assert staged.id == uploaded.id
    assert emu.read_runtime_file(other_runtime, "from-store/q3.csv") == report.read_bytes()
    stored = hook.get_file(uploaded.id)
    assert stored.id == uploaded.id
    assert stored.size_bytes == report.stat().st_size
    assert stored.source == "upload"
    assert stored.metadata == {"k": "v"}
    assert stored.download_url
    assert stored.download_url.endswith(f"/v1/files/{uploaded.id}/content")
    with pytest.raises(BctrlNotFoundError) as info:
        hook.get_file("3c9d6c1e-0000-4000-8000-000000000000")
    assert info.value.code == "file.not_found"


# ---------------------------------------------------------------------------- errors


def test_wrong_key_is_an_auth_error_without_the_key(
    emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "bctrl_wrong_key_9876"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_WRONG", json.dumps({"conn_type": "bctrl", "host": emu.url, "password": wrong})
    )
    with pytest.raises(BctrlAuthError) as info:
        BctrlHook("bctrl_wrong").whoami()
    assert (info.value.status, info.value.code, info.value.reason_class) == (
        401,
        "auth.required",
        "unauthorized",
    )
    assert wrong not in str(info.value)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, BctrlInvalidRequestError),
        (403, BctrlAuthError),
        (409, BctrlConflictError),
        (429, BctrlRateLimitError),
        (500, BctrlServerError),
        (503, BctrlServerError),
    ],
)
def test_error_statuses_map_to_types(
    emu: BctrlEmulator, hook: BctrlHook, status: int, error_type: type[BctrlApiError]
) -> None:
    emu.add_fault("whoami", status=status)
    with pytest.raises(error_type) as info:
        hook.whoami()
    err = info.value
    assert err.status == status
    assert err.code
    assert err.request_id
    assert str(err).startswith(f"BCTRL API {status} {err.code}: ")


def test_server_error_on_upload_says_it_may_have_acted(
    emu: BctrlEmulator, hook: BctrlHook, runtime_id: str, report: Path
) -> None:
    emu.add_fault("upload", status=500)
    with pytest.raises(BctrlUncertainOutcomeError) as info:
        hook.upload_file(runtime_id, report)
    assert isinstance(info.value, BctrlServerError)
    assert "not retried automatically" in str(info.value)


def test_bad_input_is_refused_before_any_request(
    emu: BctrlEmulator, hook: BctrlHook, runtime_id: str, report: Path
) -> None:
    emu.clear_requests_log()
    with pytest.raises(BctrlInputError, match="runtime_path"):
        hook.upload_file(runtime_id, report, runtime_path="/etc/passwd")
    with pytest.raises(BctrlInputError, match="metadata"):
        hook.upload_file(runtime_id, report, metadata=["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(BctrlInputError, match="runtime_id"):
        hook.collect_file("../x", "a.txt")
    assert emu.requests_log() == []


@pytest.mark.parametrize(("change", "message"), [("shrink", "shrank"), ("grow", "grew")])
def test_a_file_that_changes_size_mid_upload_is_a_clear_input_error(
    emu: BctrlEmulator,
    hook: BctrlHook,
    runtime_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    message: str,
) -> None:
    from airflow_provider_bctrl._progress import TransferProgress

    changing = tmp_path / "being-written.csv"
    changing.write_bytes(b"x" * (5 * 1024 * 1024))
    original_update = TransferProgress.update

    def change_after_first_chunk(self: TransferProgress, done: int) -> None:
        with changing.open("r+b") as handle:  # another process rewrites the file under the upload
            if change == "shrink":
                handle.truncate(1024)
            else:
                handle.seek(0, os.SEEK_END)
                handle.write(b"more")
        original_update(self, done)

    monkeypatch.setattr(TransferProgress, "update", change_after_first_chunk)
    emu.clear_requests_log()
    with pytest.raises(BctrlInputError, match=f"{message} while it was being uploaded") as info:
        hook.upload_file(runtime_id, changing)
    assert "nothing was stored" in str(info.value)
    assert [f for f in emu.stored_files() if f["name"] == "being-written.csv"] == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.csv", "text/csv"),
        ("DATA.JSON", "application/json"),
        ("leads.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("export.parquet", "application/vnd.apache.parquet"),
        ("dump.csv.gz", "application/gzip"),
        ("no-extension", "application/octet-stream"),
        ("weird.zzz", "application/octet-stream"),
    ],
)
def test_content_type_comes_from_the_built_in_table(name: str, expected: str) -> None:
    from airflow_provider_bctrl.hooks.bctrl import guess_content_type

    assert guess_content_type(name) == expected
