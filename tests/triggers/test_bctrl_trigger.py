"""BctrlRuntimeFileTrigger on its own, against the emulator: serialization, restart, cancellation, errors."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_bctrl.exceptions import BctrlFileWaitTimeoutError, BctrlNotFoundError
from airflow_provider_bctrl.operators._waiting import collected_from_event
from airflow_provider_bctrl.testing.emulator import BctrlEmulator
from airflow_provider_bctrl.triggers.bctrl import BctrlRuntimeFileTrigger

pytestmark = pytest.mark.usefixtures("bctrl_conn_env")

PATH = "/tmp/runtime/output/late.json"


def _trigger(
    emu: BctrlEmulator, runtime_id: str, *, seconds: float = 30, **kwargs: Any
) -> BctrlRuntimeFileTrigger:
    return BctrlRuntimeFileTrigger(
        bctrl_conn_id="bctrl_default",
        runtime_id=runtime_id,
        space_id=emu.space_id,
        path=PATH,
        deadline=time.time() + seconds,
        poke_interval=kwargs.pop("poke_interval", 0.2),
        **kwargs,
    )


def _first_event(trigger: BctrlRuntimeFileTrigger, within: float = 60) -> dict[str, Any]:
    async def first() -> Any:
        return await asyncio.wait_for(anext(trigger.run()), timeout=within)

    return asyncio.run(first()).payload


def _collects(emu: BctrlEmulator, runtime_id: str) -> list[dict[str, Any]]:
    return [e for e in emu.requests_log() if e["route"] == "collect" and runtime_id in e["path"]]


def test_serialized_kwargs_hold_no_secret_and_rebuild_the_trigger(
    emu: BctrlEmulator, runtime_id: str
) -> None:
    trigger = _trigger(emu, runtime_id, artifact={"kind": "report", "metadata": {"a": 1}}, name="x.json")
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_bctrl.triggers.bctrl.BctrlRuntimeFileTrigger"
    text = json.dumps(kwargs)
    assert emu.api_key not in text
    assert "password" not in text
    assert "Bearer" not in text
    assert set(kwargs) == {
        "bctrl_conn_id", "runtime_id", "space_id", "path", "deadline", "poke_interval",
        "storage_path", "name", "artifact",
    }  # fmt: skip
    rebuilt = BctrlRuntimeFileTrigger(**json.loads(text))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_waits_then_collects_exactly_once(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.write_runtime_file_later(runtime_id, PATH, b'{"ok": true}', delay_seconds=1.5)
    event = _first_event(_trigger(emu, runtime_id, artifact={"kind": "report"}))
    assert event["status"] == "success"
    collected = collected_from_event(event, runtime_id=runtime_id, path=PATH, timeout=30)
    assert collected.artifact is not None
    assert collected.artifact.run_id == emu.runtime(runtime_id)["activeRunId"]
    statuses = [e["status"] for e in _collects(emu, runtime_id)]
    assert statuses.count(200) == 1
    assert statuses[-1] == 200
    assert event["polls"] == len(statuses) >= 3


def test_survives_a_restart_from_its_serialized_kwargs(emu: BctrlEmulator, runtime_id: str) -> None:
    """Cancel the trigger mid-wait (as a triggerer shutting down does), rebuild it, and finish the wait."""
    trigger = _trigger(emu, runtime_id, seconds=60)

    async def run_briefly() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(anext(trigger.run()), timeout=1.0)

    asyncio.run(run_briefly())  # cancelled cleanly: no event, no stray task, the client closed
    before = len(_collects(emu, runtime_id))
    assert before >= 1
    assert not [f for f in emu.stored_files() if f["runtimeId"] == runtime_id]

    emu.write_runtime_file(runtime_id, PATH, b"{}")
    _, kwargs = trigger.serialize()
    restarted = BctrlRuntimeFileTrigger(**kwargs)
    assert restarted.deadline == trigger.deadline  # the same deadline, not a fresh timeout
    assert _first_event(restarted)["status"] == "success"
    assert [e["status"] for e in _collects(emu, runtime_id)][before:] == [200]


def test_deadline_gives_a_timeout_event_and_a_clear_error(emu: BctrlEmulator, runtime_id: str) -> None:
    started = time.monotonic()
    event = _first_event(_trigger(emu, runtime_id, seconds=1.0, poke_interval=0.3))
    assert time.monotonic() - started < 5
    assert event["status"] == "timeout"
    with pytest.raises(
        BctrlFileWaitTimeoutError, match=r"No file at '/tmp/runtime/output/late.json'.*after waiting 1 s"
    ):
        collected_from_event(event, runtime_id=runtime_id, path=PATH, timeout=1)


def test_other_errors_end_the_wait_with_their_type(emu: BctrlEmulator) -> None:
    event = _first_event(_trigger(emu, "no-such-runtime"))
    assert event["status"] == "error"
    assert event["polls"] == 1
    with pytest.raises(BctrlNotFoundError) as caught:
        collected_from_event(event, runtime_id="no-such-runtime", path=PATH, timeout=30)
    assert caught.value.code == "runtime.not_found"
    assert caught.value.request_id


def test_rate_limit_waits_for_retry_after(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.write_runtime_file(runtime_id, PATH, b"{}")
    emu.add_fault("collect", status=429, retry_after="1")
    started = time.monotonic()
    event = _first_event(_trigger(emu, runtime_id, poke_interval=0.1))
    assert event["status"] == "success"
    assert time.monotonic() - started >= 1.0  # Retry-After beat the 0.1 s poke interval
    assert [e["status"] for e in _collects(emu, runtime_id)] == [429, 200]


def test_a_missing_connection_is_reported_not_hung(emu: BctrlEmulator, runtime_id: str) -> None:
    trigger = _trigger(emu, runtime_id)
    trigger.bctrl_conn_id = "no_such_bctrl_connection"
    event = _first_event(trigger)
    assert event["status"] == "error"
    assert event["error_class"] == "BctrlConnectionConfigError"
    assert "no_such_bctrl_connection" in event["message"]
