"""One production-path sample in a fresh process: ``_production_client.py WORKLOAD ARGS...``.

Workloads (the connection comes from ``AIRFLOW_CONN_BCTRL_DEFAULT``, the test certificate from
``REQUESTS_CA_BUNDLE``; see ``production.py``):

- ``upload PATH``: one ``BctrlHook.upload_file``, the first request of the process (TLS handshake included);
- ``download FILE_ID DEST``: one ``BctrlHook.download_file`` into ``DEST`` (a file path or a directory);
- ``small PATH COUNT``: ``COUNT`` ``upload_file`` calls on one hook, timed together;
- ``small-requests URL PATH COUNT``: plain requests posting one prebuilt multipart body ``COUNT`` times
  on one session (the reference: what a caller pays with nothing but requests).

Imports and the hook's connection lookup happen before the clock starts; the timed part runs from the
first call to the last parsed response (the hook's download includes its fsync). Only the public hook
API is used, so the script keeps working while the hook's internals change. Prints one JSON line:
seconds, CPU seconds and what the server answered, for the harness to check.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from _client import Clock, new_hook, peak_rss_mib


def upload(path: Path) -> dict[str, Any]:
    """Time the process's first ``upload_file``."""
    hook = new_hook()
    with Clock() as clock:
        staged = hook.upload_file("rt_bench", path, runtime_path="bench/" + path.name)
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "server_sizes": [staged.size_bytes]}


def download(file_id: str, destination: Path) -> dict[str, Any]:
    """Time the process's first ``download_file``; report where the bytes went."""
    hook = new_hook()
    with Clock() as clock:
        uri = hook.download_file(file_id, destination)
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "uri": uri}


def small(path: Path, count: int) -> dict[str, Any]:
    """Time ``count`` uploads of one small file on one hook (the first one pays the TLS handshake)."""
    hook = new_hook()
    sizes: list[int | None] = []
    with Clock() as clock:
        for index in range(count):
            staged = hook.upload_file("rt_bench", path, runtime_path=f"small/{index}-{path.name}")
            sizes.append(staged.size_bytes)
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "server_sizes": sizes}


def small_requests(url: str, path: Path, count: int) -> dict[str, Any]:
    """Time ``count`` posts of one prebuilt multipart body on one requests session."""
    import requests
    from requests_toolbelt import MultipartEncoder

    encoder = MultipartEncoder(
        fields={
            "runtimePath": "small/" + path.name,
            "file": (path.name, path.read_bytes(), "application/octet-stream"),
        }
    )
    body, content_type = encoder.to_string(), encoder.content_type
    session = requests.Session()  # requests' defaults (trust_env on), as the hook's session has them
    session.verify = os.environ["REQUESTS_CA_BUNDLE"]
    headers = {"Authorization": "Bearer bctrl_bench", "Content-Type": content_type}
    sizes: list[int | None] = []
    with Clock() as clock:
        for _ in range(count):
            response = session.post(
                f"{url}/v1/runtimes/rt_bench/files/upload", data=body, headers=headers, timeout=60
            )
            response.raise_for_status()
            sizes.append(response.json().get("sizeBytes"))
    return {"seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds, "server_sizes": sizes}


def main(argv: list[str]) -> int:
    """Run one sample and print its JSON line."""
    workload, rest = argv[1], argv[2:]
    if workload == "upload":
        report = upload(Path(rest[0]))
    elif workload == "download":
        report = download(rest[0], Path(rest[1]))
    elif workload == "small":
        report = small(Path(rest[0]), int(rest[1]))
    elif workload == "small-requests":
        report = small_requests(rest[0], Path(rest[1]), int(rest[2]))
    else:
        raise SystemExit(f"unknown workload {workload!r}")
    report["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
