"""The emulator as a process: child-process mode, the CLI, restarts on the same data, and memory use."""

from __future__ import annotations

import hashlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_emulator_support import BOUNDARY, auth, form, get, session, upload

from airflow_provider_bctrl.testing.emulator import BctrlEmulator, EmulatorError

MIB = 1024 * 1024


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (Linux /proc)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            values[key] = int(rest.split()[0])
    return values


def test_child_process_mode_starts_and_leaves_nothing(tmp_path: Path) -> None:
    emu = BctrlEmulator(api_key="bctrl_child_key", data_dir=tmp_path / "data", in_process=False)
    with emu:
        pid = emu.pid
        assert pid is not None
        assert pid != os.getpid()
        assert emu.url.startswith("http://127.0.0.1:")
        assert get(emu, "/v1/auth/whoami").json()["defaultSpaceId"] == emu.space_id
        # The key is not on the child's command line (it goes through the environment).
        assert b"bctrl_child_key" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert process_gone(pid)
    assert group_gone(pid)
    emu.stop()  # idempotent


def test_restart_with_the_same_data_dir_keeps_state(tmp_path: Path) -> None:
    data_dir = tmp_path / "persist"
    with BctrlEmulator(data_dir=data_dir) as first:
        runtime_id = first.create_runtime()
        staged = upload(first, runtime_id, b"kept across restarts", filename="kept.txt").json()
        space_id = first.space_id
        files_before = first.stored_files()
    with BctrlEmulator(data_dir=data_dir) as second:
        assert second.space_id == space_id
        assert second.stored_files() == files_before
        assert get(second, f"/v1/files/{staged['id']}/content").content == b"kept across restarts"
        assert second.read_runtime_file(runtime_id, "kept.txt") == b"kept across restarts"
        assert upload(second, runtime_id, b"more").status_code == 200
    # An explicit space id becomes (and stays) the default.
    with BctrlEmulator(data_dir=data_dir, space_id="space-explicit") as third:
        assert get(third, "/v1/auth/whoami").json()["defaultSpaceId"] == "space-explicit"
        assert len(third.stored_files()) == len(files_before) + 1


def test_temporary_data_dir_is_removed(tmp_path: Path) -> None:
    with BctrlEmulator() as emu:
        data_dir = emu.data_dir
        assert data_dir.is_dir()
    assert not data_dir.exists()


def _read_ready_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "no ready line"
    return process.stdout.readline().decode()


def test_cli_prints_ready_line_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "airflow_provider_bctrl.testing.emulator", "--port", "0"]
    command += ["--data-dir", str(tmp_path / "cli"), "--space-id", "cli-space", "--log-level", "warning"]
    env = {**os.environ, "BCTRL_EMULATOR_API_KEY": "bctrl_cli"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        line = _read_ready_line(process, 30)
        assert line.startswith("BCTRL emulator listening on http://127.0.0.1:")
        assert line.rstrip().endswith("(space cli-space)")
        url = line.split()[4]
        with session() as s:
            whoami = s.get(f"{url}/v1/auth/whoami", headers={"Authorization": "Bearer bctrl_cli"}, timeout=10)
        assert whoami.json()["defaultSpaceId"] == "cli-space"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stderr is not None
        assert b"bctrl_cli" not in process.stderr.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_start_failure_reports_the_child_stderr(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        emu = BctrlEmulator(data_dir=tmp_path / "d", port=port, in_process=False, startup_timeout=20)
        with pytest.raises(EmulatorError, match="Cannot listen"):
            emu.start()
        assert emu.pid is not None
        assert process_gone(emu.pid)


def _file_body(total: int, block: bytes, digest: hashlib._Hash) -> Iterator[bytes]:
    sent = 0
    while sent < total:  # bounded by total
        chunk = block[: min(len(block), total - sent)]
        digest.update(chunk)
        sent += len(chunk)
        yield chunk


@pytest.mark.slow
def test_200_mib_upload_keeps_server_memory_flat(tmp_path: Path) -> None:
    size = 200 * MIB
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with BctrlEmulator(data_dir=tmp_path / "big", in_process=False) as emu:
        assert emu.pid is not None
        runtime_id = emu.create_runtime()
        upload(emu, runtime_id, b"warm-up")  # first-use allocations happen before the baseline
        before = memory_kib(emu.pid)
        started = time.monotonic()
        with session() as s:
            response = s.post(
                f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
                data=form(_file_body(size, block, digest), filename="big.bin"),
                headers={**auth(emu), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                timeout=120,
            )
        elapsed = time.monotonic() - started
        after = memory_kib(emu.pid)
        assert response.status_code == 200, response.text
        staged = response.json()
        assert staged["sizeBytes"] == size
        stored = next(f for f in emu.stored_files() if f["id"] == staged["id"])
        assert stored["sha256"] == digest.hexdigest()
        growth_mib = (after["VmHWM"] - before["VmHWM"]) / 1024
        print(
            f"\n200 MiB upload: {size / MIB / elapsed:.0f} MiB/s; server VmHWM {before['VmHWM'] // 1024} -> "
            f"{after['VmHWM'] // 1024} MiB (+{growth_mib:.1f}), VmRSS {before['VmRSS'] // 1024} -> "
            f"{after['VmRSS'] // 1024} MiB"
        )
        assert growth_mib < 24, f"server peak memory grew by {growth_mib:.1f} MiB during a 200 MiB upload"
