"""Uploads from object storage and downloads to local paths or object storage, byte-exact and atomic."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import fsspec
import pytest
from _lines import attach, memory_uri
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_bctrl.exceptions import (
    BctrlInputError,
    BctrlNotFoundError,
    BctrlServerError,
    BctrlTransportError,
)
from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = pytest.mark.usefixtures("bctrl_conn_env")


@pytest.fixture(scope="module", autouse=True)
def memory_filesystem() -> None:
    """fsspec's in-memory filesystem, attached to Airflow's object storage as ``memory://``."""
    attach("memory", fs=fsspec.filesystem("memory"))


@pytest.fixture
def hook() -> BctrlHook:
    return BctrlHook(max_retries=2, backoff_base=0.01)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_upload_from_memory_object_storage(hook: BctrlHook, emu: BctrlEmulator, runtime_id: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    source = ObjectStoragePath("memory://exports/2026/export.parquet")
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)

    staged = hook.upload_file(runtime_id, source, runtime_path="in/")
    assert staged.name == "export.parquet"
    assert staged.size_bytes == len(data)
    stored = {f["id"]: f for f in emu.stored_files()}
    assert stored[staged.id]["sha256"] == _digest(data)
    assert emu.read_runtime_file(runtime_id, "in/export.parquet") == data

    by_uri = hook.upload_file(runtime_id, "memory://exports/2026/export.parquet", name="again.parquet")
    assert {f["id"]: f for f in emu.stored_files()}[by_uri.id]["sha256"] == _digest(data)


def test_upload_from_file_uri(hook: BctrlHook, emu: BctrlEmulator, runtime_id: str, tmp_path: Path) -> None:
    local = tmp_path / "local.csv"
    local.write_bytes(b"a,b\n" * 100)
    staged = hook.upload_file(runtime_id, local.as_uri())
    assert staged.size_bytes == 400
    assert {f["id"]: f for f in emu.stored_files()}[staged.id]["sha256"] == _digest(local.read_bytes())


def test_missing_object_is_refused_before_any_request(
    hook: BctrlHook, emu: BctrlEmulator, runtime_id: str
) -> None:
    emu.clear_requests_log()
    with pytest.raises(BctrlInputError, match="does not exist"):
        hook.upload_file(runtime_id, "memory://exports/nothing-here.csv")
    with pytest.raises(BctrlInputError, match="not a file"):
        hook.upload_file(runtime_id, "memory://exports")
    assert emu.requests_log() == []


@pytest.fixture
def stored_file(hook: BctrlHook, runtime_id: str, tmp_path: Path) -> tuple[str, bytes]:
    data = os.urandom(2 * 1024 * 1024 + 3)
    source = tmp_path / "stored report.pdf"
    source.write_bytes(data)
    return hook.upload_file(runtime_id, source).id, data


def test_download_to_a_local_file_and_directory(
    hook: BctrlHook, stored_file: tuple[str, bytes], tmp_path: Path
) -> None:
    file_id, data = stored_file
    target = tmp_path / "out" / "copy.pdf"
    target.parent.mkdir()
    uri = hook.download_file(file_id, target)
    assert uri == target.resolve().as_uri()
    assert target.read_bytes() == data

    into_dir = hook.download_file(file_id, tmp_path / "out")
    assert into_dir.endswith("/stored%20report.pdf")
    assert (tmp_path / "out" / "stored report.pdf").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.pdf", "stored report.pdf"]


def test_download_to_memory_object_storage(hook: BctrlHook, stored_file: tuple[str, bytes]) -> None:
    file_id, data = stored_file
    uri = hook.download_file(file_id, "memory://downloads/report.pdf")
    assert uri == memory_uri("downloads/report.pdf")
    assert ObjectStoragePath(uri).read_bytes() == data
    leftovers = [
        p.name for p in ObjectStoragePath("memory://downloads").iterdir() if p.name.endswith(".part")
    ]
    assert leftovers == []


def test_failed_download_leaves_the_old_file_and_no_part_file(
    hook: BctrlHook, emu: BctrlEmulator, stored_file: tuple[str, bytes], tmp_path: Path
) -> None:
    file_id, _ = stored_file
    folder = tmp_path / "downloads"
    folder.mkdir()
    target = folder / "keep.pdf"
    target.write_bytes(b"previous version")
    emu.add_fault("content", count=3, status=500)
    with pytest.raises(BctrlServerError):
        hook.download_file(file_id, target)
    assert target.read_bytes() == b"previous version"
    assert [p.name for p in folder.iterdir()] == ["keep.pdf"]

    emu.add_fault("content", drop=True, after="processing", count=3)  # cut off halfway, every time
    with pytest.raises(BctrlTransportError):
        hook.download_file(file_id, target)
    assert target.read_bytes() == b"previous version"
    assert [p.name for p in folder.iterdir()] == ["keep.pdf"]


def test_dropped_download_is_retried(
    hook: BctrlHook, emu: BctrlEmulator, stored_file: tuple[str, bytes], tmp_path: Path
) -> None:
    file_id, data = stored_file
    emu.add_fault("content", drop=True)
    emu.clear_requests_log()
    hook.download_file(file_id, tmp_path / "retried.pdf")
    assert (tmp_path / "retried.pdf").read_bytes() == data
    assert len(hook.retry_waits) == 1
    assert sum(1 for e in emu.requests_log() if e["route"] == "content") == 2


def test_download_of_unknown_file(hook: BctrlHook, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(BctrlNotFoundError):
        hook.download_file("1e3c2b1a-0000-4000-8000-000000000000", folder / "x.bin")
    assert list(folder.iterdir()) == []


def test_download_into_a_missing_directory_is_refused(
    hook: BctrlHook, stored_file: tuple[str, bytes], tmp_path: Path
) -> None:
    with pytest.raises(BctrlInputError, match="does not exist"):
        hook.download_file(stored_file[0], tmp_path / "no" / "such" / "dir" / "x.pdf")


def test_download_attempts_are_max_retries_plus_one(
    emu: BctrlEmulator, stored_file: tuple[str, bytes], tmp_path: Path
) -> None:
    file_id, _ = stored_file
    emu.add_fault("content", count=10, status=503)
    emu.clear_requests_log()
    hook = BctrlHook(max_retries=2, backoff_base=0.01)
    with pytest.raises(BctrlServerError):
        hook.download_file(file_id, tmp_path / "never.bin")
    assert sum(1 for e in emu.requests_log() if e["route"] == "content") == 3
    assert len(hook.retry_waits) == 2
    emu.clear_faults()


def test_a_source_deleted_between_attempts_is_an_input_error(
    emu: BctrlEmulator, runtime_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "short-lived.csv"
    source.write_text("a\n")
    emu.add_fault("upload", status=503)
    hook = BctrlHook(max_retries=2)
    hook._sleep = lambda seconds: source.unlink()  # the file goes away during the backoff
    with pytest.raises(BctrlInputError, match="can no longer be read"):
        hook.upload_file(runtime_id, source)


def test_a_string_uri_naming_an_existing_prefix_gets_the_file_name(
    hook: BctrlHook, stored_file: tuple[str, bytes]
) -> None:
    file_id, data = stored_file
    ObjectStoragePath("memory://prefix-dir/keep.txt").parent.mkdir(parents=True, exist_ok=True)
    ObjectStoragePath("memory://prefix-dir/keep.txt").write_bytes(b"k")
    uri = hook.download_file(file_id, "memory://prefix-dir")
    assert uri == memory_uri("prefix-dir/stored report.pdf")
    assert ObjectStoragePath(uri).read_bytes() == data
