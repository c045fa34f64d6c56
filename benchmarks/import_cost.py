"""What importing the operators module costs a DAG file, over a bare ``import airflow.sdk``.

Every DAG file that uses the operators pays this at every parse, so it must stay small (target:
under 50 ms). Method: each sample is a fresh interpreter that times, with ``time.perf_counter``,

1. ``import airflow.sdk`` (the baseline every DAG file pays anyway), then
2. ``import airflow_provider_bctrl.operators.runtime_files`` in the same process.

The figure is the second step alone: the marginal cost of the operators given that ``airflow.sdk``
is loaded. Measuring both in one process is more robust than subtracting two separate processes'
totals, whose start-up noise (tens of ms on a busy machine) would swamp the difference. The median
of ``--runs`` processes is reported, after one discarded warm-up run that writes the byte-code
caches. As context, the script also times the same import over ``from airflow.sdk import DAG,
BaseOperator`` (which any DAG file has loaded; what is left is the provider's own cost), and it
checks that the import loads no FastAPI, uvicorn, emulator or requests and opens no socket.

Until ``operators/runtime_files.py`` exists the script measures ``airflow_provider_bctrl`` and
``airflow_provider_bctrl.hooks.bctrl`` instead, for information. Usage::

    python benchmarks/import_cost.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, REPO_ROOT, median, run_and_report

OPERATORS_MODULE = "airflow_provider_bctrl.operators.runtime_files"
TARGET_MS = 50.0
#: Modules a DAG-parse import must not pull in.
FORBIDDEN = (
    "fastapi",
    "uvicorn",
    "starlette",
    "airflow_provider_bctrl.testing",
    "requests",
    "requests_toolbelt",
)

CHILD = r"""
import json, socket, sys, time
opened = []
real_connect = socket.socket.connect
def spy(self, address, *args):
    opened.append(repr(address))
    return real_connect(self, address, *args)
socket.socket.connect = spy
baseline, target = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
exec(baseline)
t1 = time.perf_counter()
before = set(sys.modules)
__import__(target)
t2 = time.perf_counter()
forbidden = sorted(m for m in set(sys.modules) - before for f in json.loads(sys.argv[3]) if m == f or m.startswith(f + "."))
print(json.dumps({"baseline_ms": (t1 - t0) * 1e3, "import_ms": (t2 - t1) * 1e3,
                  "new_modules": len(set(sys.modules) - before), "forbidden": forbidden, "sockets": opened}))
"""


def _child_env(airflow_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # let the warm-up run write .pyc files, as a real install has
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
        }
    )
    return env


def sample(baseline: str, target: str, env: dict[str, str]) -> dict[str, Any]:
    """One fresh interpreter: time ``baseline`` (a statement), then ``import target``."""
    result = subprocess.run(
        [PYTHON, "-c", CHILD, baseline, target, json.dumps(FORBIDDEN)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"importing {target} failed:\n{result.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def measure(baseline: str, target: str, runs: int, env: dict[str, str]) -> dict[str, Any]:
    """``runs`` samples (after one discarded warm-up) and their medians."""
    sample(baseline, target, env)
    samples = [sample(baseline, target, env) for _ in range(runs)]
    return {
        "baseline": baseline,
        "target": target,
        "runs": runs,
        "import_ms": median([s["import_ms"] for s in samples]),
        "import_ms_min": min(s["import_ms"] for s in samples),
        "import_ms_max": max(s["import_ms"] for s in samples),
        "baseline_ms": median([s["baseline_ms"] for s in samples]),
        "new_modules": samples[-1]["new_modules"],
        "forbidden": sorted({m for s in samples for m in s["forbidden"]}),
        "sockets": sorted({a for s in samples for a in s["sockets"]}),
    }


def run(runs: int) -> dict[str, Any]:
    """Measure the operators module (or, until it exists, the package and the hook)."""
    operators_exist = (REPO_ROOT / "airflow_provider_bctrl" / "operators" / "runtime_files.py").exists()
    targets = (
        [OPERATORS_MODULE]
        if operators_exist
        else ["airflow_provider_bctrl", "airflow_provider_bctrl.hooks.bctrl"]
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bctrl-bench-import-") as home:
        env = _child_env(Path(home))
        for target in targets:
            rows.append(measure("import airflow.sdk", target, runs, env))
            rows.append(measure("from airflow.sdk import DAG, BaseOperator", target, runs, env))
    return {"runs": runs, "operators_exist": operators_exist, "rows": rows}


def report(result: dict[str, Any]) -> bool:
    """Print the figures and the checks; True when the targets are met (or only information was measured)."""
    print(
        f"\nimport cost, median of {result['runs']} fresh processes (marginal, over the baseline in the same process)"
    )
    print(f"{'module':<48}{'over':<44}{'median ms':>10}{'min..max':>16}{'baseline ms':>13}{'modules':>9}")
    for row in result["rows"]:
        print(
            f"{row['target']:<48}{row['baseline']:<44}{row['import_ms']:10.1f}"
            f"{row['import_ms_min']:8.1f}..{row['import_ms_max']:<6.1f}{row['baseline_ms']:13.1f}{row['new_modules']:9d}"
        )
    ok = True
    for row in result["rows"]:
        if row["baseline"] != "import airflow.sdk":
            continue  # one cleanliness line per module
        clean = not row["forbidden"] and not row["sockets"]
        what = f"{row['target']} loads none of {', '.join(FORBIDDEN)} and opens no socket"
        if not clean:
            what += f" (loaded {row['forbidden']}, connected {row['sockets']})"
        if row["target"] == OPERATORS_MODULE:
            ok = ok and clean
            print(f"{'PASS' if clean else 'FAIL'}: {what}")
        else:
            print(f"INFO: {'clean' if clean else 'not clean'}: {what}")
    headline = next(
        (
            r
            for r in result["rows"]
            if r["target"] == OPERATORS_MODULE and r["baseline"] == "import airflow.sdk"
        ),
        None,
    )
    if headline is None:
        print(f"INFO: {OPERATORS_MODULE} does not exist yet; the figures above are for information")
        return True
    passed = headline["import_ms"] < TARGET_MS
    print(
        f"{'PASS' if passed else 'FAIL'}: importing the operators costs {headline['import_ms']:.1f} ms over a bare "
        f"import airflow.sdk (target < {TARGET_MS:g} ms)"
    )
    return ok and passed


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per figure (default 15)")
    parser.add_argument("--quick", action="store_true", help="5 runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    runs = 5 if args.quick and args.runs == 15 else args.runs
    if not 1 <= runs <= 100:
        parser.error("--runs must be between 1 and 100")
    return run_and_report(lambda: run(runs), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
