"""The hook's runtime lifecycle against the emulator: start (idempotent with a key), stop, get, typed errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from airflow_provider_bctrl.exceptions import (
    BctrlConflictError,
    BctrlInputError,
    BctrlNotFoundError,
    BctrlQuotaExceededError,
    BctrlRuntimeNotActiveError,
    BctrlUncertainServerError,
)
from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = pytest.mark.usefixtures("bctrl_conn_env")


def _starts(emu: BctrlEmulator, runtime_id: str) -> list[dict]:
    return [e for e in emu.requests_log() if e["route"] == "start" and runtime_id in e["path"]]


def _hook() -> BctrlHook:
    return BctrlHook(backoff_base=0.01)


def test_start_get_stop(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    with _hook() as hook:
        assert hook.get_runtime(runtime_id).active_run_id is None
        started = hook.start_runtime(runtime_id, idempotency_key="k-start-get-stop")
        assert started.started is True
        assert started.status == "active"
        assert started.connect_url
        assert started.connect_url not in repr(started)
        runtime = hook.get_runtime(runtime_id)
        assert (runtime.id, runtime.status, runtime.active_run_id) == (runtime_id, "active", started.run_id)
        stopped = hook.stop_runtime(runtime_id)
        assert (stopped.run_id, stopped.status, stopped.stopped) == (started.run_id, "stopped", True)
        assert hook.get_runtime(runtime_id).active_run_id is None


def test_start_with_a_key_is_retried_after_an_uncertain_failure_and_opens_one_run(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    # The server starts the run, then the answer is lost (500 after processing): a retry is safe.
    emu.add_fault("start", status=500, after="processing")
    with _hook() as hook:
        started = hook.start_runtime(runtime_id, idempotency_key="k-retry")
        assert len(hook.retry_waits) == 1
    starts = _starts(emu, runtime_id)
    assert [e["status"] for e in starts] == [500, 200]
    assert {e["idempotencyKey"] for e in starts} == {"k-retry"}
    assert emu.runtime(runtime_id)["activeRunId"] == started.run_id
    # The first attempt did start the run; the retry answered that same run.
    assert started.started is True


def test_start_retried_with_the_same_key_returns_the_same_run(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    with _hook() as hook:
        first = hook.start_runtime(runtime_id, idempotency_key="dag__run__task__-1")
        hook.stop_runtime(runtime_id)
        again = hook.start_runtime(runtime_id, idempotency_key="dag__run__task__-1")
    assert again.run_id == first.run_id
    assert emu.runtime(runtime_id)["status"] == "stopped"  # the replay started nothing


def test_start_without_a_key_is_not_retried_on_500(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    emu.add_fault("start", status=500, after="processing")
    with _hook() as hook, pytest.raises(BctrlUncertainServerError):
        hook.start_runtime(runtime_id)
    assert len(_starts(emu, runtime_id)) == 1


def test_start_errors_are_typed(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    emu.add_fault("start", status=402)
    with _hook() as hook:
        with pytest.raises(BctrlQuotaExceededError) as quota:
            hook.start_runtime(runtime_id, idempotency_key="k-402")
        assert quota.value.status == 402
        with pytest.raises(BctrlNotFoundError) as missing:
            hook.start_runtime("no-such-runtime", idempotency_key="k-404")
        assert missing.value.code == "runtime.not_found"
        with pytest.raises(BctrlInputError):
            hook.start_runtime(runtime_id, idempotency_key="bad\nkey")
    assert len(_starts(emu, runtime_id)) == 1  # the bad key was refused before sending


def test_stop_of_a_stopped_runtime_is_typed_not_active(emu: BctrlEmulator) -> None:
    runtime_id = emu.create_runtime(active=False)
    with _hook() as hook, pytest.raises(BctrlRuntimeNotActiveError) as caught:
        hook.stop_runtime(runtime_id)
    assert caught.value.status == 409
    assert caught.value.code == "runtime.not_active"
    assert isinstance(caught.value, BctrlConflictError)
    assert isinstance(pickle.loads(pickle.dumps(caught.value)), BctrlRuntimeNotActiveError)


def test_file_operations_on_a_stopped_runtime_are_typed_409(emu: BctrlEmulator, tmp_path: Path) -> None:
    runtime_id = emu.create_runtime()
    emu.write_runtime_file(runtime_id, "/tmp/out/report.txt", b"report")
    source = tmp_path / "in.txt"
    source.write_text("input")
    with _hook() as hook:
        staged = hook.upload_file(runtime_id, source)
        hook.stop_runtime(runtime_id)
        before = len(emu.stored_files())
        for call in (
            lambda: hook.upload_file(runtime_id, source),
            lambda: hook.collect_file(runtime_id, "/tmp/out/report.txt"),
            lambda: hook.stage_file(runtime_id, staged.id),
        ):
            with pytest.raises(BctrlRuntimeNotActiveError) as caught:
                call()
            assert caught.value.code == "runtime.not_active"
        assert len(emu.stored_files()) == before
