"""The deferrable wait under a REAL triggerer: ``airflow standalone`` runs ``bctrl_runtime_lifecycle``.

The emulator is its own process; the DAG starts the runtime, uploads, defers ``collect_output`` to the
triggerer, and the test plays the browser: once the triggerer's first poll found nothing, the output
appears a few seconds later. The task must be seen ``deferred``, the polls must come from the trigger
(its User-Agent), exactly one collect must succeed, and the teardown must stop the runtime. The
deployment and its emulator are the session's shared ones (``tests/e2e/conftest.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from _standalone import STANDALONE_KEY, Standalone
from dagrun_helpers import finish_after_first_miss

from airflow_provider_bctrl.operators.runtimes import idempotency_key_for
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

DAG_ID = "bctrl_runtime_lifecycle"
TASKS = {"start_runtime", "write_input", "upload_input", "collect_output", "download_output", "stop_runtime"}
KEY = STANDALONE_KEY
OUTPUT_PATH = "/tmp/runtime/output/results.json"
RUN_TIMEOUT = 180.0


def test_collect_waits_in_the_real_triggerer(
    standalone: Standalone, standalone_emulator: BctrlEmulator, tmp_path: Path
) -> None:
    deployment, emulator = standalone, standalone_emulator
    runtime_id = emulator.create_runtime(active=False)
    output = json.dumps({"rows": [{"site": "alpha", "status": "ok"}]}).encode()
    browser = finish_after_first_miss(emulator, runtime_id, OUTPUT_PATH, output, delay_seconds=4)

    deployment.wait_for_dag(DAG_ID)
    run_id = deployment.trigger(
        DAG_ID,
        logical_date=None,
        conf={"runtime_id": runtime_id, "output_base": f"file://{tmp_path}"},
    )
    seen: set[str] = set()
    final = deployment.wait_for_run(
        DAG_ID,
        run_id,
        timeout=RUN_TIMEOUT,
        on_poll=lambda: seen.add(str(deployment.task_states(DAG_ID, run_id).get("collect_output"))),
    )
    browser.join(timeout=5)
    print(f"collect_output states seen: {seen}")
    states = deployment.task_states(DAG_ID, run_id)
    assert final["state"] == "success", f"{states}\n{deployment.log_tail()}"
    assert states == dict.fromkeys(TASKS, "success")
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
