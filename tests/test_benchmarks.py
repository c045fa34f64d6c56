"""The benchmark scripts still run and measure what they claim: tiny sizes, one round, no timing asserted.

The figures themselves belong in docs/performance.md (``make bench``); these tests only keep the
scripts from rotting: every client uploads, the sink sees a body of the right size and exactly the
uploads a sample claims (the scripts check both themselves and fail otherwise), and the results have
the shape the report reads.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
MIB = 1024 * 1024

pytestmark = pytest.mark.slow


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_upload_benchmark_runs_every_python_client(tmp_path: Path) -> None:
    # `make system-deps` (part of `make test`) installs curl, the reference client.
    clients = ["hook", "curl", "hook-warm", "requests"]
    out = tmp_path / "upload.json"
    result = _run(
        "upload.py", "--sizes", "1M,3M", "--rounds", "1", "--clients", ",".join(clients), "--json", str(out)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    rows = {(row["size"], row["client"]): row for row in report["summary"]}
    assert set(rows) == {(size, client) for size in (MIB, 3 * MIB) for client in clients}
    assert all(row["seconds"] > 0 and row["peak_rss_mib"] > 0 for row in rows.values())
    assert "PASS: hook peak RSS growth 1 MiB -> 3 MiB" in result.stdout


def test_upload_benchmark_over_tls_verifies_a_throwaway_certificate(tmp_path: Path) -> None:
    out = tmp_path / "upload-tls.json"
    clients = "hook,curl,requests"
    result = _run(
        "upload.py", "--tls", "--sizes", "1M", "--rounds", "1", "--clients", clients, "--json", str(out)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "over https" in result.stdout
    report = json.loads(out.read_text())
    assert report["tls"] is True
    assert {row["client"] for row in report["summary"]} == {"hook", "curl", "requests"}


def test_body_strategies_benchmark_compares_every_body(tmp_path: Path) -> None:
    result = _run("body_strategies.py", "--size", "2M", "--rounds", "1", "--chunks", "64,1024")
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("multipart body strategies", 1)[1]
    for name in ("toolbelt", "toolbelt-64k", "stream-64k", "stream-1024k"):
        assert f"\n{name} " in table


def test_production_benchmark_runs_every_workload_over_tls(tmp_path: Path) -> None:
    # node (the native TLS server) and curl; tiny sizes, so no ratio is judged (--quick), only bytes.
    out = tmp_path / "production.json"
    result = _run(
        "production.py", "--quick", "--sizes", "256K,1M", "--rounds", "1", "--small-count", "5",
        "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "production path: https on a native server (Node v" in result.stdout
    report = json.loads(out.read_text())
    rows = {(row["workload"], row["label"], row["client"]): row for row in report["summary"]}
    expected = {
        (w, label, c)
        for w in ("upload", "download")
        for label in ("256 KiB", "1 MiB")
        for c in ("hook", "curl")
    }
    expected |= {("small", "all", client) for client in ("hook", "curl", "requests")}
    assert set(rows) == expected
    # Every sample was checked against the server's counters; curl's small uploads shared one connection.
    assert rows[("small", "all", "curl")]["connections"] == 1
    assert all(row["seconds"] > 0 and row["peak_rss_mib"] > 0 for row in rows.values())
    assert report["tmpfs"] == "/dev/shm"
    for target in (
        "upload 256 KiB (first in a process",
        "download 1 MiB (curl + fsync, tmpfs)",
        "5 uploads of 64 KiB",
    ):
        assert f"INFO: {target}" in result.stdout  # ratios at tiny sizes inform only
    assert "PASS: download hook peak RSS growth 256 KiB -> 1 MiB" in result.stdout


def test_production_server_refuses_a_broken_multipart_body(tmp_path: Path) -> None:
    # The native server checks each upload's framing, so a client that sends the wrong bytes fails the
    # benchmark instead of looking fast.
    sys.path.insert(0, str(BENCH))
    from _certificate import loopback_certificate
    from _common import get_json, server_process

    cert, key = loopback_certificate(tmp_path)
    command = [
        "node",
        str(BENCH / "tls_server.js"),
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--files-dir",
        str(tmp_path),
    ]
    ready = re.compile(r"listening on (?P<url>https://\S+)")
    with server_process(command, ready, timeout=60) as (_, match):
        url = match.group("url")
        curl = [
            "curl", "-sS", "--noproxy", "*", "--cacert", str(cert), "-o", "/dev/null", "-w", "%{http_code}",
            "-H", "Authorization: Bearer x", "-H", "Content-Type: multipart/form-data; boundary=abc",
            "--data-binary", "not a multipart body", f"{url}/v1/runtimes/rt/files/upload",
        ]  # fmt: skip
        answer = subprocess.run(curl, capture_output=True, text=True, timeout=60, check=False)
        stats = get_json(f"{url}/_bench/stats", cafile=cert)
    assert answer.stdout == "400", answer.stderr
    assert stats["badUploads"] == 1
    assert "does not open with the boundary" in stats["lastBadUpload"]
