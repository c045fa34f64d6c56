"""A real Airflow deployment for the tests: ``airflow standalone`` in its own process group.

``airflow standalone`` runs the scheduler (LocalExecutor), the dag-processor, the triggerer and the
api-server as child processes. It is started with its own home and SQLite database, on a loopback
port, with all-admins auth; it is stopped with SIGTERM to its whole process group (SIGINT is ignored
when it runs in the background), then SIGKILL after a bounded wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from _airflow_env import AIRFLOW_BIN, airflow_env
from _process_group import log_tail, start_group, stop_group

from airflow_provider_bctrl.testing._wait import airflow_healthy, free_port, poll

#: How long the deployment may take to answer, and to stop, on 2 busy cores.
START_TIMEOUT = 120.0
STOP_GRACE = 30.0
#: How long the first parse of a DAG may take after the deployment is healthy.
DAG_PARSE_TIMEOUT = 90.0
#: The emulator's key in the shared deployment (tests grep the deployment's logs for it).
STANDALONE_KEY = "bctrl_standalone_Gg8secretNn36"


@dataclass
class Standalone:
    """A running ``airflow standalone`` and a REST client for its ``/api/v2``."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    def log_tail(self, chars: int = 8000) -> str:
        """The end of the deployment's combined output, for failure messages."""
        return log_tail(self.log_path, chars, "airflow standalone output")

    def api(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """Call ``/api/v2<path>``; the decoded JSON, or AssertionError naming the status and body."""
        response = self.session.request(method, f"{self.url}/api/v2{path}", timeout=(5, 60), **kwargs)
        assert response.status_code in expect, (
            f"{method} /api/v2{path} answered {response.status_code}: {response.text[:2000]}"
        )
        return response.json() if response.content else None

    def authenticate(self) -> None:
        """Get a JWT from the simple auth manager (all-admins mode hands one out without credentials)."""
        response = self.session.get(f"{self.url}/auth/token", timeout=(5, 30))
        assert response.status_code == 201, (
            f"GET /auth/token answered {response.status_code}: {response.text}"
        )
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def wait_for_dag(self, dag_id: str, timeout: float = DAG_PARSE_TIMEOUT) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; its ``/dags/<id>`` record."""

        def loaded() -> dict[str, Any] | None:
            response = self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=(5, 30))
            return response.json() if response.status_code == 200 else None

        def import_errors() -> str:
            errors = self.api("GET", "/importErrors")
            return json.dumps(errors, indent=1)[:4000] + "\n" + self.log_tail()

        return poll(
            f"DAG {dag_id} to be parsed", loaded, timeout=timeout, interval=1.0, context=import_errors
        )

    def trigger(self, dag_id: str, **body: Any) -> str:
        """Unpause ``dag_id`` (new DAGs start paused) and trigger a run with ``body``; its run id."""
        assert self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})["is_paused"] is False
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """``{task_id: state}`` of a run."""
        tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def wait_for_run(
        self, dag_id: str, run_id: str, *, timeout: float, on_poll: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Wait until a run is ``success`` or ``failed``; its record. ``on_poll`` runs before each look."""

        def finished() -> dict[str, Any] | None:
            if on_poll is not None:
                on_poll()
            current = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return current if current["state"] in ("success", "failed") else None

        def states() -> str:
            return f"task states: {self.task_states(dag_id, run_id)}\n{self.log_tail()}"

        started = time.monotonic()
        final = poll(f"run {run_id} to finish", finished, timeout=timeout, interval=1.0, context=states)
        print(
            f"run {run_id} finished ({final['state']}) {time.monotonic() - started:.1f} s after the trigger"
        )
        return final


def standalone_env(home: Path, port: int, dags_folder: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of the deployment: isolated home, loopback API, LocalExecutor, 4 task slots."""
    env = airflow_env(
        home,
        dags_folder,
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        # Without this LocalExecutor starts 32 idle workers.
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__WORKERS="1",
        # Tasks reach the execution API through this; the default (port 8080) refuses every task.
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        # Only runs the test triggers: unpausing a @daily DAG must not add a scheduled run.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        NO_COLOR="1",
    )
    # standalone starts its components as `airflow ...` from PATH: make that this venv's airflow.
    env["PATH"] = os.pathsep.join([str(Path(AIRFLOW_BIN).parent), env.get("PATH", "")])
    env.update(extra)
    return env


@contextlib.contextmanager
def run_standalone(home: Path, dags_folder: Path, extra_env: Mapping[str, str]) -> Iterator[Standalone]:
    """Start ``airflow standalone``, wait until its API is healthy, and always stop its process group."""
    port = free_port()
    env = standalone_env(home, port, dags_folder, extra_env)
    log_path = home / "standalone.log"
    process = start_group([AIRFLOW_BIN, "standalone"], env, log_path)
    deployment = Standalone(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:

        def healthy() -> bool | None:
            if process.poll() is not None:
                raise AssertionError(
                    f"airflow standalone exited with code {process.returncode}.\n{deployment.log_tail()}"
                )
            # standalone keeps running when a component fails to start; do not wait out the timeout.
            if "Exception in thread" in log_path.read_text(encoding="utf-8", errors="replace"):
                raise AssertionError(
                    f"An airflow standalone component failed to start.\n{deployment.log_tail()}"
                )
            return True if airflow_healthy(deployment.url) else None

        started = time.monotonic()
        poll("a healthy deployment", healthy, timeout=START_TIMEOUT, context=deployment.log_tail)
        print(f"airflow standalone healthy after {time.monotonic() - started:.1f} s")
        deployment.authenticate()
        yield deployment
    finally:
        stopping = time.monotonic()
        stop_group(process, grace=STOP_GRACE)
        print(
            f"airflow standalone stopped in {time.monotonic() - stopping:.1f} s (exit code {process.returncode})"
        )
        deployment.session.close()
