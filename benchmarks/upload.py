"""Upload clients compared on one discarding loopback sink: the hook, curl and naive requests.

For every size, every round runs each client once, in a fresh process (so ``ru_maxrss`` is that
client's own peak RSS), in an order rotated from round to round; the table shows medians. The
server is :mod:`sink` in its own process: it reads bodies into a reused buffer and discards them,
so it is not the bottleneck and the clients can be told apart (a server that hashes and writes
caps everyone at the disk path's ~250 MB/s).

- ``hook``: :meth:`BctrlHook.upload_file` (the connection from ``AIRFLOW_CONN_BCTRL_DEFAULT``).
- ``curl``: ``curl -sS -F file=@PATH -o /dev/null`` — the reference; its time is curl's own
  ``time_total``.
- ``requests``: ``requests.post(files=...)`` — the naive way, which builds the body in memory.
- ``hook-warm``: the second ``upload_file`` on one hook in one process (times the second only): what
  a call costs once the per-process first-use costs are paid. Information, not a target.

Target: the hook's peak RSS grows by less than 32 MiB from the smallest to the largest size (exit
status 1 otherwise). The throughput ratios are information (decision 7): speed is judged on the
production path, over TLS on a native server, by ``production.py``. Usage::

    python benchmarks/upload.py [--sizes 10M,256M,1G] [--rounds 5] [--clients hook,curl,requests] [--tls]

``--tls`` serves https from the same Python sink with a throwaway certificate that every client
trusts; the sink then decrypts in Python and caps every client, so for TLS figures that tell the
clients apart use ``production.py`` (a native server).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _certificate import loopback_certificate
from _common import (
    BENCH_DIR,
    MIB,
    PYTHON,
    add_size_arguments,
    chosen_names,
    chosen_sizes,
    get_json,
    hook_env,
    make_file,
    median,
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

CLIENTS = ("hook", "curl", "requests", "hook-warm")
#: Uploads one sample of a client makes (hook-warm uploads once untimed, then the timed one).
UPLOADS_PER_SAMPLE = {"hook-warm": 2}
TARGET_RSS_GROWTH_MIB = 32.0
#: The multipart framing around the file bytes is a few hundred bytes; more means a wrong body.
MAX_FRAMING = 4096
#: GNU time reports a child's CPU seconds in steps of this size.
CPU_RESOLUTION = 0.01
_SINK_READY = re.compile(r"SINK listening on (?P<url>https?://\S+)")


def _run_client(client: str, url: str, path: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """One upload by ``client`` in a new process: (seconds, CPU seconds, peak RSS MiB).

    The Python clients time and count CPU for the upload call alone (not the interpreter's start and
    imports); curl's figures are its own ``time_total`` and its whole process's CPU (a few ms of it
    start-up).
    """
    if client == "curl":
        command = [
            "curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{time_total} %{http_code}",
            "-H", "Authorization: Bearer bctrl_bench", "-F", f"file=@{path}",
            "-F", f"runtimePath=bench/{path.name}", f"{url}/v1/runtimes/rt_bench/files/upload",
        ]  # fmt: skip
        if "REQUESTS_CA_BUNDLE" in env:  # TLS run: curl trusts the sink's certificate as the hook does
            command[1:1] = ["--cacert", env["REQUESTS_CA_BUNDLE"]]
        result = run_child(command, env=env)
        if result.returncode != 0 or not result.stdout.endswith(" 200"):
            raise RuntimeError(f"curl failed ({result.returncode}): {result.stdout} {result.stderr[-2000:]}")
        return float(result.stdout.split()[0]), result.cpu_seconds, result.peak_rss_mib
    result = run_child([PYTHON, str(BENCH_DIR / "_upload_client.py"), client, url, str(path)], env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{client} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return float(report["seconds"]), float(report["cpu_seconds"]), result.peak_rss_mib


def run(
    sizes: list[int], rounds: int, clients: list[str], *, verbose: bool = True, tls: bool = False
) -> dict[str, Any]:
    """Run the comparison and return every sample and the medians (see :func:`report`).

    :param tls: serve https with a throwaway certificate that every client trusts (the real API's
        transport).
    """
    if "curl" in clients and not shutil.which("curl"):
        raise SystemExit("curl is not installed (apt-get install -y curl), or leave it out with --clients")
    with temp_dir("bctrl-bench-upload-") as work:
        sink_command = [PYTHON, str(BENCH_DIR / "sink.py"), "--port", "0"]
        cert: Path | None = None
        if tls:
            cert, key = loopback_certificate(work)
            sink_command += ["--tls-cert", str(cert), "--tls-key", str(key)]
        with server_process(sink_command, _SINK_READY) as (_, ready):
            url = ready.group("url")
            (work / "airflow").mkdir()
            env = hook_env(url, "bctrl_bench", work / "airflow", ca_bundle=cert)
            samples = _measure(url, env, work, sizes, rounds, clients, verbose=verbose, cafile=cert)
    return {
        "sizes": sizes,
        "rounds": rounds,
        "clients": clients,
        "tls": tls,
        "samples": samples,
        "summary": summarise(sizes, samples),
    }


def _measure(
    url: str,
    env: dict[str, str],
    work: Path,
    sizes: list[int],
    rounds: int,
    clients: list[str],
    *,
    verbose: bool,
    cafile: Path | None,
) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Every round of every client at every size; the sink's byte count checked after each upload."""
    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    for size in sizes:
        test_file = make_file(work, size)
        warm(test_file.path)
        per_client: dict[str, list[dict[str, float]]] = {client: [] for client in clients}
        for round_index in range(rounds):
            for client in rotated(clients, round_index):
                before = int(get_json(f"{url}/_sink/stats", cafile=cafile)["requests"])
                seconds, cpu, peak = _run_client(client, url, test_file.path, env)
                stats = get_json(f"{url}/_sink/stats", cafile=cafile)
                body = int(stats["lastBodyBytes"])
                if not size < body <= size + MAX_FRAMING:
                    raise RuntimeError(f"{client} sent a {body}-byte body for a {size}-byte file")
                # Each sample is exactly the uploads it claims: no extra, untimed run slipped in.
                uploads = int(stats["requests"]) - before
                if uploads != UPLOADS_PER_SAMPLE.get(client, 1):
                    raise RuntimeError(f"one {client} sample made {uploads} uploads")
                per_client[client].append({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": peak})
                if verbose:
                    print(
                        f"  {size_label(size):>8} round {round_index + 1}/{rounds} {client:<11} "
                        f"{seconds:8.3f} s {size / MIB / seconds:9.1f} MiB/s  CPU {cpu:6.3f} s {peak:7.1f} MiB",
                        flush=True,
                    )
        samples[size_label(size)] = per_client
        test_file.path.unlink()
    return samples


def summarise(
    sizes: list[int], samples: dict[str, dict[str, list[dict[str, float]]]]
) -> list[dict[str, Any]]:
    """One row per (size, client): median seconds, MiB/s, median peak RSS and the ratio to curl."""
    rows: list[dict[str, Any]] = []
    for size in sizes:
        per_client = samples[size_label(size)]
        medians = {client: median([s["seconds"] for s in runs]) for client, runs in per_client.items()}
        for client, runs in per_client.items():
            seconds = medians[client]
            row: dict[str, Any] = {
                "size": size,
                "label": size_label(size),
                "client": client,
                "seconds": seconds,
                "mib_s": size / MIB / seconds,
                "cpu_seconds": median([s["cpu_seconds"] for s in runs]),
                "peak_rss_mib": median([s["peak_rss_mib"] for s in runs]),
                "min_seconds": min(s["seconds"] for s in runs),
                "max_seconds": max(s["seconds"] for s in runs),
            }
            # Throughput ratio: curl's time over the client's (1.0 = as fast as curl, 0.5 = half).
            row["ratio_to_curl"] = medians["curl"] / seconds if "curl" in medians else None
            rows.append(row)
    return rows


def checks(result: dict[str, Any]) -> list[tuple[bool | None, str]]:
    """The target lines as (passed, line) pairs; passed is None for a line that informs only.

    The throughput ratios here inform only (decision 7): the speed targets are judged on the
    production path, over TLS on a native server (``production.py``). This script's sink is a Python
    server on loopback, the path the emulator sees in users' tests. The hook's flat memory stays a
    target.
    """
    rows = {(row["label"], row["client"]): row for row in result["summary"]}
    labels = [size_label(size) for size in result["sizes"]]
    lines: list[tuple[bool | None, str]] = []
    transport = "https, Python sink" if result.get("tls") else "plain http"
    if "hook" in result["clients"] and "curl" in result["clients"]:
        for label in labels:
            ratio = rows[(label, "hook")]["ratio_to_curl"]
            lines.append(
                (None, f"hook throughput {ratio:.2f}x curl at {label} over {transport} (information)")
            )
    if "hook" in result["clients"] and len(labels) > 1:
        growth = rows[(labels[-1], "hook")]["peak_rss_mib"] - rows[(labels[0], "hook")]["peak_rss_mib"]
        lines.append(
            (
                growth < TARGET_RSS_GROWTH_MIB,
                f"hook peak RSS growth {labels[0]} -> {labels[-1]}: {growth:+.1f} MiB (target < {TARGET_RSS_GROWTH_MIB:g} MiB)",
            )
        )
    return lines


def report(result: dict[str, Any]) -> bool:
    """Print the table and the target checks (see :func:`checks`); True when every judged target is met."""
    transport = "https" if result.get("tls") else "plain http"
    print(
        f"\nupload into the discarding sink over {transport}, median of {result['rounds']} rounds"
        " (each client in a fresh process)"
    )
    print(
        f"{'size':>8}  {'client':<12}{'median s':>10}{'MiB/s':>10}{'CPU s':>8}{'peak RSS MiB':>14}{'x curl':>8}"
        "   min..max s"
    )
    for row in result["summary"]:
        ratio = "" if row["ratio_to_curl"] is None else f"{row['ratio_to_curl']:.2f}"
        print(
            f"{row['label']:>8}  {row['client']:<12}{row['seconds']:10.3f}{row['mib_s']:10.1f}"
            f"{row['cpu_seconds']:8.3f}{row['peak_rss_mib']:14.1f}{ratio:>8}   {row['min_seconds']:.3f}..{row['max_seconds']:.3f}"
        )
    print_rss_source()
    return print_targets([*checks(result), *((None, note) for note in cpu_notes(result))])


def cpu_notes(result: dict[str, Any]) -> list[str]:
    """The hook's CPU time per upload next to curl's: the per-byte cost, which a busy machine hardly moves."""
    rows = {(row["label"], row["client"]): row for row in result["summary"]}
    notes = []
    if "hook" in result["clients"] and "curl" in result["clients"]:
        for size in result["sizes"]:
            label = size_label(size)
            hook, curl = rows[(label, "hook")]["cpu_seconds"], rows[(label, "curl")]["cpu_seconds"]
            # GNU time counts curl's CPU in 10 ms steps: a ratio to a figure that small means nothing.
            ratio = (
                f"{hook / curl:.2f}x" if curl >= CPU_RESOLUTION * 5 else "curl below GNU time's resolution"
            )
            notes.append(f"hook CPU {hook:.3f} s vs curl {curl:.3f} s at {label} ({ratio})")
    return notes


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_arguments(parser, default_rounds=5)
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ",".join(CLIENTS)
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="https with a throwaway certificate every client trusts (the real API's transport)",
    )
    args = parser.parse_args(argv)
    sizes, rounds = chosen_sizes(parser, args, default_rounds=5, max_rounds=50)
    clients = chosen_names(parser, args.clients, CLIENTS, "clients")
    return run_and_report(
        lambda: run(sizes, rounds, clients, verbose=not args.quiet, tls=args.tls),
        report,
        args.json,
        quick=bool(args.quick),
    )


if __name__ == "__main__":
    sys.exit(main())
