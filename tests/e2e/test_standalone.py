"""A real deployment run: ``airflow standalone`` (scheduler + LocalExecutor + api-server, SQLite).

The example DAGs are the dags folder and a BCTRL emulator (its own process) is the API. The main
example, ``bctrl_report_pipeline``, is unpaused and triggered through the REST API; every task must
succeed, each in its own process, and the file and artifact ids the tasks pushed must be readable
through the REST XCom endpoints and be the emulator's stored files. The deployment is the session's
shared one (``tests/e2e/conftest.py``); everything is stopped (process groups) whatever the outcome.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from _standalone import STANDALONE_KEY, Standalone

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

DAG_ID = "bctrl_report_pipeline"
TASKS = {
    "generate_report",
    "upload_report",
    "run_browser_agent",
    "collect_results",
    "download_results",
    "hand_off",
}
OUTPUT_PATH = "/tmp/runtime/output/results.json"  # inside the emulated runtime
LOGICAL_DATE = "2025-06-01T00:00:00Z"
DS = "2025-06-01"
RUN_TIMEOUT = 150.0


def _xcom(deployment: Standalone, run_id: str, task_id: str, key: str) -> Any:
    entry = deployment.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
    )
    assert entry["key"] == key
    assert entry["task_id"] == task_id
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) and value[:1] in '{["' else value


def test_report_pipeline_runs_in_a_real_deployment(
    standalone: Standalone, standalone_emulator: BctrlEmulator
) -> None:
    """Unpause, trigger, wait; every task succeeded in its own process; the XCom ids are the stored files."""
    deployment, emulator = standalone, standalone_emulator
    runtime_id = emulator.create_runtime()
    browser_output = json.dumps({"runtime": runtime_id, "rows": [{"site": "alpha", "status": "ok"}]}).encode()
    emulator.write_runtime_file(runtime_id, OUTPUT_PATH, browser_output)

    assert deployment.wait_for_dag(DAG_ID)["is_paused"] is True, "new DAGs start paused"
    run_id = deployment.trigger(DAG_ID, logical_date=LOGICAL_DATE, conf={"runtime_id": runtime_id})
    final = deployment.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)

    tis = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert final["state"] == "success", f"{states}\n{deployment.log_tail()}"
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
    assert STANDALONE_KEY not in deployment.log_path.read_text(encoding="utf-8", errors="replace")
