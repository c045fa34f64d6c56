"""`make demo`: one upload and one collect against a local BCTRL emulator, no account needed.

1. start the emulator in a child process (temporary data directory, a demo API key);
2. create a runtime and upload a small CSV report into it with ``BctrlHook.upload_file``;
3. pretend the browser wrote ``/tmp/runtime/output/results.json`` in the runtime;
4. collect that file into durable space storage with ``BctrlHook.collect_file``, as a run artifact;
5. print the ids, check the collected bytes on the emulator's disk, and stop the emulator.

The emulator's data directory is kept so the printed paths can be inspected afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
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
UPLOAD_RUNTIME_PATH = "inputs/report.csv"


class DemoError(Exception):
    """A step of the demo did not do what it should."""


def say(label: str, value: object = None) -> None:
    """One output line: ``label`` alone, or an aligned ``label  value`` pair."""
    print(label if value is None else f"  {label:<18} {value}", flush=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_report(path: Path) -> bytes:
    """A small CSV report, as a pipeline task would produce it."""
    rows = [
        ("date", "region", "orders", "revenue_eur"),
        ("2026-01-01", "north", "128", "4310.50"),
        ("2026-01-01", "south", "97", "3120.00"),
        ("2026-01-01", "west", "143", "5012.75"),
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    data = buffer.getvalue().encode()
    path.write_bytes(data)
    return data


def find_blob(data_dir: Path, record: dict[str, Any]) -> Path:
    """Where the emulator keeps a durable file's bytes (``spaces/<space>/blobs/<file id>``)."""
    expected = data_dir / "spaces" / str(record["spaceId"]) / "blobs" / str(record["id"])
    if expected.is_file():
        return expected
    matches = [p for p in data_dir.rglob(str(record["id"])) if p.is_file()]
    if len(matches) != 1:
        raise DemoError(f"cannot find the bytes of stored file {record['id']} under {data_dir}")
    return matches[0]


def run(work: Path, data_dir: Path) -> None:
    # The connection and Airflow's home must be in the environment before Airflow is imported.
    os.environ["AIRFLOW_HOME"] = str(work / "airflow-home")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # The hook logs every call at INFO (useful in task logs); the demo prints its own summary.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    from airflow_provider_bctrl.testing.emulator import BctrlEmulator

    say("BCTRL provider demo: upload a file into a runtime, collect one back\n")
    started = time.monotonic()
    with BctrlEmulator(api_key=DEMO_API_KEY, data_dir=data_dir, in_process=False) as emulator:
        os.environ["AIRFLOW_CONN_BCTRL_DEFAULT"] = emulator.airflow_connection_json()
        from airflow_provider_bctrl.hooks.bctrl import BctrlHook

        say("emulator", f"{emulator.url} (pid {emulator.pid})")
        say("space id", emulator.space_id)
        runtime_id = emulator.create_runtime()
        say("runtime id", runtime_id)

        report = work / "daily_report.csv"
        report_bytes = write_report(report)
        with BctrlHook() as hook:
            staged = hook.upload_file(runtime_id, report, runtime_path=UPLOAD_RUNTIME_PATH)
            say("uploaded file id", staged.id)
            say("runtime path", staged.runtime_path)
            in_runtime = emulator.read_runtime_file(runtime_id, staged.runtime_path or UPLOAD_RUNTIME_PATH)
            if in_runtime != report_bytes:
                raise DemoError("the runtime's copy of the upload differs from the local report")

            results = json.dumps(
                {"status": "ok", "rows_checked": 3, "source": staged.runtime_path}, indent=2
            ).encode()
            emulator.write_runtime_file(runtime_id, RUNTIME_OUTPUT, results)
            collected = hook.collect_file(
                runtime_id, RUNTIME_OUTPUT, artifact={"kind": "report", "name": "results"}
            )
        say("collected file id", collected.file.id)
        say("artifact id", collected.artifact.id if collected.artifact else "(none)")
        if collected.artifact is None:
            raise DemoError("collect was asked for an artifact but the response has none")

        records = {record["id"]: record for record in emulator.stored_files()}
        record = records.get(collected.file.id)
        if record is None:
            raise DemoError(f"the emulator does not list collected file {collected.file.id}")
        blob = find_blob(data_dir, record)
        on_disk = sha256(blob.read_bytes())
        if not (on_disk == sha256(results) == record.get("sha256")):
            raise DemoError(f"sha256 mismatch: wrote {sha256(results)}, the emulator has {on_disk}")
        say("collected bytes", blob)
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
        (work / "daily_report.csv").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
