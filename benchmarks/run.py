"""Run every benchmark: the production path first, then the loopback ones; exit 1 when a target is missed.

Usage::

    python benchmarks/run.py              # the full run: 10 MiB, 256 MiB, 1 GiB; about 10-15 minutes
    python benchmarks/run.py --quick      # a smoke run: 1 MiB and 16 MiB, few rounds; a few minutes
    python benchmarks/run.py --only production --json-dir out/   # one benchmark, results kept as JSON

Each benchmark runs in its own process (``production.py``, ``upload.py``, ``ingest.py``,
``import_cost.py``) and prints its own table and target lines. At the end this script prints the
production-path table again (the speed targets: https on a native server, next to curl, decision 7)
and every target line: ``PASS``/``FAIL`` for a target, ``INFO`` for a figure that informs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = ("production", "upload", "ingest", "import_cost")
#: The first line of production.py's table; from there on its output is the table and its target lines.
PRODUCTION_TABLE = "production path:"


def main(argv: list[str] | None = None) -> int:
    """Run the scripts in turn; the production table and every target line at the end."""
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
    table: list[str] = []
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
                if name == "production" and (table or line.startswith(PRODUCTION_TABLE)):
                    table.append(line.rstrip())
                elif line.startswith(("PASS:", "FAIL:", "INFO:")):
                    summary.append(f"{name:<12} {line.rstrip()}")
            if process.wait() != 0:
                failed.append(name)
    if table:
        print("\n==================== the production path (speed targets, issue 13)")
        print("\n".join(table))
    print(
        "\n==================== the other benchmarks (loopback: plain-http speed informs; memory, import cost are targets)"
    )
    print("\n".join(summary))
    if failed:
        print(f"\nbenchmarks with a missed target or an error: {', '.join(failed)}")
        return 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
