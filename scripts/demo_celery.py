"""``make demo-celery``: the report pipeline on the CeleryExecutor stack, several runs at once.

Starts the stack of ``scripts/celery_stack.py``, triggers ``bctrl_report_pipeline`` several times at
once through the REST API (every second run with ``"logical_date": null``), reads back through REST,
S3 and the emulator what each run did and on which worker, prints it, and stops everything. The
distributed test (``tests/distributed``) uses the same :func:`run_report_pipelines`.

``--memory`` also samples each worker's memory during the runs (see ``docs/deployment.md``);
``BCTRL_STACK_CONCURRENCY`` sets the slots per worker (default 2).

Usage: ``python scripts/demo_celery.py [--runs 4] [--memory] [--keep]`` (or ``make demo-celery``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from celery_stack import (
    BUCKET,
    DAG_ID,
    OUTPUT_PATH,
    RUN_TIMEOUT,
    S3_CONN_ID,
    WORKER_CONCURRENCY,
    WORKERS,
    Stack,
    poll,
    postgres_bindir,
    running_stack,
    session_members,
)

# ------------------------------------------------------------------------------------ scenario


@dataclass
class PipelineRun:
    """One triggered run of the pipeline and what it left behind, read through REST, S3 and the emulator."""

    run_id: str
    logical_date: str | None
    runtime_id: str
    browser_output: bytes
    state: str = ""
    task_states: dict[str, str] = field(default_factory=dict)
    hostnames: dict[str, str] = field(default_factory=dict)
    #: task_id -> (start_date, end_date) as the REST API gives them (ISO 8601).
    times: dict[str, tuple[str, str]] = field(default_factory=dict)
    xcoms: dict[str, Any] = field(default_factory=dict)


def _xcom(stack: Stack, run_id: str, task_id: str, key: str = "return_value") -> Any:
    entry = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) and value[:1] in '{["' else value


def run_report_pipelines(stack: Stack, logical_dates: list[str | None]) -> list[PipelineRun]:
    """Trigger ``bctrl_report_pipeline`` once per entry, all at once; wait for all; read them back.

    Each run gets its own emulated runtime holding a distinct browser result, and writes its report
    and downloaded result under ``s3://bctrl-reports/reports`` through the ``s3_reports`` connection.
    """
    emulator = stack.emulator

    def parsed() -> dict[str, Any] | None:
        response = stack.session.get(f"{stack.api_url}/api/v2/dags/{DAG_ID}", timeout=(5, 30))
        return response.json() if response.status_code == 200 else None

    poll(f"DAG {DAG_ID} to be parsed", parsed, timeout=120)
    stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

    runs = []
    for number, logical_date in enumerate(logical_dates):
        runtime_id = emulator.create_runtime()
        output = json.dumps({"run": number, "runtime": runtime_id, "rows": [{"site": "alpha"}]}).encode()
        emulator.write_runtime_file(runtime_id, OUTPUT_PATH, output)
        runs.append(PipelineRun("", logical_date, runtime_id, output))

    def trigger(run: PipelineRun) -> str:
        conf = {
            "runtime_id": run.runtime_id,
            "report_base": f"s3://{BUCKET}/reports",
            "report_conn_id": S3_CONN_ID,
        }
        body = {"logical_date": run.logical_date, "conf": conf}
        return str(stack.api("POST", f"/dags/{DAG_ID}/dagRuns", json=body)["dag_run_id"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(runs)) as pool:
        for run, run_id in zip(runs, pool.map(trigger, runs), strict=True):
            run.run_id = run_id

    def all_finished() -> bool | None:
        for run in runs:
            run.state = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run.run_id}")["state"]
        return True if all(run.state in ("success", "failed") for run in runs) else None

    try:
        poll("every run to finish", all_finished, timeout=RUN_TIMEOUT, interval=1.0)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc} States: {[r.state for r in runs]}\n{stack.logs()}") from None

    for run in runs:
        tis = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances")["task_instances"]
        run.task_states = {ti["task_id"]: ti["state"] for ti in tis}
        run.hostnames = {ti["task_id"]: ti["hostname"] for ti in tis}
        run.times = {ti["task_id"]: (ti["start_date"], ti["end_date"]) for ti in tis}
        if run.state == "success":
            run.xcoms = {
                "report": _xcom(stack, run.run_id, "generate_report"),
                "staged": _xcom(stack, run.run_id, "upload_report"),
                "upload_file_id": _xcom(stack, run.run_id, "upload_report", "file_id"),
                "collected_file_id": _xcom(stack, run.run_id, "collect_results", "file_id"),
                "artifact_id": _xcom(stack, run.run_id, "collect_results", "artifact_id"),
                "downloaded": _xcom(stack, run.run_id, "download_results"),
                "hand_off": _xcom(stack, run.run_id, "hand_off"),
            }
    return runs


def worker_of(hostname: str | None) -> str:
    """``w1`` for a task instance hostname ``w1@<host>`` (what the stack's hostname_callable reports)."""
    return (hostname or "?").split("@", 1)[0]


def tasks_per_worker(runs: list[PipelineRun]) -> Counter[str]:
    """How many task instances each worker ran, from the task instances' hostnames."""
    return Counter(worker_of(host) for run in runs for host in run.hostnames.values())


def peak_overlap(runs: list[PipelineRun], worker: str, task_id: str | None = None) -> int:
    """The most task instances (of ``task_id``, or any) running on ``worker`` at the same moment."""
    from datetime import datetime

    events = []
    for run in runs:
        for task, (start, end) in run.times.items():
            if worker_of(run.hostnames.get(task)) == worker and start and end and task_id in (None, task):
                events += [(datetime.fromisoformat(start), 1), (datetime.fromisoformat(end), -1)]
    peak = current = 0
    for _, step in sorted(events):
        current += step
        peak = max(peak, current)
    return peak


def sha256(data: bytes) -> str:
    """Hex sha256."""
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ memory


def group_pss_mib(pgid: int) -> tuple[float, int]:
    """Proportional set size (MiB) summed over a service's processes (its session), and their count.

    PSS splits pages shared between forked processes (Celery's prefork pool, each task's supervisor and
    task process) among them, so the sum is what the group really holds in RAM; RSS would count shared
    pages once per process.
    """
    total_kib, count = 0, 0
    for line in session_members(pgid):
        pid = line.split()[0]
        with contextlib.suppress(OSError, ValueError):
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            total_kib += int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE).group(1))  # type: ignore[union-attr]
            count += 1
    return total_kib / 1024, count


