"""Shared fixtures: a throwaway Airflow home, a running BCTRL emulator, fresh runtimes.

Airflow reads its configuration when it is first imported, so the environment is set here, at
conftest import, before any test module imports airflow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
