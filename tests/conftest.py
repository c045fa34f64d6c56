"""Shared fixtures: a throwaway Airflow home, a running BCTRL emulator, fresh runtimes.

Airflow reads its configuration when it is first imported, so the environment is set here, at
conftest import, before any test module imports airflow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="bctrl-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parent.parent / "example_dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

import pytest  # noqa: E402

from airflow_provider_bctrl.testing.emulator import BctrlEmulator  # noqa: E402

#: A distinctive key: secret-leak tests grep for it in logs, errors and XComs.
TEST_API_KEY = "bctrl_test_Kq7ZsecretXx93"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BctrlEmulator]:
    """One emulator for the whole session, on a free loopback port, in this process."""
    with BctrlEmulator(api_key=TEST_API_KEY, data_dir=tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


@pytest.fixture
def emu(emulator: BctrlEmulator) -> Iterator[BctrlEmulator]:
    """The session emulator with no queued faults before and after the test."""
    emulator.clear_faults()
    yield emulator
    emulator.clear_faults()


@pytest.fixture
def runtime_id(emu: BctrlEmulator) -> str:
    """A fresh runtime in the emulator's default space."""
    return emu.create_runtime()


@pytest.fixture
def bctrl_conn_env(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the ``bctrl_default`` connection at the emulator through the environment."""
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_DEFAULT", emu.airflow_connection_json())
    return "bctrl_default"


# ------------------------------------------------------------------------- Airflow lines


def airflow_line() -> str:
    """The running Airflow's release line, e.g. ``"3.1"`` (read from package metadata: no airflow import)."""
    from importlib.metadata import version

    major, minor = version("apache-airflow").split(".")[:2]
    return f"{major}.{minor}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect, never skip, a test whose ``airflow_lines`` marker excludes the running line.

    The deselected tests and their reasons are printed at the end of the run, so a leg of the CI
    matrix says exactly what it did not run and why.
    """
    line = airflow_line()
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("airflow_lines")
        if marker is None or line in marker.args:
            kept.append(item)
            continue
        reason = marker.kwargs.get("reason")
        assert reason, f"{item.nodeid}: @pytest.mark.airflow_lines needs reason=..."
        dropped.append((item, reason))
    if dropped:
        config.hook.pytest_deselected(items=[item for item, _ in dropped])
        items[:] = kept
        config.stash[_DESELECTED] = [(item.nodeid, reason) for item, reason in dropped]


_DESELECTED = pytest.StashKey[list[tuple[str, str]]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """List the tests this Airflow line does not run, with the marker's reason."""
    dropped = config.stash.get(_DESELECTED, [])
    if dropped:
        terminalreporter.section(f"deselected on Airflow {airflow_line()} (airflow_lines marker)")
        for nodeid, reason in dropped:
            terminalreporter.write_line(f"{nodeid}: {reason}")
