"""The emulator's own ingest: throughput and peak RSS while it receives uploads, streamed to disk.

The emulator runs in its own process (``BctrlEmulator(in_process=False)``) and curl uploads to it, so
the client is never the bottleneck (see ``upload.py`` for the clients). For every size a fresh
emulator is started, warmed with a tiny upload, and then receives ``--rounds`` uploads; the script
reports curl's time (the server's ingest as the client sees it), the emulator's CPU seconds per
upload, its peak RSS (``VmHWM``) before and after, and checks every stored file's sha256 against
the source. Peak RSS must not depend on the size: the growth from the smallest to the largest size
is checked against the same 32 MiB bound as the hook's. Usage::

    python benchmarks/ingest.py [--sizes 10M,256M,1G] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MIB,
    REPO_ROOT,
    add_size_arguments,
    chosen_sizes,
    make_file,
    median,
    print_targets,
    run_and_report,
    run_child,
    size_label,
    temp_dir,
    warm,
)

sys.path.insert(0, str(REPO_ROOT))

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

API_KEY = "bctrl_bench_ingest_key"
TARGET_RSS_GROWTH_MIB = 32.0


def _proc_status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _cpu_seconds(pid: int) -> float:
    # Fields 14 and 15 of /proc/PID/stat: user and system time in clock ticks (after the ")" of comm).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _curl_upload(
    emu: BctrlEmulator, runtime_id: str, path: Path, runtime_path: str, scratch: Path
) -> tuple[float, dict[str, Any]]:
    response_file = scratch / "response.json"
    command = [
        "curl", "-sS", "--noproxy", "*", "-o", str(response_file), "-w", "%{time_total} %{http_code}",
        "-H", f"Authorization: Bearer {API_KEY}", "-F", f"file=@{path}", "-F", f"runtimePath={runtime_path}",
        f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
    ]  # fmt: skip
    result = run_child(command)
    if result.returncode != 0 or (not result.stdout.endswith(" 201") and not result.stdout.endswith(" 200")):
        body = response_file.read_text(errors="replace")[:2000] if response_file.exists() else ""
        raise RuntimeError(f"upload failed: {result.stdout} {result.stderr[-2000:]} {body}")
    return float(result.stdout.split()[0]), json.loads(response_file.read_text())


def run(sizes: list[int], rounds: int, *, verbose: bool = True) -> dict[str, Any]:
    """Upload every size ``rounds`` times into a fresh subprocess emulator; return samples and summary."""
    if not shutil.which("curl"):
        raise SystemExit("curl is not installed (apt-get install -y curl)")
    rows: list[dict[str, Any]] = []
    with temp_dir("bctrl-bench-ingest-") as work:
        tiny = work / "tiny.bin"
        tiny.write_bytes(b"warm-up\n")
        for size in sizes:
            test_file = make_file(work, size)
            warm(test_file.path)
            data_dir = work / f"emulator-{size}"
            with BctrlEmulator(api_key=API_KEY, data_dir=data_dir, in_process=False) as emu:
                assert emu.pid is not None
                runtime_id = emu.create_runtime()
                _curl_upload(emu, runtime_id, tiny, "warm/tiny.bin", work)
                emu.stored_files()
                hwm_before = _proc_status_mib(emu.pid, "VmHWM")
                seconds: list[float] = []
                cpu: list[float] = []
                ids: list[str] = []
                for round_index in range(rounds):
                    cpu_before = _cpu_seconds(emu.pid)
                    took, staged = _curl_upload(
                        emu, runtime_id, test_file.path, f"bench/{round_index}/{test_file.path.name}", work
                    )
                    cpu.append(_cpu_seconds(emu.pid) - cpu_before)
                    seconds.append(took)
                    ids.append(str(staged["id"]))
                    if verbose:
                        print(
                            f"  {size_label(size):>8} round {round_index + 1}/{rounds} {took:8.3f} s "
                            f"{size / MIB / took:8.1f} MiB/s  server CPU {cpu[-1]:6.2f} s",
                            flush=True,
                        )
                hwm_after = _proc_status_mib(emu.pid, "VmHWM")
                stored = {entry["id"]: entry for entry in emu.stored_files()}
                intact = all(
                    stored[file_id]["sha256"] == test_file.sha256 and stored[file_id]["sizeBytes"] == size
                    for file_id in ids
                )
            shutil.rmtree(data_dir, ignore_errors=True)
            test_file.path.unlink()
            took = median(seconds)
            rows.append(
                {
                    "size": size,
                    "label": size_label(size),
                    "seconds": took,
                    "mib_s": size / MIB / took,
                    "server_cpu_seconds": median(cpu),
                    "hwm_before_mib": hwm_before,
                    "hwm_after_mib": hwm_after,
                    "sha256_ok": intact,
                    "samples": seconds,
                }
            )
    return {"sizes": sizes, "rounds": rounds, "summary": rows}


def report(result: dict[str, Any]) -> bool:
    """Print the table and the checks; True when every check passes."""
    print(f"\nemulator ingest (subprocess emulator, curl client), median of {result['rounds']} rounds")
    print(
        f"{'size':>8}{'median s':>10}{'MiB/s':>9}{'server CPU s':>14}{'peak RSS before':>17}{'after':>8}  sha256"
    )
    for row in result["summary"]:
        print(
            f"{row['label']:>8}{row['seconds']:10.3f}{row['mib_s']:9.1f}{row['server_cpu_seconds']:14.2f}"
            f"{row['hwm_before_mib']:14.1f} MiB{row['hwm_after_mib']:8.1f}  {'ok' if row['sha256_ok'] else 'MISMATCH'}"
        )
    rows = result["summary"]
    lines = [(all(row["sha256_ok"] for row in rows), "every stored file's sha256 and size match the source")]
    if rows:
        growth = max(row["hwm_after_mib"] for row in rows) - min(row["hwm_before_mib"] for row in rows)
        lines.append(
            (
                growth < TARGET_RSS_GROWTH_MIB,
                f"emulator peak RSS growth over {rows[0]['label']}..{rows[-1]['label']} uploads: "
                f"{growth:+.1f} MiB (target < {TARGET_RSS_GROWTH_MIB:g} MiB)",
            )
        )
    return print_targets(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_arguments(parser, default_rounds=3)
    args = parser.parse_args(argv)
    sizes, rounds = chosen_sizes(parser, args, default_rounds=3, max_rounds=20)
    return run_and_report(lambda: run(sizes, rounds, verbose=not args.quiet), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
