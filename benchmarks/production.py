"""The production path: the hook against curl over real TLS, on a native server (decision 7).

BCTRL's API is https, so this is the benchmark the speed targets are judged on (issue 13). The server
is ``tls_server.js``: Node's built-in https module on OpenSSL (not Python, which would cap both
clients), on 127.0.0.1, with a throwaway certificate made for the run that every client verifies (curl
through ``--cacert``, the hook through ``REQUESTS_CA_BUNDLE``; nothing skips verification). It discards
uploads (counting the bytes and checking the multipart framing) and serves downloads from files.

Workloads, each client in a fresh process, clients in an order rotated per round, medians of rounds,
every ratio against curl measured in the same run (ratio = curl's seconds / the hook's, so 1.0 is "as
fast as curl" and higher is faster):

- **upload** 10 MiB, 256 MiB, 1 GiB: the process's first ``upload_file`` against ``curl -F``; both
  include the TLS handshake;
- **download** 10 MiB, 256 MiB, 1 GiB: ``download_file`` (which fsyncs) against ``curl -o`` plus an
  fsync of curl's output; both write to tmpfs (``/dev/shm``), where writeback noise does not swamp the
  difference; the hook process's peak RSS from the smallest to the largest size;
- **small**: 100 uploads of 64 KiB on one hook in one process, against one curl process making the same
  100 uploads over one connection (``--next``), and plain requests posting a prebuilt body on one
  session (the reference, information).

After every sample the server's counters are checked: exactly the requests the sample claims, bodies
of the right size with a correct multipart framing, the downloaded bytes (and, in the first round, their
sha256) equal to the source, curl's 100 uploads on one connection. A failed check stops the run: the
figures would not be what they say. Exit status 1 when a target is missed. Usage::

    python benchmarks/production.py [--sizes 10M,256M,1G] [--rounds 5] [--only upload,download,small]
    python benchmarks/production.py --quick      # 1 MiB and 16 MiB, 2 rounds: a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _certificate import loopback_certificate
from _common import (
    BENCH_DIR,
    MIB,
    PYTHON,
    ChildResult,
    add_size_arguments,
    chosen_names,
    chosen_sizes,
    get_json,
    hook_env,
    make_file,
    median,
    parse_size,
    print_rss_source,
    print_targets,
    rotated,
    run_and_report,
    run_child,
    server_process,
    size_label,
    temp_dir,
    warm,
)

WORKLOADS = ("upload", "download", "small")
API_KEY = "bctrl_bench"
RUNTIME = "rt_bench"
#: Targets (issue 13). Uploads: 0.9x for the first 10 MiB, 1.0x from 256 MiB; downloads 0.9x at all sizes.
UPLOAD_TARGET_SMALL, UPLOAD_TARGET_LARGE, LARGE_FROM = 0.9, 1.0, 256 * MIB
DOWNLOAD_TARGET = 0.9
SMALL_TARGET = 0.6
TARGET_RSS_GROWTH_MIB = 32.0
#: GNU time counts CPU in 10 ms steps: a CPU ratio is shown only when curl used at least this much.
MIN_CPU_FOR_RATIO = 0.03
#: The multipart framing around the file bytes is a few hundred bytes; more means a wrong body.
MAX_FRAMING = 4096
_READY = re.compile(r"TLS SERVER listening on (?P<url>https://\S+)")


class CheckFailed(RuntimeError):
    """A sample did not do what it claims (wrong bytes, extra requests): its figure would be wrong."""


# ------------------------------------------------------------------------------------------ harness


def _sample(seconds: float, cpu_seconds: float, child: ChildResult) -> dict[str, float]:
    """One sample's figures: the timed seconds and CPU seconds, and the client process's peak RSS."""
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": child.peak_rss_mib}


class Bench:
    """The running server, the environment the clients get, and the sample runners with their checks."""

    def __init__(self, url: str, cert: Path, work: Path, out_dir: Path, *, verbose: bool) -> None:
        self.url, self.cert, self.work, self.out_dir, self.verbose = url, cert, work, out_dir, verbose
        (work / "airflow").mkdir(exist_ok=True)
        self.env = hook_env(url, API_KEY, work / "airflow", ca_bundle=cert)

    def stats(self) -> dict[str, Any]:
        """The server's counters."""
        return dict(get_json(f"{self.url}/_bench/stats", cafile=self.cert))

    def _python(self, *args: str) -> tuple[dict[str, Any], ChildResult]:
        result = run_child([PYTHON, str(BENCH_DIR / "_production_client.py"), *args], env=self.env)
        if result.returncode != 0:
            raise CheckFailed(f"client {args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1]), result

    def _curl(self, *segments: list[str]) -> tuple[list[tuple[float, int]], ChildResult]:
        """One curl process making one transfer per segment (``--next`` between them, one connection)."""
        command = ["curl"]
        for index, segment in enumerate(segments):
            if index:
                command.append("--next")
            command += [
                "-sS", "--noproxy", "*", "--cacert", str(self.cert), "-H", f"Authorization: Bearer {API_KEY}",
                "-w", "%{time_total} %{http_code}\\n", *segment,
            ]  # fmt: skip
        result = run_child(command, env=self.env)
        lines = result.stdout.split()
        transfers = [(float(lines[i]), int(lines[i + 1])) for i in range(0, len(lines) - 1, 2)]
        if result.returncode != 0 or len(transfers) != len(segments) or any(c != 200 for _, c in transfers):
            raise CheckFailed(
                f"curl failed ({result.returncode}): {result.stdout[-500:]} {result.stderr[-2000:]}"
            )
        return transfers, result

    def _curl_upload(self, source: Path, runtime_path: str) -> list[str]:
        """curl's arguments for one upload of ``source`` to ``runtime_path`` (a ``_curl`` segment)."""
        url = f"{self.url}/v1/runtimes/{RUNTIME}/files/upload"
        return ["-o", "/dev/null", "-F", f"file=@{source}", "-F", f"runtimePath={runtime_path}", url]

    def _counted(self, run: Callable[[], dict[str, float]]) -> tuple[dict[str, float], dict[str, int]]:
        before = self.stats()
        sample = run()
        after = self.stats()
        if after["badUploads"] != before["badUploads"]:
            raise CheckFailed(f"the server refused an upload body: {after['lastBadUpload']}")
        delta = {key: after[key] - before[key] for key in after if isinstance(after[key], int)}
        delta["lastUploadBodyBytes"] = after["lastUploadBodyBytes"]
        return sample, delta

    # ---------------------------------------------------------------------------------- uploads

    def upload(self, client: str, source: Path, size: int) -> dict[str, float]:
        """One upload of ``source`` by ``client`` (``hook`` or ``curl``), the first in its process."""

        def run() -> dict[str, float]:
            if client == "curl":
                transfers, result = self._curl(self._curl_upload(source, f"bench/{source.name}"))
                return _sample(transfers[0][0], result.cpu_seconds, result)
            report, result = self._python("upload", str(source))
            if (
                report["server_sizes"] != [None]
                and not size < report["server_sizes"][0] <= size + MAX_FRAMING
            ):
                raise CheckFailed(f"the hook's upload answer says {report['server_sizes']} bytes for {size}")
            return _sample(report["seconds"], report["cpu_seconds"], result)

        sample, delta = self._counted(run)
        body = delta["lastUploadBodyBytes"]
        if delta["uploads"] != 1 or not size < body <= size + MAX_FRAMING:
            raise CheckFailed(
                f"{client}: {delta['uploads']} uploads, last body {body} bytes for a {size}-byte file"
            )
        if delta["connections"] != 1:
            raise CheckFailed(f"{client}: one upload used {delta['connections']} connections")
        return sample

    # -------------------------------------------------------------------------------- downloads

    def download(self, client: str, file_id: str, size: int, digest: str | None) -> dict[str, float]:
        """One download of ``file_id`` by ``client`` into tmpfs; ``digest``: also compare the sha256."""
        out_dir = Path(tempfile.mkdtemp(prefix=f"{client}-", dir=self.out_dir))
        target = out_dir / f"{file_id}.bin"
        try:

            def run() -> dict[str, float]:
                if client == "curl":
                    transfers, result = self._curl(
                        ["-o", str(target), f"{self.url}/v1/files/{file_id}/content"]
                    )
                    # curl does not fsync; the hook does (a download is durable when it returns), so the
                    # reference is curl plus an fsync of its output, timed here.
                    started = time.perf_counter()
                    fd = os.open(target, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    seconds = transfers[0][0] + time.perf_counter() - started
                    return _sample(seconds, result.cpu_seconds, result)
                report, result = self._python("download", file_id, str(target))
                if report["uri"] != target.as_uri():
                    raise CheckFailed(f"the hook wrote {report['uri']}, not {target.as_uri()}")
                return _sample(report["seconds"], report["cpu_seconds"], result)

            sample, delta = self._counted(run)
            if delta["contentRequests"] != 1 or delta["metadataRequests"] > 1 or delta["uploads"]:
                raise CheckFailed(f"{client}: one download made {delta}")
            if delta["contentBytesSent"] != size:
                raise CheckFailed(f"{client}: the server sent {delta['contentBytesSent']} of {size} bytes")
            leftovers = sorted(p.name for p in out_dir.iterdir() if p != target)
            if leftovers:
                raise CheckFailed(f"{client} left files next to its download: {leftovers}")
            written = target.stat().st_size
            if written != size:
                raise CheckFailed(f"{client} wrote {written} of {size} bytes")
            if digest is not None and sha256(target) != digest:
                raise CheckFailed(f"{client} wrote bytes that differ from the source")
            return sample
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    # ------------------------------------------------------------------------------ small files

    def small(self, client: str, source: Path, size: int, count: int) -> dict[str, float]:
        """``count`` uploads of ``source`` by one process of ``client`` (hook, curl or requests)."""

        def run() -> dict[str, float]:
            if client == "curl":
                segments = [self._curl_upload(source, f"small/{i}-{source.name}") for i in range(count)]
                transfers, result = self._curl(*segments)
                seconds = sum(seconds for seconds, _ in transfers)
                return _sample(seconds, result.cpu_seconds, result)
            workload = (
                ("small", str(source), str(count))
                if client == "hook"
                else ("small-requests", self.url, str(source), str(count))
            )
            report, result = self._python(*workload)
            if len(report["server_sizes"]) != count or any(
                s is not None and not size < s <= size + MAX_FRAMING for s in report["server_sizes"]
            ):
                raise CheckFailed(
                    f"{client}: the upload answers say {report['server_sizes'][:5]}... for {size}"
                )
            return _sample(report["seconds"], report["cpu_seconds"], result)

        sample, delta = self._counted(run)
        total = delta["uploadBodyBytes"]
        if delta["uploads"] != count or not count * size < total <= count * (size + MAX_FRAMING):
            raise CheckFailed(
                f"{client}: {delta['uploads']} uploads of {total} bytes, expected {count} of {size}"
            )
        if client == "curl" and delta["connections"] != 1:
            raise CheckFailed(f"curl's {count} uploads used {delta['connections']} connections, not one")
        sample["connections"] = delta["connections"]
        return sample

    def say(self, text: str) -> None:
        """A per-sample line (unless --quiet)."""
        if self.verbose:
            print(text, flush=True)


@contextmanager
def native_server(work: Path) -> Iterator[tuple[str, Path, Path]]:
    """``tls_server.js`` with a fresh certificate: ``(url, certificate, files directory)``.

    The server serves downloads from the files directory (file id ``X`` is ``X.bin`` there).
    """
    for tool in ("curl", "node"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed; the production-path benchmark needs it")
    cert, key = loopback_certificate(work)
    files = work / "files"
    files.mkdir()
    command = [
        "node",
        str(BENCH_DIR / "tls_server.js"),
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--files-dir",
        str(files),
    ]
    with server_process(command, _READY, timeout=60) as (_, ready):
        yield ready.group("url"), cert, files


def sha256(path: Path) -> str:
    """The file's sha256, read in 4 MiB pieces."""
    digest = hashlib.sha256()
    buffer = bytearray(4 * MIB)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as source:
        while count := source.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def tmpfs_dir() -> Path | None:
    """``/dev/shm`` when it is a writable tmpfs (decision 7: downloads compared on tmpfs)."""
    shm = Path("/dev/shm")
    try:
        mounts = Path("/proc/mounts").read_text().split("\n")
    except OSError:
        return None
    is_tmpfs = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in mounts if line.strip())
    return shm if is_tmpfs and os.access(shm, os.W_OK) else None


def node_version() -> str:
    """``node --version`` and the OpenSSL it was built with."""
    out = subprocess.run(
        ["node", "-p", "process.version + ' (OpenSSL ' + process.versions.openssl + ')'"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


# ------------------------------------------------------------------------------------------ the run


def run(
    sizes: list[int],
    rounds: int,
    workloads: list[str],
    *,
    small_count: int,
    small_size: int,
    small_rounds: int,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run the chosen workloads; return every sample and the summary rows (see :func:`summarise`)."""
    shm = tmpfs_dir()
    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    with (
        temp_dir("bctrl-bench-production-") as work,
        temp_dir("bctrl-bench-downloads-", shm) as out_dir,
        native_server(work) as (url, cert, files),
    ):
        bench = Bench(url, cert, work, out_dir, verbose=verbose)
        if "small" in workloads:
            source = make_file(files, small_size)
            warm(source.path)
            for round_index in range(small_rounds):
                for client in rotated(["hook", "curl", "requests"], round_index):
                    sample = bench.small(client, source.path, small_size, small_count)
                    samples.setdefault(f"small {client}", {}).setdefault("all", []).append(sample)
                    bench.say(
                        f"  {small_count} x {size_label(small_size)} round {round_index + 1}/{small_rounds} "
                        f"{client:<9}{sample['seconds']:8.3f} s {sample['seconds'] / small_count * 1000:7.2f} ms/upload"
                        f"  CPU {sample['cpu_seconds']:6.3f} s  {sample['connections']} connection(s)"
                    )
            source.path.unlink()
        for size in sizes:
            if not {"upload", "download"} & set(workloads):
                break
            source = make_file(files, size)
            warm(source.path)
            file_id = source.path.stem
            for workload in ("upload", "download"):
                if workload not in workloads:
                    continue
                for round_index in range(rounds):
                    for client in rotated(["hook", "curl"], round_index):
                        if workload == "upload":
                            sample = bench.upload(client, source.path, size)
                        else:
                            digest = source.sha256 if round_index == 0 else None
                            sample = bench.download(client, file_id, size, digest)
                        samples.setdefault(f"{workload} {client}", {}).setdefault(
                            size_label(size), []
                        ).append(sample)
                        bench.say(
                            f"  {workload:<8} {size_label(size):>8} round {round_index + 1}/{rounds} {client:<5}"
                            f"{sample['seconds']:8.3f} s {size / MIB / sample['seconds']:8.1f} MiB/s"
                            f"  CPU {sample['cpu_seconds']:6.3f} s {sample['peak_rss_mib']:7.1f} MiB"
                        )
            source.path.unlink()
    return {
        "sizes": sizes,
        "rounds": rounds,
        "workloads": workloads,
        "small": {"count": small_count, "size": small_size, "rounds": small_rounds},
        "tmpfs": str(shm) if shm else None,
        "node": node_version(),
        "samples": samples,
        "summary": summarise(sizes, workloads, samples, small_count),
    }


def summarise(
    sizes: list[int],
    workloads: list[str],
    samples: dict[str, dict[str, list[dict[str, float]]]],
    small_count: int,
) -> list[dict[str, Any]]:
    """One row per (workload, size, client): medians, spread and the ratio to curl's median."""
    rows: list[dict[str, Any]] = []
    groups: list[tuple[str, str, int | None, list[str]]] = []
    for workload in ("upload", "download"):
        if workload in workloads:
            groups += [(workload, size_label(size), size, ["hook", "curl"]) for size in sizes]
    if "small" in workloads:
        groups.append(("small", "all", None, ["hook", "curl", "requests"]))
    for workload, label, size, clients in groups:
        seconds = {c: median([s["seconds"] for s in samples[f"{workload} {c}"][label]]) for c in clients}
        for client in clients:
            runs = samples[f"{workload} {client}"][label]
            row: dict[str, Any] = {
                "workload": workload,
                "label": label,
                "size": size,
                "client": client,
                "seconds": seconds[client],
                "min_seconds": min(s["seconds"] for s in runs),
                "max_seconds": max(s["seconds"] for s in runs),
                "cpu_seconds": median([s["cpu_seconds"] for s in runs]),
                "peak_rss_mib": median([s["peak_rss_mib"] for s in runs]),
                "ratio_to_curl": seconds["curl"] / seconds[client],
            }
            if size:
                row["mib_s"] = size / MIB / seconds[client]
            else:
                row["ms_per_call"] = seconds[client] / small_count * 1000
                row["connections"] = max(s["connections"] for s in runs)
            rows.append(row)
    return rows


def checks(result: dict[str, Any]) -> list[tuple[bool | None, str]]:
    """The issue's targets as (met, line); met is None for a line that informs only (a --quick run's ratios)."""
    rows = {(r["workload"], r["label"], r["client"]): r for r in result["summary"]}
    quick = bool(result.get("quick"))
    lines: list[tuple[bool | None, str]] = []

    def ratio_line(workload: str, label: str, target: float, text: str) -> None:
        hook, curl = rows[(workload, label, "hook")], rows[(workload, label, "curl")]
        ratio = hook["ratio_to_curl"]
        # Context for a noisy machine: the best runs' ratio, and the CPU ratio where curl's CPU time is
        # well above GNU time's 10 ms resolution.
        extra = f"best runs {curl['min_seconds'] / hook['min_seconds']:.2f}x"
        if curl["cpu_seconds"] >= MIN_CPU_FOR_RATIO and hook["cpu_seconds"] > 0:
            extra += f", CPU {curl['cpu_seconds'] / hook['cpu_seconds']:.2f}x"
        line = f"{text}: hook {ratio:.2f}x curl (target >= {target:.1f}x; {extra})"
        lines.append((None, f"{line} (quick run: information)") if quick else (ratio >= target, line))

    labels = [size_label(size) for size in result["sizes"]]
    if "upload" in result["workloads"]:
        for size, label in zip(result["sizes"], labels, strict=True):
            target = UPLOAD_TARGET_LARGE if size >= LARGE_FROM else UPLOAD_TARGET_SMALL
            first = " (first in a process, TLS handshake included)" if size < LARGE_FROM else ""
            ratio_line("upload", label, target, f"upload {label}{first}")
    if "download" in result["workloads"]:
        for label in labels:
            ratio_line("download", label, DOWNLOAD_TARGET, f"download {label} (curl + fsync, tmpfs)")
    if "small" in result["workloads"]:
        small = result["small"]
        text = f"{small['count']} uploads of {size_label(small['size'])} on one hook vs one curl process, one connection"
        ratio_line("small", "all", SMALL_TARGET, text)
        reference = rows[("small", "all", "requests")]["ratio_to_curl"]
        lines.append(
            (
                None,
                f"plain requests posting a prebuilt body on one session: {reference:.2f}x curl (reference)",
            )
        )
        cpu = {
            c: rows[("small", "all", c)]["cpu_seconds"] / small["count"] * 1000
            for c in ("hook", "requests", "curl")
        }
        lines.append(
            (
                None,
                f"CPU per small upload (a busy machine moves it less than wall time): hook {cpu['hook']:.2f} ms, "
                f"plain requests {cpu['requests']:.2f} ms, curl {cpu['curl']:.2f} ms (its whole process)",
            )
        )
    for workload in ("download", "upload"):
        if workload in result["workloads"] and len(labels) > 1:
            first, last = rows[(workload, labels[0], "hook")], rows[(workload, labels[-1], "hook")]
            growth = last["peak_rss_mib"] - first["peak_rss_mib"]
            line = (
                f"{workload} hook peak RSS growth {labels[0]} -> {labels[-1]}: {growth:+.1f} MiB "
                f"({first['peak_rss_mib']:.1f} -> {last['peak_rss_mib']:.1f}; target < {TARGET_RSS_GROWTH_MIB:g} MiB)"
            )
            lines.append((growth < TARGET_RSS_GROWTH_MIB, line))
    return lines


def report(result: dict[str, Any]) -> bool:
    """Print the production-path table and the target lines; True when every judged target is met."""
    small_rounds = f" ({result['small']['rounds']} for small files)" if "small" in result["workloads"] else ""
    print(
        f"\nproduction path: https on a native server (Node {result['node']}), a throwaway certificate every "
        f"client verifies; medians of {result['rounds']} rounds{small_rounds}, "
        "each client in a fresh process; x curl = curl's seconds / the client's"
    )
    print(
        f"{'workload':<10}{'size':>8}  {'client':<9}{'median s':>10}{'MiB/s':>9}{'ms/call':>9}{'CPU s':>8}"
        f"{'peak RSS MiB':>14}{'x curl':>8}   min..max s"
    )
    small_label = f"{result['small']['count']}x{size_label(result['small']['size']).replace(' ', '')}"
    for row in result["summary"]:
        label = small_label if row["workload"] == "small" else row["label"]
        mib_s = f"{row['mib_s']:9.1f}" if "mib_s" in row else f"{'':>9}"
        per_call = f"{row['ms_per_call']:9.2f}" if "ms_per_call" in row else f"{'':>9}"
        print(
            f"{row['workload']:<10}{label:>8}  {row['client']:<9}{row['seconds']:10.3f}{mib_s}{per_call}"
            f"{row['cpu_seconds']:8.3f}{row['peak_rss_mib']:14.1f}{row['ratio_to_curl']:8.2f}"
            f"   {row['min_seconds']:.3f}..{row['max_seconds']:.3f}"
        )
    if "download" in result["workloads"]:
        where = result["tmpfs"] or "the system temp dir (no writable tmpfs at /dev/shm)"
        print(
            f"(downloads written to {where}; curl's time includes an fsync of its output, as the hook's does)"
        )
    print_rss_source()
    ok = print_targets(checks(result))
    machine = result["machine"]
    print(
        f"load average before {machine['load_average']}, after {result['load_after']} ({machine['cpus']} CPUs)"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_arguments(parser, default_rounds=5)
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(WORKLOADS))
    parser.add_argument(
        "--small-count", type=int, default=100, help="uploads per small-files sample (default 100)"
    )
    parser.add_argument("--small-size", default="64K", help="size of each small file (default 64K)")
    parser.add_argument(
        "--small-rounds", type=int, help="rounds of the small-files workload (default 9; --quick: 2)"
    )
    args = parser.parse_args(argv)
    sizes, rounds = chosen_sizes(parser, args, default_rounds=5, max_rounds=50)
    workloads = chosen_names(parser, args.only or ",".join(WORKLOADS), WORKLOADS, "workloads")
    if not 1 <= args.small_count <= 10_000:
        parser.error("--small-count must be between 1 and 10000")

    def run_and_take_the_load() -> dict[str, Any]:
        result = run(
            sizes,
            rounds,
            workloads,
            small_count=args.small_count,
            small_size=parse_size(args.small_size),
            small_rounds=args.small_rounds or (rounds if args.quick else max(rounds, 9)),
            verbose=not args.quiet,
        )
        result["load_after"] = [round(value, 2) for value in os.getloadavg()]
        return result

    return run_and_report(run_and_take_the_load, report, args.json, quick=bool(args.quick))


if __name__ == "__main__":
    sys.exit(main())
