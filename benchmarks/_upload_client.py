"""One upload in a fresh process, so its peak RSS is its own: ``_upload_client.py CLIENT URL PATH``.

``CLIENT`` is ``hook`` (``BctrlHook.upload_file``; the connection comes from
``AIRFLOW_CONN_BCTRL_DEFAULT``), ``hook-warm`` (the second upload on one hook) or ``requests`` (plain ``requests.post(files=...)``, the naive way).
Imports, the connection lookup and the session set-up happen before the clock starts; the timed
part is the upload call, connect included, up to the parsed response. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from _client import Clock, new_hook, peak_rss_mib


def upload_with_hook(url: str, path: Path) -> tuple[Clock, int | None]:
    """Time ``BctrlHook.upload_file``; return the clock and the size the server reported."""
    hook = new_hook()
    with Clock() as clock:
        staged = hook.upload_file("rt_bench", path, runtime_path="bench/" + path.name)
    return clock, staged.size_bytes


def upload_with_warm_hook(url: str, path: Path) -> tuple[Clock, int | None]:
    """Time a second ``upload_file`` on the same hook: the per-process first-use costs already paid.

    The first upload in a process also pays one-time costs (the ``mimetypes`` database, the first
    request through requests/urllib3, the first log lines, a garbage collection of everything Airflow
    imported); this shows what is left per call once they are paid, over the reused connection.
    """
    hook = new_hook()
    hook.upload_file("rt_bench", path, runtime_path="bench/warm-up-" + path.name)
    with Clock() as clock:
        staged = hook.upload_file("rt_bench", path, runtime_path="bench/" + path.name)
    return clock, staged.size_bytes


def upload_with_requests(url: str, path: Path) -> tuple[Clock, int | None]:
    """Time ``requests.post(files=...)`` as most code writes it (it builds the whole body in memory)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or True  # the TLS run's test certificate
    with Clock() as clock, path.open("rb") as source:
        response = session.post(
            f"{url}/v1/runtimes/rt_bench/files/upload",
            files={"file": (path.name, source, "application/octet-stream")},
            data={"runtimePath": "bench/" + path.name},
            headers={"Authorization": "Bearer bctrl_bench"},
            timeout=600,
        )
        response.raise_for_status()
        size = response.json().get("sizeBytes")
    return clock, size


def main(argv: list[str]) -> int:
    """Run one upload and print its seconds, CPU seconds, peak RSS before and after as JSON."""
    client, url, path = argv[1], argv[2], Path(argv[3])
    upload = {
        "hook": upload_with_hook,
        "hook-warm": upload_with_warm_hook,
        "requests": upload_with_requests,
    }[client]
    # Import what the client needs before the baseline so "before" is the idle process.
    if client.startswith("hook"):
        import airflow_provider_bctrl.hooks.bctrl  # noqa: F401
    else:
        import requests  # noqa: F401
    before = peak_rss_mib()
    clock, server_bytes = upload(url, path)
    report = {
        "seconds": clock.seconds,
        "cpu_seconds": clock.cpu_seconds,
        "server_bytes": server_bytes,
        "peak_before_mib": before,
        "peak_after_mib": peak_rss_mib(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
