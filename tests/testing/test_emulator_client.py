"""EmulatorClient against a real emulator: every control call, its errors, and its command line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid

import pytest

from airflow_provider_bctrl.exceptions import BctrlServerError
from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing._wait import free_port
from airflow_provider_bctrl.testing.client import EmulatorClient, EmulatorClientError, default_url
from airflow_provider_bctrl.testing.emulator import BctrlEmulator


@pytest.fixture
def client(emu: BctrlEmulator) -> EmulatorClient:
    return EmulatorClient(emu.url, api_key=emu.api_key)


def test_runtimes_files_and_the_store(client: EmulatorClient, emu: BctrlEmulator, monkeypatch) -> None:
    assert client.health()
    assert client.default_space_id == emu.space_id
    chosen = f"rt-{uuid.uuid4().hex[:8]}"
    assert client.create_runtime(chosen) == chosen
    assert chosen in [r["runtimeId"] for r in client.runtimes()]

    written = client.write_runtime_file(chosen, "/tmp/runtime/output/result.json", '{"ok": true}')
    assert written == {"path": "/tmp/runtime/output/result.json", "sizeBytes": 12}
    assert client.read_runtime_file(chosen, "/tmp/runtime/output/result.json") == b'{"ok": true}'

    # The hook, through the connection the client describes, sees what the client wrote.
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_CLIENT", client.airflow_connection_json())
    with BctrlHook("bctrl_client") as hook:
        collected = hook.collect_file(
            chosen, "/tmp/runtime/output/result.json", artifact={"kind": "report", "name": "r"}
        )
    stored = {f["id"]: f for f in client.stored_files()}[collected.file.id]
    assert stored["sha256"] == hashlib.sha256(b'{"ok": true}').hexdigest()
    assert stored["source"] == "runtime"
    assert collected.artifact is not None
    assert collected.artifact.id in [a["id"] for a in client.artifacts()]


def test_faults_and_the_request_log(client: EmulatorClient, emu: BctrlEmulator, monkeypatch) -> None:
    runtime = client.create_runtime()
    client.write_runtime_file(runtime, "out.json", b"{}")
    client.clear_requests_log()
    pending = client.add_fault("collect", 1, status=503, retry_after="0")
    assert pending[-1]["status"] == 503
    assert client.faults() == pending
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_CLIENT", client.airflow_connection_json({"max_retries": 0}))
    with BctrlHook("bctrl_client") as hook, pytest.raises(BctrlServerError):
        hook.collect_file(runtime, "out.json", space_id=emu.space_id)
    log = client.requests_log()
    assert [(e["route"], e["status"]) for e in log] == [("collect", 503)]
    assert client.faults() == []

    client.add_fault("*", 2, delay_seconds=0.01)
    client.clear_faults()
    assert client.faults() == []
    client.clear_requests_log()
    assert client.requests_log() == []


def test_errors_are_clear(client: EmulatorClient) -> None:
    with pytest.raises(EmulatorClientError, match=r"runtime\.not_found") as caught:
        client.write_runtime_file("no-such-runtime", "x.txt", b"x")
    assert caught.value.status == 404
    runtime = client.create_runtime()
    with pytest.raises(EmulatorClientError, match="409"):
        client.create_runtime(runtime)
    with pytest.raises(ValueError, match="route must be one of"):
        client.add_fault("uploads", status=500)
    with pytest.raises(ValueError, match="no path"):
        EmulatorClient("http://127.0.0.1:8787/_emulator")
    with pytest.raises(ValueError, match="not a usable id"):
        client.read_runtime_file("..", "x")


def test_an_emulator_that_is_not_running() -> None:
    port = free_port()  # a port nobody listens on
    client = EmulatorClient(f"http://127.0.0.1:{port}", timeout=2)
    assert not client.health()
    with pytest.raises(EmulatorClientError, match="Is it running"):
        client.create_runtime()
    with pytest.raises(EmulatorClientError, match=r"did not answer within 0\.3 s"):
        client.wait_until_healthy(timeout=0.3, interval=0.1)


@pytest.mark.parametrize(
    ("base_url", "timeout", "problem"),
    [
        ("http://127.0.0.1:8787/v1", 1.0, "no path"),
        ("ftp://127.0.0.1:8787", 1.0, "no path"),
        ("http://127.0.0.1:8787?x=1", 1.0, "no path"),
        ("http://127.0.0.1:8787", 0, "positive number of seconds"),
    ],
)
def test_the_client_refuses_an_unusable_url_or_timeout(base_url: str, timeout: float, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EmulatorClient(base_url, timeout=timeout)


def test_the_emulator_is_a_client_whose_url_is_set_when_it_starts(tmp_path) -> None:
    """Before start() its base_url is empty; start() aims every inherited control call at its server."""
    with pytest.raises(ValueError, match="non-empty"):
        BctrlEmulator(api_key="", data_dir=tmp_path / "unused")
    emu = BctrlEmulator(api_key="bctrl_state_key", data_dir=tmp_path / "data")
    assert (emu.base_url, emu.url, emu.api_key, emu.timeout) == ("", "", "bctrl_state_key", 60.0)
    with emu:
        assert emu.base_url == emu.url
        assert emu.url.startswith("http://127.0.0.1:")
        assert emu.health()
        assert json.loads(emu.airflow_connection_json())["password"] == "bctrl_state_key"


def test_default_url_and_key_come_from_the_environment(monkeypatch) -> None:
    for name in ("BCTRL_EMULATOR_URL", "BCTRL_EMULATOR_PORT", "BCTRL_EMULATOR_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert default_url() == "http://127.0.0.1:8787"
    assert EmulatorClient().api_key == "bctrl_emulator_key"
    monkeypatch.setenv("BCTRL_EMULATOR_PORT", "9911")
    assert EmulatorClient().base_url == "http://127.0.0.1:9911"
    monkeypatch.setenv("BCTRL_EMULATOR_URL", "http://[::1]:9000/")
    monkeypatch.setenv("BCTRL_EMULATOR_API_KEY", "bctrl_local")
    client = EmulatorClient()
    assert client.base_url == "http://[::1]:9000"
    assert json.loads(client.airflow_connection_json()) == {
        "conn_type": "bctrl",
        "host": "http://[::1]:9000",
        "password": "bctrl_local",
    }


def test_importing_the_client_is_cheap() -> None:
    code = (
        "import sys; import airflow_provider_bctrl.testing.client; "
        "heavy = [m for m in ('requests', 'airflow', 'uvicorn', 'starlette') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_command_line(emu: BctrlEmulator) -> None:
    def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "airflow_provider_bctrl.testing.client", "--url", emu.url, *args],
            input=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )

    assert cli("health").returncode == 0
    assert cli("wait", "--timeout", "5").returncode == 0
    runtime = cli("create-runtime").stdout.decode().strip()
    assert runtime in [r["runtimeId"] for r in EmulatorClient(emu.url).runtimes()]
    written = cli("write-file", runtime, "/tmp/in.bin", stdin=b"\x00\x01binary")
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout) == {"path": "/tmp/in.bin", "sizeBytes": 8}
    assert cli("read-file", runtime, "/tmp/in.bin").stdout == b"\x00\x01binary"
    assert cli("write-file", runtime, "t.txt", "--data", "hi").returncode == 0
    assert emu.read_runtime_file(runtime, "t.txt") == b"hi"
    assert json.loads(cli("connection").stdout)["host"] == emu.url
    assert (
        json.loads(cli("add-fault", "whoami", "--status", "429", "--retry-after", "1").stdout)[-1][
            "retryAfter"
        ]
        == "1"
    )
    assert cli("clear-faults").returncode == 0
    assert emu.requests_log() is not None
    failed = cli("write-file", "no-such-runtime", "x", "--data", "x")
    assert failed.returncode == 1
    assert b"runtime.not_found" in failed.stderr


def test_runtime_lifecycle_through_the_client(client: EmulatorClient, monkeypatch) -> None:
    """A stopped runtime, a start fault, and a file that lands later: what a lifecycle DAG meets."""
    runtime = client.create_runtime(active=False)
    record = {r["runtimeId"]: r for r in client.runtimes()}[runtime]
    assert record["status"] == "stopped"
    assert record["activeRunId"] is None
    client.add_fault("start", 1, status=503, retry_after="0")
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_CLIENT", client.airflow_connection_json())
    with BctrlHook("bctrl_client") as hook:
        started = hook.start_runtime(runtime, idempotency_key="client-test")  # the 503 is retried
        assert {r["runtimeId"]: r for r in client.runtimes()}[runtime]["activeRunId"] == started.run_id
        queued = client.write_runtime_file_later(runtime, "/tmp/late.json", "{}", delay_seconds=0.3)
        assert queued["delaySeconds"] == 0.3
        with pytest.raises(EmulatorClientError, match="404"):
            client.read_runtime_file(runtime, "/tmp/late.json")
    starts = [(e["route"], e["status"]) for e in client.requests_log() if e["route"] == "start"]
    assert starts == [("start", 503), ("start", 200)]
    for _ in range(50):  # bounded: the file lands after 0.3 s
        try:
            assert client.read_runtime_file(runtime, "/tmp/late.json") == b"{}"
            break
        except EmulatorClientError:
            time.sleep(0.1)
    else:
        pytest.fail("the delayed file never appeared")
