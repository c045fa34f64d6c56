"""Where the hook's fixed cost per call goes: many small uploads on one hook over TLS, sampled by py-spy.

The production path's small-files workload (``production.py``) shows the hook's per-call cost next to
curl's and plain requests'. This script says what that cost is made of. On the same native TLS server:

1. the hook and plain requests (a prebuilt body on one session) each make ``--count`` uploads of a
   ``--size`` file in a fresh process, ``--rounds`` times, unprofiled: the real wall and CPU ms per call;
2. two more hook processes make ``--samples-count`` uploads each under ``py-spy record`` (a sampling
   profiler: no tracing overhead per Python call), once with ``--idle`` (waits sampled too: wall time)
   and once without (CPU time); each stack sample inside ``upload_file`` goes to the stage (logging,
   TLS send, waiting for the answer, framing, JSON, models, ...) of its innermost frame that belongs to
   one, and each stage's share of the samples times the unprofiled ms per call gives its ms per call.

py-spy is a developer tool, not a dependency: ``.venv/bin/pip install py-spy``. Usage::

    python benchmarks/profile_calls.py [--count 100] [--size 64K] [--rounds 3] [--samples-count 1000]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    PYTHON,
    machine,
    make_file,
    median,
    parse_size,
    print_machine,
    run_child,
    size_label,
    temp_dir,
    warm,
)
from production import Bench, native_server

#: Stages, tried in order against each frame from the innermost outwards; the first frame that matches
#: a stage takes the sample. A frame is py-spy's ``function (file:line)``.
STAGES: tuple[tuple[str, str], ...] = (
    (
        "TLS handshake and connect (first call only)",
        r"do_handshake|wrap_socket|create_connection|load_verify_locations",
    ),
    (
        "logging: structlog renders and writes each line",
        r"\((structlog/|logging/__init__\.py|airflow/_shared/logging|airflow/sdk/log)",
    ),
    ("sending: TLS encryption and socket writes", r"^SSLSocket\.(send|sendall|write) \("),
    (
        "waiting for the answer and reading it (server time included)",
        r"^SSLSocket\.(read|recv|recv_into) \(|\((socket\.py|http/client\.py|email/|urllib3/response\.py)",
    ),
    ("response JSON parsing", r"\(json/|^Response\.json \("),
    ("model building (from_api, timestamps)", r"\((airflow_provider_bctrl/models\.py|pendulum/)"),
    (
        "multipart: toolbelt framing and the file's bytes",
        r"\((requests_toolbelt/|airflow_provider_bctrl/_multipart\.py|urllib3/fields\.py)",
    ),
    ("progress and the summary line's text", r"\(airflow_provider_bctrl/_progress\.py"),
    ("the source: resolve, check, stat, open", r"\(airflow_provider_bctrl/(_storage|_validation)\.py"),
    ("content type", r"mimetypes|guess_content_type"),
    ("requests: preparing the request, session, adapter", r"\(requests/"),
    ("urllib3: pool, connection, request line and headers", r"\(urllib3/"),
    ("the hook's own code (request path, settings, auth, errors)", r"\(airflow_provider_bctrl/"),
)
OTHER = "other (interpreter, garbage collection, unattributed)"


def stage_of(frames: list[str]) -> str:
    """The stage a sample belongs to: the first stage that matches a frame, innermost frame first."""
    compiled = [(name, re.compile(pattern)) for name, pattern in STAGES]
    for frame in reversed(frames):
        for name, pattern in compiled:
            if pattern.search(frame):
                return name
    return OTHER


def attribute(
    raw: str, entry: str = "upload_file"
) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Stage counts, leaf-function counts and the total of the samples taken inside ``entry``."""
    stages: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        inside = [i for i, frame in enumerate(frames) if frame.split(" (", 1)[0].endswith(entry)]
        if not inside:
            continue
        count = int(count_text)
        frames = frames[inside[0] :]
        total += count
        stages[stage_of(frames)] += count
        leaves[frames[-1]] += count
    return stages, leaves, total


