"""A DAG written outside this project runs under ``airflow dags test`` against the emulator, on every line.

The DAG file below is what a user would write: it imports only public names (through
``airflow.providers.common.compat.sdk``, so one file serves Airflow 2.11 and 3.x) and this provider's
operators. It uploads a file with templated arguments, collects the browser's output as an artifact,
and a downstream task reads ``file_id`` / ``artifact_id`` from XCom. The run happens in a fresh
``airflow`` process with its own home and database, DEBUG logging on, so the test also checks that the
API key appears nowhere in what Airflow printed, Airflow's own debug lines included.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from _airflow_env import AIRFLOW_BIN, airflow_env

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

KEY = "bctrl_cli_Mm4secretQq27"
DAG_ID = "user_report_handoff"

USER_DAG = textwrap.dedent(
    '''
    """A user's DAG: hand a report to a browser runtime and pick up what it made."""
    import json
    from datetime import datetime

    from airflow.providers.common.compat.sdk import DAG, task

    from airflow_provider_bctrl.operators import BctrlCollectFileOperator, BctrlUploadFileOperator

    with DAG(
        dag_id="user_report_handoff",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        params={"runtime_id": "", "source": "", "output": "", "result_file": ""},
    ) as dag:
        upload = BctrlUploadFileOperator(
            task_id="upload",
            runtime_id="{{ params.runtime_id }}",
            source="{{ params.source }}",
            runtime_path="inputs/{{ dag.dag_id }}-{{ ds }}.bin",
        )
        collect = BctrlCollectFileOperator(
            task_id="collect",
            runtime_id="{{ params.runtime_id }}",
            path="{{ params.output }}",
            artifact={"kind": "report", "name": "report for {{ ds }}"},
        )

        @task
        def hand_off(result_file, **context):
            ti = context["ti"]
            ids = {
                "uploaded_file_id": ti.xcom_pull(task_ids="upload", key="file_id"),
                "file_id": ti.xcom_pull(task_ids="collect", key="file_id"),
                "artifact_id": ti.xcom_pull(task_ids="collect", key="artifact_id"),
            }
            with open(result_file, "w") as handle:
                json.dump(ids, handle)
            return ids

        upload >> collect >> hand_off("{{ params.result_file }}")
    '''
)


def _airflow_env(home: Path, dags: Path, emulator: BctrlEmulator) -> dict[str, str]:
    return airflow_env(
        home,
        dags,
        AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG",
        AIRFLOW_CONN_BCTRL_DEFAULT=emulator.airflow_connection_json(),
    )


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIRFLOW_BIN, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_user_dag_runs_under_airflow_dags_test(tmp_path: Path) -> None:
    home, dags = tmp_path / "home", tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(USER_DAG)
    # Every byte value, twice over, and not a multiple of any buffer size: byte-exactness shows.
    source = tmp_path / "report.bin"
    source.write_bytes(bytes(range(256)) * 2 + b"\x00\r\n\xff tail")
    produced = bytes(reversed(range(256))) * 3 + b"\n"
    result_file = tmp_path / "result.json"

    with BctrlEmulator(api_key=KEY, data_dir=tmp_path / "emulator") as emu:
        runtime_id = emu.create_runtime()
        emu.write_runtime_file(runtime_id, "/tmp/runtime/output/made.bin", produced)
        env = _airflow_env(home, dags, emu)
        migrate = _run(["db", "migrate"], env, timeout=300)
        assert migrate.returncode == 0, migrate.stderr[-3000:]

        conf = {
            "runtime_id": runtime_id,
            "source": str(source),
            "output": "/tmp/runtime/output/made.bin",
            "result_file": str(result_file),
        }
        started = time.monotonic()
        done = _run(["dags", "test", DAG_ID, "2030-05-17", "-c", json.dumps(conf)], env, timeout=600)
        output = done.stdout + done.stderr
        print(f"airflow dags test took {time.monotonic() - started:.1f} s")
        assert done.returncode == 0, output[-5000:]

        ids = json.loads(result_file.read_text())
        stored = {f["id"]: f for f in emu.stored_files()}
        # The upload: templated path, bytes byte-exact in the runtime and in the stored copy.
        assert emu.read_runtime_file(runtime_id, f"inputs/{DAG_ID}-2030-05-17.bin") == source.read_bytes()
        assert stored[ids["uploaded_file_id"]]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        # The collect: the browser's bytes reached durable storage unchanged, with a templated artifact.
        assert stored[ids["file_id"]]["sha256"] == hashlib.sha256(produced).hexdigest()
        assert stored[ids["file_id"]]["sizeBytes"] == len(produced)
        artifacts = {a["id"]: a for a in emu.artifacts()}
        assert artifacts[ids["artifact_id"]]["name"] == "report for 2030-05-17"
        assert artifacts[ids["artifact_id"]]["runtimeId"] == runtime_id

    # DEBUG logging was on: the key is in no line Airflow or the provider printed.
    assert re.search(r"\bdebug\b", output, re.IGNORECASE)
    assert KEY not in output, [line for line in output.splitlines() if KEY in line][:5]


@pytest.mark.slow
def test_lifecycle_example_waits_deferred_under_airflow_dags_test(tmp_path: Path) -> None:
    """The runtime lifecycle example (start, deferred wait, collect, download, stop) on every line,
    2.11 included: ``airflow dags test`` runs the trigger in line, as the triggerer would."""
    import shutil
    import threading

    home, dags, out = tmp_path / "home", tmp_path / "dags", tmp_path / "out"
    dags.mkdir()
    out.mkdir()
    example = Path(__file__).resolve().parents[2] / "example_dags" / "bctrl_runtime_lifecycle.py"
    shutil.copy(example, dags / example.name)
    output_path = "/tmp/runtime/output/results.json"
    produced = b'{"rows": [{"site": "alpha", "status": "ok"}]}'

    with BctrlEmulator(api_key=KEY, data_dir=tmp_path / "emulator") as emu:
        runtime_id = emu.create_runtime(active=False)
        stop_watching = threading.Event()

        def browser() -> None:  # writes the output 2 s after the first poll found nothing
            while not stop_watching.wait(0.2):
                if any(e["route"] == "collect" and e["status"] == 404 for e in emu.requests_log()):
                    emu.write_runtime_file_later(runtime_id, output_path, produced, delay_seconds=2)
                    return

        watcher = threading.Thread(target=browser, daemon=True)
        watcher.start()
        env = _airflow_env(home, dags, emu)
        migrate = _run(["db", "migrate"], env, timeout=300)
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        conf = {"runtime_id": runtime_id, "output_path": output_path, "output_base": f"file://{out}"}
        try:
            done = _run(["dags", "test", "bctrl_runtime_lifecycle", "-c", json.dumps(conf)], env, timeout=600)
        finally:
            stop_watching.set()
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-5000:]

        collects = [e for e in emu.requests_log() if e["route"] == "collect"]
        assert [e["status"] for e in collects[:-1]] == [404] * (len(collects) - 1)
        assert len(collects) >= 2
        assert collects[-1]["status"] == 200
        assert all("(trigger)" in e["userAgent"] for e in collects)  # the wait ran in the trigger
        assert emu.runtime(runtime_id)["status"] == "stopped"  # the teardown ran
    (written,) = list(out.iterdir())
    assert written.read_bytes() == produced
    # DEBUG logging was on: the trigger's connection lookup leaked the key through the in-process
    # supervisor's log on 3.1+ until it guarded it as the hook does.
    assert KEY not in output, [line for line in output.splitlines() if KEY in line][:5]


@pytest.mark.slow
@pytest.mark.airflow_lines(
    "3.0", reason="3.1+'s airflow dags test registers the dags folder itself (test_asset_pair.py)"
)
def test_asset_producer_under_airflow_dags_test_after_reserialize_on_3_0(tmp_path: Path) -> None:
    """What docs/installation.md tells 3.0 users: ``airflow dags reserialize`` (the DAG processor's
    parse and registration) before ``airflow dags test`` makes a ``bctrl://`` outlet an active asset,
    and the run records the asset event with the stored file's ids."""
    import shutil
    import sqlite3

    home, dags = tmp_path / "home", tmp_path / "dags"
    dags.mkdir()
    example = Path(__file__).resolve().parents[2] / "example_dags" / "bctrl_asset_producer.py"
    shutil.copy(example, dags / example.name)
    report = b'{"day": "today"}'

    with BctrlEmulator(api_key=KEY, data_dir=tmp_path / "emulator") as emu:
        runtime_id = emu.create_runtime()
        emu.write_runtime_file(runtime_id, "/tmp/runtime/output/report.json", report)
        env = {**_airflow_env(home, dags, emu), "BCTRL_SPACE_ID": emu.space_id}
        for args in (["db", "migrate"], ["dags", "reserialize"]):
            done = _run(args, env, timeout=300)
            assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        conf = json.dumps({"runtime_id": runtime_id})
        done = _run(["dags", "test", "bctrl_asset_producer", "-c", conf], env, timeout=600)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-5000:]
        assert "InactiveAsset" not in output
        stored = {f["id"]: f for f in emu.stored_files()}

    uri = f"bctrl://{emu.space_id}/reports/daily"
    with sqlite3.connect(home / "airflow.db") as db:
        assert db.execute("SELECT uri FROM asset_active").fetchall() == [(uri,)]
        rows = db.execute(
            "SELECT e.source_dag_id, e.source_task_id, e.extra FROM asset_event e"
            " JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
            (uri,),
        ).fetchall()
    ((dag_id, task_id, extra_json),) = rows
    assert (dag_id, task_id) == ("bctrl_asset_producer", "collect_report")
    extra = json.loads(extra_json)
    assert stored[extra["file_id"]]["sha256"] == hashlib.sha256(report).hexdigest()
    assert extra["uri"] == f"bctrl://{emu.space_id}/{extra['path']}"
    assert KEY not in output