class MemorySampler:
    """Samples every worker's PSS and process count a few times a second, in a background thread."""

    def __init__(self, stack: Stack, interval: float = 0.25) -> None:
        import threading

        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in WORKERS}
        self._groups = {
            s.name.removeprefix("worker-"): s.process.pid
            for s in stack.services
            if s.name.startswith("worker-")
        }
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pgid in self._groups.items():
                self.samples[name].append(group_pss_mib(pgid))
            self._stop.wait(self._interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per worker: idle (first sample) and peak PSS in MiB, idle and peak process counts."""
        result = {}
        for name, samples in self.samples.items():
            if samples:
                result[name] = {
                    "idle_mib": samples[0][0],
                    "peak_mib": max(pss for pss, _ in samples),
                    "idle_processes": samples[0][1],
                    "peak_processes": max(n for _, n in samples),
                }
        return result


# ------------------------------------------------------------------------------------ demo


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    found = {
        name: version(name)
        for name in (
            "apache-airflow",
            "apache-airflow-providers-celery",
            "celery",
            "apache-airflow-providers-amazon",
            "moto",
            "s3fs",
        )
    }
    postgres = subprocess.run(
        [str(postgres_bindir() / "postgres"), "--version"], capture_output=True, text=True
    )
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    found["postgresql"] = postgres.stdout.split()[2] if postgres.stdout else "?"
    found["redis"] = next((p.split("=")[1] for p in redis.stdout.split() if p.startswith("v=")), "?")
    return found


def main(argv: list[str] | None = None) -> int:
    """Bring the stack up, run the pipeline several times at once, print what happened, stop everything."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "--runs", type=int, default=4, help="runs to trigger at once; every second one with logical_date null"
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack's folder (logs) after stopping")
    parser.add_argument(
        "--memory", action="store_true", help="sample the workers' memory (PSS) during the runs"
    )
    args = parser.parse_args(argv)
    print("==> versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()))
    root = Path(tempfile.mkdtemp(prefix="bctrl-celery-stack-"))
    started = time.monotonic()
    dates = [None if n % 2 else f"2025-06-{n + 1:02d}T00:00:00Z" for n in range(args.runs)]
    ok = False
    stack = Stack(root=root)
    try:
        with running_stack(root, stack) as stack:
            print(
                f"==> stack healthy in {stack.timings['start']:.1f} s (services {stack.timings['services']:.1f} s, "
                f"db migrate {stack.timings['db_migrate']:.1f} s, airflow {stack.timings['airflow_healthy']:.1f} s); "
                f"api {stack.api_url}, s3 {stack.s3_url}, emulator {stack.emulator.url}"
            )
            triggered = time.monotonic()
            sampler = MemorySampler(stack)
            with sampler if args.memory else contextlib.nullcontext():
                runs = run_report_pipelines(stack, dates)
            print(f"==> {len(runs)} runs finished {time.monotonic() - triggered:.1f} s after the trigger")
            for name, figures in sampler.summary().items():
                print(
                    f"==> worker {name} ({WORKER_CONCURRENCY} slots): PSS idle {figures['idle_mib']:.0f} MiB, "
                    f"peak {figures['peak_mib']:.0f} MiB; processes idle {figures['idle_processes']:.0f}, "
                    f"peak {figures['peak_processes']:.0f}; at most {peak_overlap(runs, name)} tasks "
                    f"({peak_overlap(runs, name, 'upload_report')} uploads) at once"
                )
            for run in runs:
                where = ", ".join(f"{task}@{worker_of(host)}" for task, host in sorted(run.hostnames.items()))
                print(f"  {run.run_id}: {run.state} (logical_date {run.logical_date}) {where}")
                if run.state == "success":
                    print(f"    report  {run.xcoms['report']}\n    result  {run.xcoms['downloaded']}")
            print(
                "==> tasks per worker (task instance hostname): "
                + ", ".join(f"{w} {n}" for w, n in sorted(tasks_per_worker(runs).items()))
            )
            ok = all(run.state == "success" for run in runs)
            for run in runs if ok else []:
                if stack.s3_get(run.xcoms["downloaded"]) != run.browser_output:
                    ok = False
                    print(f"  MISMATCH: {run.xcoms['downloaded']} is not the collected result")
    finally:
        each = ", ".join(f"{k} {v:.1f}" for k, v in stack.stop_times.items())
        print(f"==> stopped in {stack.timings.get('stop', 0):.1f} s (per group: {each})")
        left = [*(f"{k}: {v}" for k, v in stack.leftover_processes.items()), *map(str, stack.leftover_ports)]
        print("==> nothing left running" if not left else f"==> LEFT RUNNING: {left}")
        ok = ok and not left
        if args.keep or not ok:
            print(f"==> logs kept in {root}/logs")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"==> demo-celery {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
