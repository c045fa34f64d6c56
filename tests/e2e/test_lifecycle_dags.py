"""A runtime's whole life in DAGs run with ``dag.test()``: start, deferred wait, collect, download, stop.

``dag.test()`` runs a deferred task's trigger in-process; the same DAG under a real triggerer is in
``test_standalone_deferrable.py``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import DAG, task
from dagrun_helpers import DagRunResult, finish_after_first_miss

from airflow_provider_bctrl.operators import (
    BctrlCollectFileOperator,
    BctrlStartRuntimeOperator,
    BctrlStopRuntimeOperator,
)
from airflow_provider_bctrl.operators.runtimes import idempotency_key_for
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

OUTPUT_PATH = "/tmp/runtime/output/results.json"
START = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)


def _log(emu: BctrlEmulator, route: str, runtime_id: str) -> list[dict[str, Any]]:
    return [e for e in emu.requests_log() if e["route"] == route and runtime_id in e["path"]]


def test_example_dag_owns_the_runtime_and_waits_deferred(
    emu: BctrlEmulator,
    run_dag: Callable[..., DagRunResult],
    load_example: Callable[[str], Any],
    tmp_path: Path,
) -> None:
    runtime_id = emu.create_runtime(active=False)
    output = json.dumps({"rows": [{"site": "alpha", "status": "ok"}]}).encode()
    # The "browser" finishes 3 s after the first poll found nothing: the collect has to wait for it.
    browser = finish_after_first_miss(emu, runtime_id, OUTPUT_PATH, output, delay_seconds=3)
    dag = load_example("bctrl_runtime_lifecycle")
    result = run_dag(dag, conf={"runtime_id": runtime_id, "output_base": f"file://{tmp_path}"})
    browser.join(timeout=5)

    assert result.state == "success", result.task_states
    assert set(result.task_states.values()) == {"success"}, result.task_states
    run_id = result.xcom("start_runtime")
    assert result.xcom("start_runtime", "run_id") == run_id
    assert "connect_url" not in result.keys("start_runtime")  # XCom is not a secret store

    # The wait: several 404 polls, then exactly one successful collect, all from the trigger.
    collects = _log(emu, "collect", runtime_id)
    assert [e["status"] for e in collects[:-1]] == [404] * (len(collects) - 1)
    assert collects[-1]["status"] == 200
    assert len(collects) >= 2
    assert all("(trigger)" in e["userAgent"] for e in collects)
    collected = result.xcom("collect_output")
    assert collected["artifact"]["runId"] == run_id  # the artifact belongs to the run the DAG started
    assert result.xcom("collect_output", "file_id") == collected["file"]["id"]
    from_runtime = [
        f for f in emu.stored_files() if f["runtimeId"] == runtime_id and f["source"] == "runtime"
    ]
    assert len(from_runtime) == 1

    written = Path(result.xcom("download_output").removeprefix("file://"))
    assert written.read_bytes() == output
    assert written.parent == tmp_path

    # Teardown: the runtime is stopped, and its start carried the task instance's key.
    assert emu.runtime(runtime_id)["status"] == "stopped"
    (start,) = _log(emu, "start", runtime_id)
    assert start["idempotencyKey"] == idempotency_key_for(
        "bctrl_runtime_lifecycle", result.run_id, "start_runtime", -1
    )


def test_teardown_stops_the_runtime_after_a_failed_upstream_task(
    emu: BctrlEmulator, run_dag: Callable[..., DagRunResult]
) -> None:
    runtime_id = emu.create_runtime(active=False)
    with DAG("bctrl_lifecycle_failing_work", schedule=None, start_date=START, catchup=False) as dag:
        start = BctrlStartRuntimeOperator(task_id="start", runtime_id=runtime_id)

        @task
        def browser_work() -> None:
            raise RuntimeError("the browser step failed")

        stop = BctrlStopRuntimeOperator(task_id="stop", runtime_id=runtime_id)
        start >> browser_work() >> stop.as_teardown(setups=start)

    result = run_dag(dag)
    assert result.task_states[("start", -1)] == "success"
    assert result.task_states[("browser_work", -1)] == "failed"
    assert result.task_states[("stop", -1)] == "success"
    assert result.state == "failed"
    assert emu.runtime(runtime_id)["status"] == "stopped"
    assert result.xcom("stop")["runId"] == result.xcom("start")


def test_stopping_a_stopped_runtime_succeeds(
    emu: BctrlEmulator, run_dag: Callable[..., DagRunResult]
) -> None:
    runtime_id = emu.create_runtime(active=False)
    with DAG("bctrl_lifecycle_stop_twice", schedule=None, start_date=START, catchup=False) as dag:
        BctrlStopRuntimeOperator(task_id="stop", runtime_id=runtime_id)
    result = run_dag(dag)
    assert result.state == "success"
    assert result.xcom("stop") == {
        "runId": None,
        "runtimeId": runtime_id,
        "status": "stopped",
        "stopped": False,
    }
    assert [e["status"] for e in _log(emu, "stop", runtime_id)] == [409]


def test_airflow_retry_of_start_gets_the_same_run(
    emu: BctrlEmulator, run_dag: Callable[..., DagRunResult]
) -> None:
    runtime_id = emu.create_runtime(active=False)
    # Every answer of the first try is lost after the server acted (500 after processing, 4 times:
    # the first request and the hook's 3 retries), so the task fails; Airflow retries it.
    emu.add_fault("start", count=4, status=500, after="processing")
    with DAG("bctrl_lifecycle_start_retry", schedule=None, start_date=START, catchup=False) as dag:
        BctrlStartRuntimeOperator(
            task_id="start", runtime_id=runtime_id, retries=1, retry_delay=datetime.timedelta(0)
        )
    result = run_dag(dag)
    assert result.state == "success", result.task_states
    starts = _log(emu, "start", runtime_id)
    assert [e["status"] for e in starts] == [500, 500, 500, 500, 200]
    assert len({e["idempotencyKey"] for e in starts}) == 1
    # One run: the first request opened it, and every later one (both tries) answered it.
    assert result.xcom("start") == emu.runtime(runtime_id)["activeRunId"]


def test_a_start_whose_keys_run_has_ended_opens_a_new_run(
    emu: BctrlEmulator, run_dag: Callable[..., DagRunResult]
) -> None:
    """A cleared DAG run starts again after its teardown stopped the runtime: the key's run has ended."""
    from airflow_provider_bctrl.hooks.bctrl import BctrlHook

    runtime_id = emu.create_runtime(active=False)
    with BctrlHook() as hook:
        ended = hook.start_runtime(runtime_id, idempotency_key="cleared-run-key").run_id
        hook.stop_runtime(runtime_id)
    with DAG("bctrl_lifecycle_rerun", schedule=None, start_date=START, catchup=False) as dag:
        BctrlStartRuntimeOperator(task_id="start", runtime_id=runtime_id, idempotency_key="cleared-run-key")
    result = run_dag(dag)
    assert result.state == "success"
    new_run = result.xcom("start")
    assert new_run != ended
    assert emu.runtime(runtime_id)["activeRunId"] == new_run
    keys = [e["idempotencyKey"] for e in _log(emu, "start", runtime_id)]
    assert keys[:2] == ["cleared-run-key", "cleared-run-key"]
    assert keys[2].startswith("airflow-sha256:")


