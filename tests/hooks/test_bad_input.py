"""Bad input is refused with a message that says what to fix, before any request is sent."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_bctrl.exceptions import BctrlConnectionConfigError, BctrlInputError
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


Call = Callable[[BctrlHook, str, dict[str, Path]], Any]


def _upload(source: str = "good", **options: Any) -> Call:
    """Upload ``files[source]`` to the test's runtime with ``options``."""
    return lambda hook, runtime, files: hook.upload_file(runtime, files[source], **options)


def _upload_to(runtime_id: str) -> Call:
    """Upload the good file to the runtime ``runtime_id`` instead of the test's."""
    return lambda hook, runtime, files: hook.upload_file(runtime_id, files["good"])


def _collect(path: str = "a.txt", **options: Any) -> Call:
    """Collect ``path`` from the test's runtime with ``options``."""
    return lambda hook, runtime, files: hook.collect_file(runtime, path, **options)


#: (label, the call, a fragment of the BctrlInputError's message).
CASES: list[tuple[str, Call, str]] = [
    ("missing file", _upload("missing"), "does not exist"),
    ("directory", _upload("directory"), "is a directory"),
    ("unreadable file", _upload("through_file"), "cannot be read"),
    ("socket", _upload("socket"), "not a regular file"),
    ("fifo", _upload("fifo"), "not a regular file"),
    ("source not a path", lambda h, r, f: h.upload_file(r, 42), "local file path"),  # type: ignore[arg-type]
    ("absolute runtime_path", _upload(runtime_path="/workspace/x.csv"), "relative to the runtime workspace"),
    ("runtime_path with ..", _upload(runtime_path="in/../../etc/x"), "'..'"),
    ("runtime_path with NUL", _upload(runtime_path="in/a\x00b"), "NUL"),
    ("runtime_path too long", _upload(runtime_path="a/" * 2049), "at most 4096"),
    ("name with /", _upload(name="a/b.csv"), "without '/'"),
    ("name too long", _upload(name="n" * 256 + ".csv"), "at most 255"),
    ("metadata not a mapping", _upload(metadata='{"a": 1}'), "must be a mapping"),
    ("metadata not JSON-serialisable", _upload(metadata={"when": object()}), "not JSON-serialisable"),
    ("metadata with NaN", _upload(metadata={"x": float("nan")}), "not JSON-serialisable"),
    ("empty runtime id", _upload_to(""), "runtime_id is empty"),
    ("blank runtime id", _upload_to("   "), "runtime_id is empty"),
    ("runtime id with /", _upload_to("rt/../x"), "not a valid id"),
    ("runtime id with ?", _upload_to("rt?x=1"), "not a valid id"),
    ("runtime id with #", _upload_to("rt#frag"), "not a valid id"),
    ("runtime id with ..", lambda h, r, f: h.collect_file("..", "a.txt"), "not a valid id"),
    ("empty space id", _collect(space_id=""), "space_id is empty"),
    ("space id with /", _collect(space_id="s/1"), "not a valid id"),
    ("artifact not a mapping", _collect(artifact="report"), "artifact must be a mapping"),
    ("artifact unknown key", _collect(artifact={"type": "report"}), "unknown keys"),
    ("artifact metadata not a mapping", _collect(artifact={"metadata": [1]}), "must be a mapping"),
    ("collect path empty", _collect(""), "path is empty"),
    ("storage path absolute", _collect(storage_path="/abs/x"), "must be relative"),
    ("destination path with ..", _upload(destination_path="a/../b"), "'..' segments"),
    ("stage file id empty", lambda h, r, f: h.stage_file(r, ""), "file_id is empty"),
]


@pytest.mark.parametrize(("label", "call", "fragment"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_refused_before_any_request(
    emu: BctrlEmulator,
    runtime_id: str,
    files: dict[str, Path],
    label: str,
    call: Call,
    fragment: str,
) -> None:
    emu.clear_requests_log()
    with pytest.raises(BctrlInputError) as info:
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
