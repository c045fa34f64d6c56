"""Bad input is refused with a message that says what to fix, before any request is sent."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_bctrl.exceptions import BctrlConnectionConfigError, BctrlError, BctrlInputError
from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = pytest.mark.usefixtures("bctrl_conn_env")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n")
    directory = tmp_path / "a-directory"
    directory.mkdir()
    # Tests run as root, where chmod 000 does not stop reads (decisions.md #5): a path that goes
    # through a regular file cannot be opened by anyone.
    through_file = good / "child.csv"
    unix_socket = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(unix_socket))
    sock.close()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    return {
        "good": good,
        "directory": directory,
        "through_file": through_file,
        "socket": unix_socket,
        "fifo": fifo,
        "missing": tmp_path / "missing.csv",
    }


Case = tuple[str, Callable[[BctrlHook, str, dict[str, Path]], Any], type[BctrlError], str]

CASES: list[Case] = [
    ("missing file", lambda h, r, f: h.upload_file(r, f["missing"]), BctrlInputError, "does not exist"),
    ("directory", lambda h, r, f: h.upload_file(r, f["directory"]), BctrlInputError, "is a directory"),
    (
        "unreadable file",
        lambda h, r, f: h.upload_file(r, f["through_file"]),
        BctrlInputError,
        "cannot be read",
    ),
    ("socket", lambda h, r, f: h.upload_file(r, f["socket"]), BctrlInputError, "not a regular file"),
    ("fifo", lambda h, r, f: h.upload_file(r, f["fifo"]), BctrlInputError, "not a regular file"),
    ("source not a path", lambda h, r, f: h.upload_file(r, 42), BctrlInputError, "local file path"),  # type: ignore[arg-type]
    (
        "absolute runtime_path",
        lambda h, r, f: h.upload_file(r, f["good"], runtime_path="/workspace/x.csv"),
        BctrlInputError,
        "relative to the runtime workspace",
    ),
    (
        "runtime_path with ..",
        lambda h, r, f: h.upload_file(r, f["good"], runtime_path="in/../../etc/x"),
        BctrlInputError,
        "'..'",
    ),
    (
        "runtime_path with NUL",
        lambda h, r, f: h.upload_file(r, f["good"], runtime_path="in/a\x00b"),
        BctrlInputError,
        "NUL",
    ),
    (
        "runtime_path too long",
        lambda h, r, f: h.upload_file(r, f["good"], runtime_path="a/" * 2049),
        BctrlInputError,
        "at most 4096",
    ),
    (
        "name with /",
        lambda h, r, f: h.upload_file(r, f["good"], name="a/b.csv"),
        BctrlInputError,
        "without '/'",
    ),
    (
        "name too long",
        lambda h, r, f: h.upload_file(r, f["good"], name="n" * 256 + ".csv"),
        BctrlInputError,
        "at most 255",
    ),
    (
        "metadata not a mapping",
        lambda h, r, f: h.upload_file(r, f["good"], metadata='{"a": 1}'),  # type: ignore[arg-type]
        BctrlInputError,
        "must be a mapping",
    ),
    (
        "metadata not JSON-serialisable",
        lambda h, r, f: h.upload_file(r, f["good"], metadata={"when": object()}),
        BctrlInputError,
        "not JSON-serialisable",
    ),
    (
        "metadata with NaN",
        lambda h, r, f: h.upload_file(r, f["good"], metadata={"x": float("nan")}),
        BctrlInputError,
        "not JSON-serialisable",
    ),
    (
        "empty runtime id",
        lambda h, r, f: h.upload_file("", f["good"]),
        BctrlInputError,
        "runtime_id is empty",
    ),
    (
        "blank runtime id",
        lambda h, r, f: h.upload_file("   ", f["good"]),
        BctrlInputError,
        "runtime_id is empty",
    ),
    (
        "runtime id with /",
        lambda h, r, f: h.upload_file("rt/../x", f["good"]),
        BctrlInputError,
        "not a valid id",
    ),
    (
        "runtime id with ?",
        lambda h, r, f: h.upload_file("rt?x=1", f["good"]),
        BctrlInputError,
        "not a valid id",
    ),
    (
        "runtime id with #",
        lambda h, r, f: h.upload_file("rt#frag", f["good"]),
        BctrlInputError,
        "not a valid id",
    ),
    ("runtime id with ..", lambda h, r, f: h.collect_file("..", "a.txt"), BctrlInputError, "not a valid id"),
    (
        "empty space id",
        lambda h, r, f: h.collect_file(r, "a.txt", space_id=""),
        BctrlInputError,
        "space_id is empty",
    ),
    (
        "space id with /",
        lambda h, r, f: h.collect_file(r, "a.txt", space_id="s/1"),
        BctrlInputError,
        "not a valid id",
    ),
    (
        "artifact not a mapping",
        lambda h, r, f: h.collect_file(r, "a.txt", artifact="report"),  # type: ignore[arg-type]
        BctrlInputError,
        "artifact must be a mapping",
    ),
    (
        "artifact unknown key",
        lambda h, r, f: h.collect_file(r, "a.txt", artifact={"type": "report"}),
        BctrlInputError,
        "unknown keys",
    ),
    (
        "artifact metadata not a mapping",
        lambda h, r, f: h.collect_file(r, "a.txt", artifact={"metadata": [1]}),
        BctrlInputError,
        "must be a mapping",
    ),
    ("collect path empty", lambda h, r, f: h.collect_file(r, ""), BctrlInputError, "path is empty"),
    (
        "storage path absolute",
        lambda h, r, f: h.collect_file(r, "a.txt", storage_path="/abs/x"),
        BctrlInputError,
        "must be relative",
    ),
    (
        "destination path with ..",
        lambda h, r, f: h.upload_file(r, f["good"], destination_path="a/../b"),
        BctrlInputError,
        "'..' segments",
    ),
    ("stage file id empty", lambda h, r, f: h.stage_file(r, ""), BctrlInputError, "file_id is empty"),
]


@pytest.mark.parametrize(("label", "call", "error", "fragment"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_refused_before_any_request(
    emu: BctrlEmulator,
    runtime_id: str,
    files: dict[str, Path],
    label: str,
    call: Callable[[BctrlHook, str, dict[str, Path]], Any],
    error: type[BctrlError],
    fragment: str,
) -> None:
    emu.clear_requests_log()
    with pytest.raises(error) as info:
        call(BctrlHook(), runtime_id, files)
    assert fragment in str(info.value), str(info.value)
    assert emu.requests_log() == [], f"{label}: a request was sent"


CONNECTION_CASES = [
    ("connection missing", None, "does not exist"),
    ("no API key", {"conn_type": "bctrl", "host": "http://127.0.0.1:9"}, "has no API key"),
    (
        "not http(s)",
        {"conn_type": "bctrl", "host": "file:///etc", "password": "k"},
        "must start with https://",
    ),
    (
        "plain http to a remote host",
        {"conn_type": "bctrl", "host": "http://bctrl.example.com", "password": "k"},
        "plain http://",
    ),
]


@pytest.mark.parametrize(
    ("label", "conn", "fragment"), CONNECTION_CASES, ids=[c[0] for c in CONNECTION_CASES]
)
def test_unusable_connection_refused_before_any_request(
    emu: BctrlEmulator,
    runtime_id: str,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    label: str,
    conn: dict[str, Any] | None,
    fragment: str,
) -> None:
    if conn is not None:
        monkeypatch.setenv("AIRFLOW_CONN_BCTRL_BAD", json.dumps(conn))
    emu.clear_requests_log()
    with pytest.raises(BctrlConnectionConfigError) as info:
        BctrlHook("bctrl_bad").upload_file(runtime_id, files["good"])
    assert fragment in str(info.value)
    assert emu.requests_log() == []