def test_deferred_collect_times_out_clearly(emu: BctrlEmulator, run_dag: Callable[..., DagRunResult]) -> None:
    runtime_id = emu.create_runtime()
    with DAG("bctrl_lifecycle_wait_timeout", schedule=None, start_date=START, catchup=False) as dag:
        BctrlCollectFileOperator(
            task_id="collect",
            runtime_id=runtime_id,
            path="/tmp/never.json",
            wait_for_file=True,
            deferrable=True,
            poke_interval=0.5,
            timeout=2,
        )
    result = run_dag(dag)
    assert result.task_states[("collect", -1)] == "failed"
    polls = _log(emu, "collect", runtime_id)
    assert 2 <= len(polls) <= 8
    assert {e["status"] for e in polls} == {404}
    assert not [f for f in emu.stored_files() if f["runtimeId"] == runtime_id]


def test_worker_side_wait_collects_once(emu: BctrlEmulator, run_dag: Callable[..., DagRunResult]) -> None:
    runtime_id = emu.create_runtime()
    finish_after_first_miss(emu, runtime_id, OUTPUT_PATH, b"{}", delay_seconds=2)
    with DAG("bctrl_lifecycle_worker_wait", schedule=None, start_date=START, catchup=False) as dag:
        BctrlCollectFileOperator(
            task_id="collect",
            runtime_id=runtime_id,
            path=OUTPUT_PATH,
            wait_for_file=True,
            deferrable=False,
            poke_interval=0.5,
            timeout=30,
        )
    result = run_dag(dag)
    assert result.state == "success", result.task_states
    polls = _log(emu, "collect", runtime_id)
    assert [e["status"] for e in polls][-1] == 200
    assert [e["status"] for e in polls].count(200) == 1
    assert len(polls) >= 2
    assert not any("(trigger)" in e["userAgent"] for e in polls)


def test_file_operations_on_a_stopped_runtime_fail_the_task(
    emu: BctrlEmulator, run_dag: Callable[..., DagRunResult]
) -> None:
    runtime_id = emu.create_runtime(active=False)
    emu.write_runtime_file(runtime_id, OUTPUT_PATH, b"{}")
    with DAG("bctrl_lifecycle_stopped_collect", schedule=None, start_date=START, catchup=False) as dag:
        BctrlCollectFileOperator(
            task_id="collect", runtime_id=runtime_id, path=OUTPUT_PATH, wait_for_file=True, deferrable=True
        )
    result = run_dag(dag)
    assert result.task_states[("collect", -1)] == "failed"
    # A stopped runtime is not "not there yet": one poll, no waiting.
    assert [e["status"] for e in _log(emu, "collect", runtime_id)] == [409]


@pytest.mark.parametrize("value", [0, -1, "5", float("nan")])
def test_bad_wait_arguments_are_refused_when_the_dag_is_built(value: Any) -> None:
    from airflow_provider_bctrl.exceptions import BctrlInputError

    with pytest.raises(BctrlInputError, match="timeout"):
        BctrlCollectFileOperator(task_id="c", runtime_id="r", path="/x", wait_for_file=True, timeout=value)
