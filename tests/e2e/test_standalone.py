"""A real deployment run: ``airflow standalone`` (scheduler + LocalExecutor + api-server, SQLite).

The example DAGs are the dags folder and a BCTRL emulator (its own process) is the API. The main
example, ``bctrl_report_pipeline``, is unpaused and triggered through the REST API; every task must
succeed, each in its own process, and the file and artifact ids the tasks pushed must be readable
through the REST XCom endpoints and be the emulator's stored files. Everything is stopped (process
groups) whatever the outcome.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _standalone import Standalone, group_members, poll, run_standalone

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "bctrl_report_pipeline"
TASKS = {
    "generate_report",
    "upload_report",
    "run_browser_agent",
    "collect_results",
    "download_results",
    "hand_off",
}
KEY = "bctrl_standalone_Gg8secretNn36"
OUTPUT_PATH = "/tmp/runtime/output/results.json"  # inside the emulated runtime
LOGICAL_DATE = "2025-06-01T00:00:00Z"
DS = "2025-06-01"
#: Bounds: the DAG showing up after the first parse, and the whole run.
DAG_PARSE_TIMEOUT = 90.0
RUN_TIMEOUT = 150.0


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BctrlEmulator]:
    """The emulator in a child process of its own, as a deployment would reach a separate service."""
    with BctrlEmulator(
        api_key=KEY, data_dir=tmp_path_factory.mktemp("standalone-emulator"), in_process=False
    ) as emu:
        yield emu


@pytest.fixture(scope="module")
def deployment(emulator: BctrlEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    """``airflow standalone`` with the example DAGs and the emulator as ``bctrl_default``."""
    home = tmp_path_factory.mktemp("standalone-home")
    with run_standalone(
        home,
        REPO_ROOT / "example_dags",
        {"AIRFLOW_CONN_BCTRL_DEFAULT": emulator.airflow_connection_json()},
    ) as running:
        yield running
    left = group_members(running.process.pid)
    assert not left, f"airflow standalone left processes behind: {left}"


def _dag_loaded(deployment: Standalone) -> dict[str, Any] | None:
    response = deployment.session.get(f"{deployment.url}/api/v2/dags/{DAG_ID}", timeout=(5, 30))
    return response.json() if response.status_code == 200 else None


def _import_errors(deployment: Standalone) -> str:
    errors = deployment.api("GET", "/importErrors")
    return json.dumps(errors, indent=1)[:4000] + "\n" + deployment.log_tail()


def _xcom(deployment: Standalone, run_id: str, task_id: str, key: str) -> Any:
    entry = deployment.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
    )
    assert entry["key"] == key
    assert entry["task_id"] == task_id
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) and value[:1] in '{["' else value


def test_report_pipeline_runs_in_a_real_deployment(deployment: Standalone, emulator: BctrlEmulator) -> None:
    """Unpause, trigger, wait; every task succeeded in its own process; the XCom ids are the stored files."""
    runtime_id = emulator.create_runtime()
    browser_output = json.dumps({"runtime": runtime_id, "rows": [{"site": "alpha", "status": "ok"}]}).encode()
    emulator.write_runtime_file(runtime_id, OUTPUT_PATH, browser_output)

    dag = poll(
        f"DAG {DAG_ID} to be parsed",
        lambda: _dag_loaded(deployment),
        timeout=DAG_PARSE_TIMEOUT,
        context=lambda: _import_errors(deployment),
    )
    assert dag["is_paused"] is True, "new DAGs start paused"
    assert deployment.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})["is_paused"] is False

    run = deployment.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": LOGICAL_DATE, "conf": {"runtime_id": runtime_id}},
    )
    run_id = run["dag_run_id"]

    def finished() -> dict[str, Any] | None:
        current = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        return current if current["state"] in ("success", "failed") else None

    def run_context() -> str:
        tis = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
        states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
        return f"task states: {states}\n{deployment.log_tail()}"

    triggered = time.monotonic()
    final = poll(f"run {run_id} to finish", finished, timeout=RUN_TIMEOUT, interval=2.0, context=run_context)

    print(f"run {run_id} finished ({final['state']}) {time.monotonic() - triggered:.1f} s after the trigger")
    tis = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert final["state"] == "success", f"{states}\n{run_context()}"
    assert states == dict.fromkeys(TASKS, "success")

    # Each task ran in a process of its own: distinct pids, none of them the deployment's own.
    pids = {ti["task_id"]: ti["pid"] for ti in tis}
    assert all(isinstance(pid, int) and pid > 0 for pid in pids.values()), pids
    assert len(set(pids.values())) == len(TASKS), f"tasks shared a process: {pids}"
    assert deployment.process.pid not in pids.values()
    assert os.getpid() not in pids.values()
    assert {ti["executor"] or "LocalExecutor" for ti in tis} <= {"LocalExecutor"}

    # --- XComs through REST, checked against what the emulator stored
    stored = {f["id"]: f for f in emulator.stored_files()}
    artifacts = {a["id"]: a for a in emulator.artifacts()}

    upload_file_id = _xcom(deployment, run_id, "upload_report", "file_id")
    staged = _xcom(deployment, run_id, "upload_report", "return_value")
    assert staged["id"] == upload_file_id
    assert staged["runtimeId"] == runtime_id
    assert staged["runtimePath"] == f"inputs/report-{DS}.csv"
    assert stored[upload_file_id]["name"] == f"report-{DS}.csv"

    collected_file_id = _xcom(deployment, run_id, "collect_results", "file_id")
    artifact_id = _xcom(deployment, run_id, "collect_results", "artifact_id")
    assert collected_file_id in stored
    assert stored[collected_file_id]["sizeBytes"] == len(browser_output)
    assert stored[collected_file_id]["source"] == "runtime"
    assert artifact_id in artifacts
    assert collected_file_id != upload_file_id

    downloaded = _xcom(deployment, run_id, "download_results", "return_value")
    assert downloaded.endswith(f"/results-{DS}.json")
    assert Path(downloaded.removeprefix("file://")).read_bytes() == browser_output

    handed = _xcom(deployment, run_id, "hand_off", "return_value")
    assert handed == {
        "file_id": collected_file_id,
        "artifact_id": artifact_id,
        "staged_name": f"report-{DS}.csv",
    }

    # The key went to the tasks through the environment, and into no output of the deployment.
    assert KEY not in deployment.log_path.read_text(encoding="utf-8", errors="replace")
