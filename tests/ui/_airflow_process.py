"""Run real Airflow commands for the browser tests: one-off commands and the api-server, bounded waits.

The api-server runs in a process group of its own (``tests/_process_group.py``), so that stopping it
also stops the workers it forked.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from _airflow_env import AIRFLOW_BIN, airflow_env
from _process_group import log_tail, start_group, stop_group

from airflow_provider_bctrl.testing._wait import free_port


def run_airflow(args: list[str], env: dict[str, str], *, timeout: float = 180) -> str:
    """Run one ``airflow`` command to completion; its output, or AssertionError with the output."""
    result = subprocess.run(
        [AIRFLOW_BIN, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"airflow {' '.join(args)} exited {result.returncode}:\n{output[-4000:]}"
    return output


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
        home / "dags",
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
