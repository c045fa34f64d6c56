"""Bounded waiting for local servers and processes: a free port, one poll loop, Airflow's health check.

The emulator, its client, the test deployments (``tests/e2e/_standalone.py``) and the Celery stack
(``scripts/celery_stack.py``) all wait for something to come up; they share this loop, so every wait
is bounded in tries and in time the same way; the deployments also wait here for what they started to
be gone. Standard library only: the client imports it.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: The parts of Airflow's ``/api/v2/monitor/health`` a deployment needs before it can run a DAG.
AIRFLOW_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def poll(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.5,
    context: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None, at most ``timeout`` seconds.

    ``probe`` may raise to give up early (a process that died). On timeout: ``TimeoutError`` naming
    ``what``, followed by ``context()`` when given (log tails, states).
    """
    deadline = time.monotonic() + timeout
    for _ in range(max(1, int(timeout / interval) + 1)):
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"Timed out after {timeout:g} s waiting for {what}."
    raise TimeoutError(f"{message}\n{context()}" if context is not None else message)


def airflow_healthy(api_url: str, parts: tuple[str, ...] = AIRFLOW_PARTS) -> bool:
    """Whether the Airflow API server at ``api_url`` reports every one of ``parts`` healthy."""
    try:
        with _NO_PROXY.open(f"{api_url}/api/v2/monitor/health", timeout=5) as response:
            health = json.loads(response.read())
    except (OSError, ValueError):  # refused, HTTP error, timeout, not JSON
        return False
    return all((health.get(part) or {}).get("status") == "healthy" for part in parts)


def session_members(leader: int) -> list[str]:
    """Live (not zombie) processes that ``leader`` started, as ``"pid state command"`` lines (Linux /proc).

    A process started with ``start_new_session`` leads a session and a process group. Its descendants
    keep the session even when they move to a process group of their own (as Airflow's task supervisor
    puts every task process), so a process counts when its group or its session is ``leader``'s.
    """
    members = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue
        # Fields after the command (which may hold spaces): state, ppid, pgrp, session, ...
        command, _, rest = stat.rpartition(")")
        fields = rest.split()
        if len(fields) > 3 and leader in (int(fields[2]), int(fields[3])) and fields[0] != "Z":
            members.append(f"{stat_path.parent.name} {fields[0]} {command.partition('(')[2]}")
    return members


def wait_gone(leader: int, timeout: float) -> bool:
    """Wait until nothing ``leader`` started is alive, at most ``timeout`` seconds; whether it is so."""
    try:
        poll(
            "processes to exit",
            lambda: True if not session_members(leader) else None,
            timeout=timeout,
            interval=0.1,
        )
    except TimeoutError:
        return False
    return True
