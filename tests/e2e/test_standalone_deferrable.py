"""The deferrable wait under a REAL triggerer: ``airflow standalone`` runs ``bctrl_runtime_lifecycle``.

The emulator is its own process; the DAG starts the runtime, uploads, defers ``collect_output`` to the
triggerer, and the test plays the browser: once the triggerer's first poll found nothing, the output
appears a few seconds later. The task must be seen ``deferred``, the polls must come from the trigger
(its User-Agent), exactly one collect must succeed, and the teardown must stop the runtime.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _standalone import Standalone, group_members, poll, run_standalone
from dagrun_helpers import finish_after_first_miss

from airflow_provider_bctrl.operators.runtimes import idempotency_key_for
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "bctrl_runtime_lifecycle"
TASKS = {"start_runtime", "write_input", "upload_input", "collect_output", "download_output", "stop_runtime"}
KEY = "bctrl_standalone_deferral_Pp4secretQq71"
OUTPUT_PATH = "/tmp/runtime/output/results.json"
DAG_PARSE_TIMEOUT = 90.0
RUN_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BctrlEmulator]:
    """The emulator in a child process, as a deployment would reach a separate service."""
    with BctrlEmulator(
        api_key=KEY, data_dir=tmp_path_factory.mktemp("deferral-emulator"), in_process=False
    ) as emu:
        yield emu


@pytest.fixture(scope="module")
def deployment(emulator: BctrlEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    """``airflow standalone`` (scheduler, LocalExecutor, triggerer, api-server) with the example DAGs."""
    home = tmp_path_factory.mktemp("deferral-home")
    with run_standalone(
        home,
        REPO_ROOT / "example_dags",
        {"AIRFLOW_CONN_BCTRL_DEFAULT": emulator.airflow_connection_json()},
    ) as running:
        yield running
    left = group_members(running.process.pid)
    assert not left, f"airflow standalone left processes behind: {left}"


def test_collect_waits_in_the_real_triggerer(
    deployment: Standalone, emulator: BctrlEmulator, tmp_path: Path
) -> None:
    runtime_id = emulator.create_runtime(active=False)
    output = json.dumps({"rows": [{"site": "alpha", "status": "ok"}]}).encode()
    browser = finish_after_first_miss(emulator, runtime_id, OUTPUT_PATH, output, delay_seconds=4)

    poll(
        f"DAG {DAG_ID} to be parsed",
        lambda: _dag_loaded(deployment),
        timeout=DAG_PARSE_TIMEOUT,
        context=lambda: json.dumps(deployment.api("GET", "/importErrors"))[:4000] + deployment.log_tail(),
    )
    deployment.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    run = deployment.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {"runtime_id": runtime_id, "output_base": f"file://{tmp_path}"}},
    )
    run_id = run["dag_run_id"]
    seen: set[str] = set()

    def states() -> dict[str, Any]:
        tis = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def finished() -> dict[str, Any] | None:
        seen.add(str(states().get("collect_output")))
        current = deployment.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        return current if current["state"] in ("success", "failed") else None

    started = time.monotonic()
    final = poll(
        f"run {run_id} to finish",
        finished,
        timeout=RUN_TIMEOUT,
        interval=1.0,
        context=lambda: f"task states: {states()}\n{deployment.log_tail()}",
    )
    browser.join(timeout=5)
    print(
        f"run finished ({final['state']}) in {time.monotonic() - started:.1f} s; collect states seen: {seen}"
    )
    assert final["state"] == "success", f"{states()}\n{deployment.log_tail()}"
    assert states() == dict.fromkeys(TASKS, "success")
    assert "deferred" in seen, f"collect_output was never seen deferred: {seen}"

    collects = [e for e in emulator.requests_log() if e["route"] == "collect" and runtime_id in e["path"]]
    statuses = [e["status"] for e in collects]
    assert statuses.count(200) == 1, statuses
    assert statuses[-1] == 200
    assert len(statuses) >= 2, statuses
    assert all("(trigger)" in (e["userAgent"] or "") for e in collects)

    runtime = emulator.runtime(runtime_id)
    assert runtime["status"] == "stopped"
    downloaded = list(tmp_path.glob("bctrl-output-*.json"))
    assert [p.read_bytes() for p in downloaded] == [output]
    # The key reached the triggerer through the connection, and no output of the deployment. The
    # connect URL (a credential) is in no task log either: replaying the start's key gives it back.
    assert KEY not in deployment.log_path.read_text(encoding="utf-8", errors="replace")
    key = idempotency_key_for(DAG_ID, run_id, "start_runtime", -1)
    replay = requests.post(
        f"{emulator.url}/v1/runtimes/{runtime_id}/start",
        headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": key},
        timeout=10,
    ).json()
    assert replay["runId"] == runtime["runId"]
    token = replay["connectUrl"].rpartition("token=")[2]
    task_logs = [p for p in (deployment.log_path.parent / "logs").rglob("*") if p.is_file()]
    assert task_logs, "no task logs were written"
    for path in task_logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert token not in text, f"the connect URL leaked into {path}"
        assert KEY not in text, f"the API key leaked into {path}"


def _dag_loaded(deployment: Standalone) -> dict[str, Any] | None:
    response = deployment.session.get(f"{deployment.url}/api/v2/dags/{DAG_ID}", timeout=(5, 30))
    return response.json() if response.status_code == 200 else None
