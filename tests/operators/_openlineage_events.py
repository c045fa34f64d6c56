"""Run a DAG file with ``dag.test()`` in a fresh Airflow whose OpenLineage listener writes to a file.

In a subprocess because Airflow decides once per process whether anyone reads lineage (the
OpenLineage provider registers its listener and hook-lineage reader only when a transport is
configured, and the rest of the suite runs without one).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from _airflow_env import airflow_env as isolated_airflow_env

from airflow_provider_bctrl.testing.emulator import BctrlEmulator


def airflow_env(home: Path, dags: Path, events: Path, emu: BctrlEmulator) -> dict[str, str]:
    """An isolated Airflow (``_airflow_env``) without OpenLineage's own variables, whose OpenLineage
    file transport writes to ``events``, with the emulator as ``bctrl_default``."""
    return isolated_airflow_env(
        home,
        dags,
        drop=("OPENLINEAGE",),
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        AIRFLOW__OPENLINEAGE__NAMESPACE="bctrl-tests",
        AIRFLOW_CONN_BCTRL_DEFAULT=emu.airflow_connection_json(),
        PYTHONDONTWRITEBYTECODE="1",
    )


def run_checked(args: list[str], env: dict[str, str], cwd: Path) -> None:
    """Run a command (bounded to 300 s); a non-zero exit fails with the end of its output."""
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (
        f"{args}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )


def complete_event(events: Path, job_suffix: str) -> dict[str, Any]:
    """The last COMPLETE event of the job whose name ends with ``job_suffix`` (``<dag_id>.<task_id>``)."""
    assert events.exists(), "OpenLineage wrote no events"
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    found = [
        e
        for e in lines
        if e.get("eventType") == "COMPLETE" and e.get("job", {}).get("name", "").endswith(job_suffix)
    ]
    assert found, [(e.get("eventType"), e.get("job", {}).get("name")) for e in lines]
    return found[-1]
