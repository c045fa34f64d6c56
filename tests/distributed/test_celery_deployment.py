"""The provider on a distributed Airflow: CeleryExecutor, two workers, PostgreSQL, Redis, files via S3.

The stack (``scripts/celery_stack.py``) starts PostgreSQL, Redis, an S3 server (moto), the BCTRL
emulator, and Airflow's scheduler, dag-processor, triggerer, api-server and two Celery workers with their own working directories and TMPDIRs, all on loopback. Several runs of
``bctrl_report_pipeline`` are triggered at once (``scripts/demo_celery.py``; stack and runs are shared
with ``make demo-celery``), half of them with ``"logical_date": null``. The report
is written to S3 on worker w1 and uploaded from S3 on worker w2 (a cluster policy routes them), and the
collected result is downloaded into S3 on w2. Everything is read back through the REST API, the
object store and the emulator, then the stack is stopped and nothing may be left running.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from celery_stack import PINNED_TASKS, WORKERS, Stack, running_stack
from demo_celery import PipelineRun, run_report_pipelines, sha256, tasks_per_worker, worker_of

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

TASKS = {
    "generate_report",
    "upload_report",
    "run_browser_agent",
    "collect_results",
    "download_results",
    "hand_off",
}
LOGICAL_DATES = ["2025-06-01T00:00:00Z", None, "2025-06-02T00:00:00Z", None]


def _check_run(stack: Stack, run: PipelineRun, stored: dict[str, dict], artifacts: set[str]) -> None:
    assert run.state == "success", f"{run.run_id}: {run.task_states}\n{stack.logs()}"
    assert run.task_states == dict.fromkeys(TASKS, "success")
    # The pinned tasks ran where the policy sent them: the report crossed workers through S3.
    for task_id, worker in PINNED_TASKS.items():
        assert worker_of(run.hostnames[task_id]) == worker, run.hostnames
    assert {worker_of(h) for h in run.hostnames.values()} <= set(WORKERS), run.hostnames

    x = run.xcoms
    report_uri, result_uri = str(x["report"]), str(x["downloaded"])
    assert report_uri.startswith("s3://"), report_uri
    assert result_uri.rsplit("/", 1)[0] == report_uri.rsplit("/", 1)[0]
    day = x["staged"]["name"].removeprefix("report-").removesuffix(".csv")
    if run.logical_date:
        assert day == run.logical_date[:10]
    assert result_uri.endswith(f"/results-{day}.json")

    # XCom ids (REST) are the emulator's stored files; the bytes in S3 are what the emulator holds.
    upload = stored[x["upload_file_id"]]
    collected = stored[x["collected_file_id"]]
    assert x["staged"]["id"] == x["upload_file_id"]
    assert x["staged"]["runtimeId"] == run.runtime_id
    assert upload["source"] == "upload"
    assert collected["source"] == "runtime"
    assert collected["runtimeId"] == run.runtime_id
    assert x["artifact_id"] in artifacts
    report_bytes = stack.s3_get(report_uri)
    assert day.encode() in report_bytes
    assert sha256(report_bytes) == upload["sha256"]
    assert stack.emulator.read_runtime_file(run.runtime_id, x["staged"]["runtimePath"]) == report_bytes
    result_bytes = stack.s3_get(result_uri)
    assert result_bytes == run.browser_output
    assert sha256(result_bytes) == collected["sha256"]
    assert x["hand_off"]["file_id"] == x["collected_file_id"]
    assert x["hand_off"]["artifact_id"] == x["artifact_id"]


def test_report_pipeline_on_celery_with_two_workers(tmp_path: Path) -> None:
    """Four concurrent runs (two without a logical date) succeed across both workers, files via S3."""
    started = time.monotonic()
    with running_stack(tmp_path / "stack") as stack:
        print(
            f"\nstack healthy in {stack.timings['start']:.1f} s (services {stack.timings['services']:.1f} s, "
            f"db migrate {stack.timings['db_migrate']:.1f} s, airflow {stack.timings['airflow_healthy']:.1f} s)"
        )
        triggered = time.monotonic()
        runs = run_report_pipelines(stack, LOGICAL_DATES)
        print(f"{len(runs)} runs finished {time.monotonic() - triggered:.1f} s after the trigger")

        stored = {f["id"]: f for f in stack.emulator.stored_files()}
        artifacts = {a["id"] for a in stack.emulator.artifacts()}
        for run in runs:
            _check_run(stack, run, stored, artifacts)
        assert len({run.run_id for run in runs}) == len(LOGICAL_DATES)

        per_worker = tasks_per_worker(runs)
        print(
            "tasks per worker (task instance hostname): "
            + ", ".join(f"{w} {n}" for w, n in sorted(per_worker.items()))
        )
        assert set(per_worker) == set(WORKERS), per_worker
        assert sum(per_worker.values()) == len(TASKS) * len(LOGICAL_DATES)

        # Nothing passed through a local disk: no temp objects left in S3, no files in the workers' dirs.
        keys = stack.s3_keys()
        assert len(keys) == 2 * len(LOGICAL_DATES), keys
        assert not [k for k in keys if ".part" in k], keys
        for name in WORKERS:
            local = [p for p in stack.worker_dir(name).rglob("*") if p.is_file() and p.name != "worker.pid"]
            assert local == [], f"worker {name} left files in its own folder: {local}"
        key = stack.emulator.api_key
        logs = stack.root / "logs"

    # After the stack: every process group gone, every port closed, and the key in no log.
    each = ", ".join(f"{k} {v:.1f}" for k, v in stack.stop_times.items())
    print(
        f"stack stopped in {stack.timings['stop']:.1f} s ({each}); whole test {time.monotonic() - started:.1f} s"
    )
    assert stack.leftover_processes == {}, stack.leftover_processes
    assert stack.leftover_ports == [], stack.leftover_ports
    assert not [p for s in stack.services if (p := s.process.poll()) is None]
    for log in logs.glob("*.log"):
        assert key not in log.read_text(encoding="utf-8", errors="replace"), f"API key in {log}"
    for path in (stack.root / "airflow-home" / "logs").rglob("*"):
        if path.is_file():
            assert key not in path.read_text(encoding="utf-8", errors="replace"), f"API key in {path}"
