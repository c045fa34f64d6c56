"""Helpers shared by the benchmark scripts: test files, child processes with their peak RSS, medians."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
GIB = 1024 * MIB
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PYTHON = sys.executable
#: Default sizes of the upload and ingest benchmarks (the issue's 10 MiB, 256 MiB and 1 GiB).
DEFAULT_SIZES = (10 * MIB, 256 * MIB, GIB)
QUICK_SIZES = (MIB, 16 * MIB)


def parse_size(text: str) -> int:
    """``"10M"``, ``"256MiB"``, ``"1G"`` or a plain byte count → bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*", text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 10M, 256M, 1G)")
    unit = {"": 1, "k": 1024, "m": MIB, "g": GIB}[match.group(2).lower()]
    return int(match.group(1)) * unit


def size_label(size: int) -> str:
    """``1073741824`` → ``"1 GiB"``, ``10485760`` → ``"10 MiB"``, ``65536`` → ``"64 KiB"``."""
    if size >= GIB and size % GIB == 0:
        return f"{size // GIB} GiB"
    if size >= MIB and size % MIB == 0:
        return f"{size // MIB} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


@dataclass
class TestFile:
    """A benchmark input file on disk and its sha256."""

    path: Path
    size: int
    sha256: str


def make_file(directory: Path, size: int) -> TestFile:
    """Write ``size`` bytes of incompressible data (every MiB differs) and return it with its digest."""
    path = directory / f"bench-{size}.bin"
    block = bytearray(os.urandom(MIB))
    digest = hashlib.sha256()
    with path.open("wb") as out:
        written = 0
        index = 0
        while written < size:
            block[:8] = index.to_bytes(8, "little")
            piece = memoryview(block)[: min(MIB, size - written)]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
            index += 1
    return TestFile(path, size, digest.hexdigest())


def warm(path: Path) -> None:
    """Read the file once so every client then reads it from the page cache, not from the disk."""
    buffer = bytearray(4 * MIB)
    with path.open("rb", buffering=0) as source:
        while source.readinto(buffer):
            pass


@contextmanager
def temp_dir(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """A temporary directory (under ``parent``, default the system temp dir), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class ChildResult:
    """What a finished child process printed, and its own peak RSS and CPU time."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_mib: float
    cpu_seconds: float
    wall_seconds: float


def _gnu_time() -> str | None:
    """GNU time's path when it is installed (Debian: ``apt-get install time``)."""
    path = shutil.which("time")
    if not path:
        return None
    probe = subprocess.run([path, "-f", "%M", "true"], capture_output=True, text=True, check=False)
    return path if probe.returncode == 0 and probe.stderr.strip().isdigit() else None


GNU_TIME = _gnu_time()


def run_child(
    command: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 900
) -> ChildResult:
    """Run one process to completion and collect its own peak RSS (``ru_maxrss``) and CPU time.

    Linux carries the ``ru_maxrss`` of the process that called ``exec`` over to the new program,
    and a child forked from this Python process starts out as big as this process. So the child is
    started through GNU time, a small C program that forks it and reports that child's rusage; the
    figure is then the client's own (curl: about 11 MiB, where a fork from Python would show ~27).
    Without GNU time the kernel's figure from ``wait4`` is used: an upper bound, said in the output.
    """
    with tempfile.TemporaryDirectory(prefix="bctrl-bench-child-") as scratch:
        usage_file = Path(scratch) / "usage"
        full = [GNU_TIME, "-f", "%M %U %S", "-o", str(usage_file), *command] if GNU_TIME else list(command)
        with open(Path(scratch) / "out", "w+b") as out, open(Path(scratch) / "err", "w+b") as err:
            started = time.perf_counter()
            process = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    process.kill()
                    pid, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.002)
            wall = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode("utf-8", "replace")
            stderr = err.read().decode("utf-8", "replace")
        peak_kib, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        if GNU_TIME and usage_file.exists():
            # "Command exited with non-zero status N" may precede the figures.
            fields = usage_file.read_text().split()[-3:]
            peak_kib, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
        return ChildResult(process.returncode, stdout, stderr, peak_kib / 1024, cpu, wall)


