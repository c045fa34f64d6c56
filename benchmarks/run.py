"""Run every benchmark: upload clients, emulator ingest, import cost; exit 1 when a target is missed.

Usage::

    python benchmarks/run.py              # the full run: 10 MiB, 256 MiB, 1 GiB; about 5-10 minutes
    python benchmarks/run.py --quick      # a smoke run: 1 MiB and 16 MiB, few rounds; under a minute
    python benchmarks/run.py --json-dir out/   # also keep every script's results as JSON

Each benchmark runs in its own process (``upload.py``, ``ingest.py``, ``import_cost.py``) and prints
its own table and PASS/FAIL lines; this script repeats the target lines at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = ("upload", "ingest", "import_cost")


def main(argv: list[str] | None = None) -> int:
    """Run the scripts in turn; a summary of their target lines at the end."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds: a smoke run")
    parser.add_argument(
        "--only", choices=SCRIPTS, action="append", help="run only this benchmark (repeatable)"
    )
    parser.add_argument(
        "--json-dir", type=Path, help="write each benchmark's results as JSON into this directory"
    )
    args = parser.parse_args(argv)
    summary: list[str] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bctrl-bench-run-") as scratch:
        out_dir = args.json_dir or Path(scratch)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in args.only or SCRIPTS:
            command = [sys.executable, str(BENCH_DIR / f"{name}.py"), "--json", str(out_dir / f"{name}.json")]
            if args.quick:
                command.append("--quick")
            print(f"\n==================== {name}", flush=True)
            process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
            assert process.stdout is not None
            for line in process.stdout:
                print(line, end="", flush=True)
                if line.startswith(("PASS:", "FAIL:")):
                    summary.append(f"{name:<12} {line.rstrip()}")
            if process.wait() != 0:
                failed.append(name)
    print("\n==================== targets")
    print("\n".join(summary))
    if failed:
        print(f"benchmarks with a missed target or an error: {', '.join(failed)}")
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