def profile(py_spy: str, bench: Bench, source: Path, count: int, rate: int, *, idle: bool) -> str:
    """py-spy's raw stacks of one hook process making ``count`` uploads (``idle``: waits sampled too)."""
    out = bench.work / f"py-spy-{'wall' if idle else 'cpu'}.txt"
    command = [
        py_spy, "record", *(["--idle"] if idle else []), "--nonblocking", "--rate", str(rate), "--format", "raw",
        "-o", str(out), "--", PYTHON, str(BENCH_DIR / "_production_client.py"), "small", str(source), str(count),
    ]  # fmt: skip
    result = run_child(command, env=bench.env)
    if result.returncode != 0 or not out.exists():
        raise SystemExit(f"py-spy failed ({result.returncode}): {result.stderr[-2000:]}")
    return out.read_text()


def breakdown(raw: str, ms_per_call: float, what: str, count: int, top: int) -> dict[str, Any]:
    """Print the stages of one profile, scaled to ``ms_per_call``; return them."""
    stages, leaves, total = attribute(raw)
    if total == 0:
        raise SystemExit("py-spy took no samples inside upload_file")
    print(
        f"\nwhere the hook's {ms_per_call:.2f} ms of {what} per upload go: py-spy, {total} samples inside "
        f"upload_file over {count} uploads; a stage's ms = its share of the samples x the unprofiled ms"
    )
    rows = []
    for name, samples in stages.most_common():
        share = samples / total
        rows.append({"stage": name, "samples": samples, "share": share, "ms_per_call": share * ms_per_call})
        print(f"  {share * 100:5.1f} %  {share * ms_per_call:6.3f} ms  {name}")
    print(f"the {top} leaf functions with the most samples (innermost Python frame):")
    for frame, samples in leaves.most_common(top):
        print(f"  {samples / total * 100:5.1f} %  {frame}")
    return {"samples": total, "stages": rows, "leaves": leaves.most_common(50)}


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100, help="uploads per unprofiled sample (default 100)")
    parser.add_argument("--size", default="64K", help="the file's size (default 64K)")
    parser.add_argument("--rounds", type=int, default=3, help="unprofiled samples per client (default 3)")
    parser.add_argument("--samples-count", type=int, default=1000, help="uploads in each profiled process")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second (default 1000)")
    parser.add_argument("--top", type=int, default=12, help="leaf functions to list (default 12)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    beside = Path(PYTHON).parent / "py-spy"
    py_spy = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
    if py_spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    size = parse_size(args.size)
    info = machine()
    print_machine(info)
    with temp_dir("bctrl-bench-profile-") as work, native_server(work) as (url, cert, files):
        bench = Bench(url, cert, work, work, verbose=False)
        source = make_file(files, size)
        warm(source.path)
        per_call: dict[str, dict[str, float]] = {}
        for client in ("hook", "requests", "curl"):
            runs = [bench.small(client, source.path, size, args.count) for _ in range(args.rounds)]
            per_call[client] = {
                "wall_ms": median([r["seconds"] for r in runs]) / args.count * 1000,
                "cpu_ms": median([r["cpu_seconds"] for r in runs]) / args.count * 1000,
            }
        wall = profile(py_spy, bench, source.path, args.samples_count, args.rate, idle=True)
        cpu = profile(py_spy, bench, source.path, args.samples_count, args.rate, idle=False)
    print(
        f"\n{args.count} uploads of {size_label(size)} over TLS on one connection, median of {args.rounds} "
        "processes each (unprofiled):"
    )
    for client, figures in per_call.items():
        note = " (the whole process, start-up included)" if client == "curl" else ""
        print(
            f"  {client:<9} {figures['wall_ms']:6.2f} ms wall, {figures['cpu_ms']:6.2f} ms CPU per upload{note}"
        )
    results = {
        "wall": breakdown(wall, per_call["hook"]["wall_ms"], "wall time", args.samples_count, args.top),
        "cpu": breakdown(cpu, per_call["hook"]["cpu_ms"], "CPU time", args.samples_count, args.top),
    }
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "per_call": per_call, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
