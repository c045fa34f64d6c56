"""Long-running commands the tests start in a process group of their own: started, logged, stopped whole.

Each one is started in a new session (its own process group), its output in a log file; stopping it
is SIGTERM to the group, a bounded wait, then SIGKILL to whatever it started that is still alive
(workers that outlived their leader, task processes in groups of their own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from airflow_provider_bctrl.testing._wait import session_members, wait_gone


def start_group(
    args: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``args`` (in ``cwd``) in a process group of its own, stdout and stderr into ``log_path`` (created anew)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(process: subprocess.Popen[bytes], *, grace: float = 20.0) -> None:
    """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL whatever is left of its session."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    wait_gone(pgid, max(0.0, deadline - time.monotonic()))
    # Children (task workers, api-server workers) may outlive the leader; what it started goes with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for member in session_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(member.split()[0]), signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    wait_gone(pgid, 10)


def log_tail(log_path: Path, chars: int = 6000, title: str | None = None) -> str:
    """The end of a process log under a header (``title``, default the file's name), for failure messages."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {log_path}: {exc})"
    return f"--- {title or log_path.name} (last {chars} chars) ---\n{text[-chars:]}"
