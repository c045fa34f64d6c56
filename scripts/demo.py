"""`make demo`: the example pipeline in real Airflow against a local BCTRL emulator, no account needed.

1. start the emulator in a child process (temporary data directory, a demo API key) and a runtime;
2. stand in for the browser: put ``/tmp/runtime/output/results.json`` into the runtime;
3. create a throwaway Airflow home (SQLite), give it the ``bctrl`` connection through the
   environment, and run ``airflow dags test bctrl_report_pipeline`` (example_dags/): it generates a
   report, uploads it, collects the browser's result as a run artifact and hands the ids on;
4. read the ids that travelled through XCom back from Airflow's database, check them against what
   the emulator stored (sha256 of the bytes on its disk), print them, and stop the emulator.

The emulator's data directory and the task log are kept so the printed paths can be inspected.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

#: Accepted only by the local emulator started below.
DEMO_API_KEY = "bctrl_demo_local_key"
#: Where the simulated browser writes its result, inside the runtime (not on this machine).
RUNTIME_OUTPUT = "/tmp/runtime/output/results.json"  # noqa: S108


class DemoError(Exception):
    """A step of the demo did not do what it should."""


def say(label: str, value: object = None) -> None:
    """One output line: ``label`` alone, or an aligned ``label  value`` pair."""
    print(label if value is None else f"  {label:<18} {value}", flush=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_blob(data_dir: Path, record: dict[str, Any]) -> Path:
    """Where the emulator keeps a durable file's bytes (``spaces/<space>/blobs/<file id>``)."""
    expected = data_dir / "spaces" / str(record["spaceId"]) / "blobs" / str(record["id"])
    if expected.is_file():
        return expected
    matches = [p for p in data_dir.rglob(str(record["id"])) if p.is_file()]
    if len(matches) != 1:
        raise DemoError(f"cannot find the bytes of stored file {record['id']} under {data_dir}")
    return matches[0]


DAG_ID = "bctrl_report_pipeline"
REPO = Path(__file__).resolve().parent.parent


def airflow_env(work: Path) -> dict[str, str]:
    """A throwaway Airflow home with SQLite and the example DAGs; set before Airflow is imported."""
    home = work / "airflow-home"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def airflow(args: list[str], env: dict[str, str], log: Path) -> None:
    """Run an ``airflow`` CLI command with its output appended to ``log``; raise when it fails."""
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False
        )
    if result.returncode != 0:
        raise DemoError(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); see {log}")


def read_xcoms() -> tuple[str, dict[tuple[str, str], Any]]:
    """The latest run's id and every XCom it pushed, read from the demo's metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(DagRun).where(DagRun.dag_id == DAG_ID)
        dagrun = session.scalars(query.order_by(DagRun.id.desc()).limit(1)).one()
        if dagrun.state != "success":
            raise DemoError(f"the DAG run ended {dagrun.state}")
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == DAG_ID, XComModel.run_id == dagrun.run_id)
        ).all()
        return dagrun.run_id, {(x.task_id, x.key): XComModel.deserialize_value(x) for x in rows}


def run(work: Path, data_dir: Path) -> None:
    env = airflow_env(work)
    os.environ.update(env)  # before anything imports Airflow
    from airflow_provider_bctrl.testing.emulator import BctrlEmulator

    say(f"BCTRL provider demo: the {DAG_ID} example DAG in real Airflow, against a local emulator\n")
    started = time.monotonic()
    log = work / "airflow.log"
    with BctrlEmulator(api_key=DEMO_API_KEY, data_dir=data_dir, in_process=False) as emulator:
        say("emulator", f"{emulator.url} (pid {emulator.pid})")
        runtime_id = emulator.create_runtime()
        say("runtime id", runtime_id)
        # Stand in for the browser agent: the result file it would write inside the runtime.
        results = json.dumps({"status": "ok", "sites_checked": 3}, indent=2).encode()
        emulator.write_runtime_file(runtime_id, RUNTIME_OUTPUT, results)

        task_env = {**os.environ, "AIRFLOW_CONN_BCTRL_DEFAULT": emulator.airflow_connection_json()}
        say("airflow home", env["AIRFLOW_HOME"])
        airflow(["db", "migrate"], task_env, log)
        say("running", f"airflow dags test {DAG_ID} (task log: {log})")
        airflow(["dags", "test", DAG_ID, "-c", json.dumps({"runtime_id": runtime_id})], task_env, log)

        run_id, xcoms = read_xcoms()
        staged = xcoms[("upload_report", "return_value")]
        say("dag run", f"{run_id}: success")
        say("\nIds that travelled through XCom")
        say("upload file_id", xcoms[("upload_report", "file_id")])
        say("runtime_path", xcoms[("upload_report", "runtime_path")])
        collected_id = xcoms[("collect_results", "file_id")]
        say("collect file_id", collected_id)
        say("artifact_id", xcoms[("collect_results", "artifact_id")])
        handed = xcoms[("hand_off", "return_value")]
        say("hand_off got", f"file {handed['file_id']}, artifact {handed['artifact_id']}")

        records = {record["id"]: record for record in emulator.stored_files()}
        uploaded = records.get(staged["id"])
        report = Path(xcoms[("generate_report", "return_value")])
        if uploaded is None or uploaded["sha256"] != sha256(report.read_bytes()):
            raise DemoError("the emulator's copy of the uploaded report differs from the local report")
        record = records.get(collected_id)
        if record is None:
            raise DemoError(f"the emulator does not list collected file {collected_id}")
        blob = find_blob(data_dir, record)
        on_disk = sha256(blob.read_bytes())
        if not (on_disk == sha256(results) == record.get("sha256")):
            raise DemoError(f"sha256 mismatch: wrote {sha256(results)}, the emulator has {on_disk}")
        say("\nWhere the collected bytes are")
        say("on disk", blob)
        say("sha256", f"{on_disk[:16]}... ({len(results)} bytes, same as the browser wrote)")
    say(f"\nDemo passed in {time.monotonic() - started:.1f} s. The emulator is stopped; its data is kept in")
    say(f"{data_dir}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bctrl-demo-"))
    data_dir = work / "emulator-data"
    try:
        run(work, data_dir)
    except KeyboardInterrupt:
        print("\nDemo interrupted.", file=sys.stderr)
        return 130
    except DemoError as exc:
        print(f"\nDemo FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # The provider's own errors explain themselves; anything else gets its traceback.
        if not type(exc).__module__.startswith("airflow_provider_bctrl"):
            traceback.print_exc()
        print(f"\nDemo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        # Airflow's scratch home is not interesting after the run; the emulator's data is.
        shutil.rmtree(work / "airflow-home", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
