"""Run real Airflow commands for the browser tests: isolated home, own process group, bounded waits.

Every process is started in a new session (its own process group) so that stopping it also stops
the workers it forked; stopping is SIGTERM to the group, a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

#: The ``airflow`` console script of the interpreter running the tests (the project's venv).
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def airflow_env(home: Path, **settings: str) -> dict[str, str]:
    """An environment for an Airflow process with its own home and SQLite database.

    The test session's ``AIRFLOW__*`` settings and ``AIRFLOW_CONN_*`` connections are dropped, so the
    child sees only what the test gives it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def run_airflow(args: list[str], env: dict[str, str], *, timeout: float = 180) -> str:
    """Run one ``airflow`` command to completion; its output, or AssertionError with the output."""
    result = subprocess.run(
        [AIRFLOW_BIN, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"airflow {' '.join(args)} exited {result.returncode}:\n{output[-4000:]}"
    return output


def start_group(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a long-running command in its own process group, output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_tail(log_path: Path, chars: int = 6000) -> str:
    """The end of a process log, for failure messages."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {log_path}: {exc})"
    return f"--- {log_path.name} (last {chars} chars) ---\n{text[-chars:]}"


def wait_for_http(
    url: str, process: subprocess.Popen[bytes], log_path: Path, *, timeout: float, interval: float = 0.5
) -> float:
    """Poll ``url`` until it answers 200; seconds waited. Fails early if the process exits."""
    started = time.monotonic()
    last = "no answer yet"
    for _ in range(int(timeout / interval) + 1):
        if process.poll() is not None:
            raise AssertionError(
                f"The process exited with code {process.returncode} before {url} answered.\n{log_tail(log_path)}"
            )
        try:
            response = requests.get(url, timeout=(1.0, 5.0))
            if response.status_code == 200:
                return time.monotonic() - started
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        if time.monotonic() - started > timeout:
            break
        time.sleep(interval)
    raise AssertionError(
        f"{url} did not answer 200 within {timeout:g} s (last: {last}).\n{log_tail(log_path)}"
    )


def stop_group(process: subprocess.Popen[bytes], *, grace: float = 20.0) -> None:
    """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # Also reap workers that outlived their leader.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


@contextlib.contextmanager
def running_api_server(
    home: Path, log_path: Path, *, start_timeout: float, migrate_timeout: float = 180, **settings: str
) -> Iterator[tuple[str, float]]:
    """``airflow api-server`` on a free loopback port, with its own home, database and empty DAGs folder.

    All-admins auth (no login), ``settings`` added to its environment; its database migrated first.
    Yields its base URL and the seconds it took to answer its health check; it is stopped whatever
    happens.
    """
    (home / "dags").mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = airflow_env(
        home,
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API__BASE_URL=url,
        **settings,
    )
    run_airflow(["db", "migrate"], env, timeout=migrate_timeout)
    process = start_group(
        [AIRFLOW_BIN, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env,
        log_path,
    )
    try:
        waited = wait_for_http(f"{url}/api/v2/monitor/health", process, log_path, timeout=start_timeout)
        yield url, waited
    finally:
        stop_group(process)
