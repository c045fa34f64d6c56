"""What the benchmarks' client processes share: the clock of the timed part, peak RSS, a hook made ready.

Imported by ``_upload_client.py`` and ``_production_client.py`` (each runs as a fresh process, with
this folder first on ``sys.path``); it imports nothing but the standard library until a hook is made,
so it adds nothing to a client's peak RSS.
"""

from __future__ import annotations

import resource
import time
from typing import Any


def cpu_seconds() -> float:
    """This process's user and system CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """This process's peak RSS so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Wall and CPU seconds of the timed part only: ``with Clock() as clock: ...``."""

    def __enter__(self) -> Clock:
        self.seconds = self.cpu_seconds = 0.0
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = cpu_seconds() - self._cpu


def new_hook() -> Any:
    """A hook with no automatic retries (a retried sample would be two), its connection looked up.

    The connection comes from ``AIRFLOW_CONN_BCTRL_DEFAULT``; the lookup and the session set-up happen
    here, outside the timed part, and send no request.
    """
    from airflow_provider_bctrl.hooks.bctrl import BctrlHook

    hook = BctrlHook(max_retries=0, timeout=600)
    hook.get_conn()
    return hook