@contextmanager
def server_process(
    command: Sequence[str], ready: re.Pattern[str], *, env: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[tuple[subprocess.Popen[str], re.Match[str]]]:
    """Start a server process, wait for its ready line on stdout, stop it (SIGTERM, then SIGKILL)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        match = None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            match = ready.search(line)
            if match:
                break
        if match is None:
            raise RuntimeError(f"{command[0]} did not start (exit code {process.poll()})")
        yield process, match
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def get_json(url: str, timeout: float = 10, *, cafile: Path | None = None) -> Any:
    """GET a small JSON document (no proxies: loopback only); ``cafile`` trusts a test certificate."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if cafile is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(cafile))))
    opener = urllib.request.build_opener(*handlers)
    with opener.open(url, timeout=timeout) as response:
        return json.load(response)


def median(values: Sequence[float]) -> float:
    """The median (the benchmarks' statistic: robust to a noisy neighbour on a shared machine)."""
    return statistics.median(values)


def rotated(items: Sequence[str], round_index: int) -> list[str]:
    """``items`` started at a different position each round, so no client always runs first or last."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def curl_version() -> str:
    """curl's first version line, or ``"missing"``."""
    if not shutil.which("curl"):
        return "missing"
    return subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout.split(
        "\n"
    )[0]


def machine() -> dict[str, Any]:
    """The facts the figures depend on: CPUs, CPU model, memory, Python, kernel, load."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "curl": curl_version(),
        "self_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def print_machine(info: dict[str, Any]) -> None:
    """One line about the machine, before the figures."""
    print(
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, Python {info['python']}, "
        f"Linux {info['kernel']}, load {info['load_average']}; {info['curl']}"
    )


def hook_env(
    base_url: str, api_key: str, airflow_home: Path, *, ca_bundle: Path | None = None
) -> dict[str, str]:
    """The environment of a child that uses the hook: a throwaway AIRFLOW_HOME and the connection.

    ``ca_bundle`` (TLS runs) goes in ``REQUESTS_CA_BUNDLE``, which the hook reads once per session.
    """
    env = dict(os.environ)
    env.pop("REQUESTS_CA_BUNDLE", None)
    if ca_bundle is not None:
        env["REQUESTS_CA_BUNDLE"] = str(ca_bundle)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW_CONN_BCTRL_DEFAULT": json.dumps(
                {"conn_type": "bctrl", "host": base_url, "password": api_key}
            ),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
            "NO_PROXY": "*",
        }
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(name, None)
    return env


def print_rss_source() -> None:
    """Under a table of client peak RSS: say so when GNU time is missing (the figures are then too high)."""
    if not GNU_TIME:
        print("(GNU time is not installed: peak RSS figures include the launching Python process's)")


def print_targets(lines: Iterable[tuple[bool | None, str]]) -> bool:
    """Print each target line, ``PASS``/``FAIL`` for a judged target and ``INFO`` for ``None`` (a figure that
    informs); True when no judged target is missed."""
    ok = True
    for met, line in lines:
        if met is None:
            print(f"INFO: {line}")
        else:
            ok = ok and met
            print(f"{'PASS' if met else 'FAIL'}: {line}")
    return ok


def run_and_report(
    run: Callable[[], dict[str, Any]],
    report: Callable[[dict[str, Any]], bool],
    json_path: Path | None,
    **facts: Any,
) -> int:
    """The end of every benchmark's command line: the machine line, the run, the report, the JSON file.

    The results get the machine facts (``"machine"``) and ``facts`` before ``report`` sees them; they
    are written to ``json_path`` when it is given. Returns the exit status: 1 when a target is missed.
    """
    info = machine()
    print_machine(info)
    result = run()
    result["machine"] = info
    result.update(facts)
    ok = report(result)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


def add_size_arguments(parser: argparse.ArgumentParser, *, default_rounds: int) -> None:
    """The options every size-based benchmark takes: --sizes, --rounds, --quick, --json, --quiet."""
    parser.add_argument("--sizes", help="comma-separated, e.g. 10M,256M,1G (default: those three)")
    parser.add_argument(
        "--rounds", type=int, default=default_rounds, help=f"rounds per size (default {default_rounds})"
    )
    parser.add_argument("--quick", action="store_true", help="1 MiB and 16 MiB, 2 rounds: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines")


def chosen_sizes(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, default_rounds: int, max_rounds: int
) -> tuple[list[int], int]:
    """The sorted sizes and the rounds the options ask for (``--quick`` means 2 rounds unless given)."""
    sizes = (
        [parse_size(part) for part in args.sizes.split(",")]
        if args.sizes
        else list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    )
    rounds = 2 if args.quick and args.rounds == default_rounds else args.rounds
    if not 1 <= rounds <= max_rounds:
        parser.error(f"--rounds must be between 1 and {max_rounds}")
    return sorted(sizes), rounds


def chosen_names(parser: argparse.ArgumentParser, text: str, known: Sequence[str], what: str) -> list[str]:
    """The names in the comma-separated ``text``, each one of ``known``; an unknown one is a usage error."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if unknown := set(names) - set(known):
        parser.error(f"unknown {what}: {', '.join(sorted(unknown))}")
    return names
