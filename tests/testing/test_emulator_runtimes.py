"""The emulator's runtime lifecycle over real HTTP: start, stop, read, stopped runtimes, late files."""

from __future__ import annotations

import time

import requests
from test_emulator_support import assert_error, auth, collect, session, upload

from airflow_provider_bctrl.testing.emulator import BctrlEmulator


def _start(emu: BctrlEmulator, runtime_id: str, key: str | None = None) -> requests.Response:
    headers = {**auth(emu), **({"Idempotency-Key": key} if key else {})}
    return session().post(f"{emu.url}/v1/runtimes/{runtime_id}/start", headers=headers, timeout=10)


def _stop(emu: BctrlEmulator, runtime_id: str) -> requests.Response:
    return session().post(f"{emu.url}/v1/runtimes/{runtime_id}/stop", headers=auth(emu), timeout=10)


def _get(emu: BctrlEmulator, runtime_id: str) -> requests.Response:
    return session().get(f"{emu.url}/v1/runtimes/{runtime_id}", headers=auth(emu), timeout=10)


def test_runtimes_created_for_tests_are_active_with_a_run(emu: BctrlEmulator, runtime_id: str) -> None:
    runtime = _get(emu, runtime_id).json()
    assert runtime["status"] == "active"
    assert runtime["activeRunId"] == emu.runtime(runtime_id)["runId"]


def test_start_stop_cycle_opens_a_new_run_each_time(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    assert _get(emu, runtime_id).json()["activeRunId"] is None

    first = _start(emu, runtime_id).json()
    assert first["started"] is True
    assert first["status"] == "active"
    assert first["protocol"] == "cdp"
    assert first["runtimeId"] == runtime_id
    assert first["connectUrl"].startswith("ws://")
    assert "token=" in first["connectUrl"]
    assert _get(emu, runtime_id).json()["activeRunId"] == first["runId"]

    # A start of an active runtime answers the active run; no second run.
    again = _start(emu, runtime_id).json()
    assert (again["runId"], again["started"]) == (first["runId"], False)

    stopped = _stop(emu, runtime_id).json()
    assert stopped == {"runId": first["runId"], "runtimeId": runtime_id, "status": "stopped", "stopped": True}
    assert _get(emu, runtime_id).json()["activeRunId"] is None

    second = _start(emu, runtime_id).json()
    assert second["started"] is True
    assert second["runId"] != first["runId"]


def test_same_idempotency_key_answers_the_same_run(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    first = _start(emu, runtime_id, key="dag.run.task.-1").json()
    assert _stop(emu, runtime_id).status_code == 200
    # Even after a stop, the key answers the run it started, and opens nothing new.
    replay = _start(emu, runtime_id, key="dag.run.task.-1").json()
    assert replay["runId"] == first["runId"]
    assert replay["started"] is True
    assert replay["status"] == "stopped"
    assert _get(emu, runtime_id).json()["activeRunId"] is None
    other = _start(emu, runtime_id, key="another").json()
    assert other["runId"] != first["runId"]
    logged = [e for e in emu.requests_log() if e["route"] == "start" and runtime_id in e["path"]]
    assert [e["idempotencyKey"] for e in logged] == ["dag.run.task.-1", "dag.run.task.-1", "another"]


def test_bad_idempotency_key_is_refused(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    assert_error(_start(emu, runtime_id, key="x" * 256), 400, "request.invalid")
    assert _get(emu, runtime_id).json()["status"] == "stopped"


def test_stopping_a_stopped_runtime_is_409_not_active(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    assert_error(_stop(emu, runtime_id), 409, "runtime.not_active")


def test_unknown_runtime_is_404(emu: BctrlEmulator) -> None:
    for response in (_start(emu, "nope"), _stop(emu, "nope"), _get(emu, "nope")):
        assert_error(response, 404, "runtime.not_found")


def test_file_operations_on_a_stopped_runtime_are_409(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    emu.write_runtime_file(runtime_id, "/tmp/out.txt", b"hello")
    assert_error(upload(emu, runtime_id, b"abc", filename="a.txt"), 409, "runtime.not_active")
    assert_error(collect(emu, runtime_id, {"path": "/tmp/out.txt"}), 409, "runtime.not_active")
    stage = session().post(
        f"{emu.url}/v1/runtimes/{runtime_id}/files/stage",
        headers=auth(emu),
        json={"fileId": "00000000-0000-4000-8000-000000000000"},
        timeout=10,
    )
    assert stage.status_code in (404, 409)  # the file id is unknown; either refusal stores nothing


def test_collect_artifact_run_is_the_active_run(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    run_id = _start(emu, runtime_id).json()["runId"]
    emu.write_runtime_file(runtime_id, "/tmp/out.txt", b"hello")
    body = collect(emu, runtime_id, {"path": "/tmp/out.txt", "artifact": {"kind": "file"}}).json()
    assert body["artifact"]["runId"] == run_id


def test_missing_runtime_file_is_404_runtime_file_not_found(emu: BctrlEmulator, runtime_id: str) -> None:
    assert_error(collect(emu, runtime_id, {"path": "/tmp/not-yet.txt"}), 404, "runtime_file.not_found")


def test_fs_later_makes_a_file_appear_after_the_delay(emu: BctrlEmulator, runtime_id: str) -> None:
    accepted = emu.write_runtime_file_later(runtime_id, "/tmp/later.txt", b"late bytes", delay_seconds=1.0)
    assert accepted == {"path": "/tmp/later.txt", "sizeBytes": 10, "delaySeconds": 1.0}
    assert_error(collect(emu, runtime_id, {"path": "/tmp/later.txt"}), 404, "runtime_file.not_found")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded
        if collect(emu, runtime_id, {"path": "/tmp/later.txt"}).status_code == 200:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the delayed file never appeared")
    assert emu.read_runtime_file(runtime_id, "/tmp/later.txt") == b"late bytes"


def test_fs_later_checks_its_path_and_delay_at_once(emu: BctrlEmulator, runtime_id: str) -> None:
    for params in (
        {"path": "../escape.txt", "delay": "1"},
        {"path": "/", "delay": "1"},
        {"path": "a", "delay": "-1"},
    ):
        response = session().post(
            f"{emu.url}/_emulator/runtimes/{runtime_id}/fs/later", params=params, data=b"x", timeout=10
        )
        assert response.status_code == 400, (params, response.text)
