"""`make dist`'s content check: the wheel in dist/ holds what a user needs, and nothing of the repo's own.

Checks one wheel and one sdist (both must exist): the wheel has ``py.typed``, the hook, the operators,
the emulator and its client, and the pytest plugin; its entry points register the provider with Airflow
and the plugin with pytest; it contains no tests, example DAGs, benchmarks or scripts. Prints what it
checked; exits 1 naming every problem.
"""

from __future__ import annotations

import argparse
import configparser
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "airflow_provider_bctrl"
#: Files the wheel must contain (what users import, plus the PEP 561 marker for their type checkers).
REQUIRED = (
    f"{PACKAGE}/__init__.py",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/hooks/bctrl.py",
    f"{PACKAGE}/operators/__init__.py",
    f"{PACKAGE}/operators/files.py",
    f"{PACKAGE}/operators/runtime_files.py",
    f"{PACKAGE}/testing/emulator.py",
    f"{PACKAGE}/testing/_emulator_app.py",
    f"{PACKAGE}/testing/client.py",
    f"{PACKAGE}/testing/pytest_plugin.py",
)
#: Top-level folders of the repository that must never ship in the wheel.
FORBIDDEN_TOP = ("tests", "example_dags", "benchmarks", "scripts", "docs")
ENTRY_POINTS = {
    "apache_airflow_provider": "provider_info",
    "pytest11": "bctrl",
}


def check_wheel(wheel: Path) -> list[str]:
    """Problems with ``wheel``'s contents (empty when it is fine)."""
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        problems += [f"{wheel.name}: missing {required}" for required in REQUIRED if required not in names]
        for name in names:
            top = name.split("/", 1)[0]
            if top in FORBIDDEN_TOP or "/tests/" in name or name.endswith("conftest.py"):
                problems.append(f"{wheel.name}: must not contain {name}")
        entry_files = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        if len(entry_files) != 1:
            return [*problems, f"{wheel.name}: expected one entry_points.txt, found {entry_files}"]
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(entry_files[0]).decode())
    for group, name in ENTRY_POINTS.items():
        if not parser.has_option(group, name):
            problems.append(f"{wheel.name}: entry point [{group}] {name} is missing")
    return problems


def check_sdist(sdist: Path) -> list[str]:
    """Problems with the sdist (it must build the same package: pyproject, README and the sources)."""
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = ("pyproject.toml", "README.md", f"{PACKAGE}/py.typed", f"{PACKAGE}/testing/emulator.py")
    return [f"{sdist.name}: missing {name}" for name in needed if name not in names]


def main(argv: list[str] | None = None) -> int:
    """Check the wheel and sdist in the given folder; print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", nargs="?", default="dist", help="the folder python -m build wrote")
    args = parser.parse_args(argv)
    folder = Path(args.dist)
    wheels, sdists = sorted(folder.glob("*.whl")), sorted(folder.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(
            f"ERROR: expected one wheel and one sdist in {folder}, found {wheels + sdists}", file=sys.stderr
        )
        return 1
    problems = check_wheel(wheels[0]) + check_sdist(sdists[0])
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"==> {wheels[0].name}: {len(REQUIRED)} required files incl. py.typed and the emulator, "
        "entry points for Airflow and pytest, no tests/examples/scripts"
    )
    print(f"==> {sdists[0].name}: pyproject.toml, README.md and the package sources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
