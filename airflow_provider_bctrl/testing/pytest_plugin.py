"""pytest fixtures for testing your own BCTRL DAGs offline, against the local emulator.

Installed with the provider (entry point ``pytest11``), so the fixtures are there in any project that
has ``airflow-provider-bctrl`` installed — no import needed::

    def test_my_pipeline(bctrl_emulator):
        bctrl_emulator.write_runtime_file(bctrl_emulator.runtime_id, "/tmp/out/report.csv", b"a,b\\n")
        dag.test(run_conf={"runtime_id": bctrl_emulator.runtime_id})
        # The emulator serves the whole session: look for this test's file, not at the whole store.
        assert "report.csv" in [f["name"] for f in bctrl_emulator.stored_files()]

Fixtures:

``bctrl_emulator``
    A running emulator, a fresh runtime in it (``.runtime_id``) and the Airflow connection
    ``bctrl_conn_id`` (default ``bctrl_default``) pointing at it through ``AIRFLOW_CONN_...``.
    Faults and the request log are cleared before each test.
``bctrl_emulator_server``
    The emulator process behind it: one per test session, in this process, on a free loopback port.
``bctrl_conn_id``
    The connection id to set up; override this fixture to use another.

Nothing heavy is imported until a fixture is used, so the plugin costs other test suites nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_bctrl.testing.emulator import BctrlEmulator

__all__ = ["BctrlEmulatorFixture", "bctrl_conn_id", "bctrl_emulator", "bctrl_emulator_server"]

#: The key the session emulator accepts; it only ever guards a loopback test server.
PLUGIN_API_KEY = "bctrl_pytest_emulator_key"


@dataclass
class BctrlEmulatorFixture:
    """What the ``bctrl_emulator`` fixture gives a test: the emulator, a runtime, and a connection.

    Attribute access falls through to the :class:`~airflow_provider_bctrl.testing.emulator.BctrlEmulator`,
    so ``bctrl_emulator.stored_files()``, ``.write_runtime_file(...)``, ``.add_fault(...)``, ``.url``
    and the rest work directly.
    """

    emulator: BctrlEmulator
    runtime_id: str
    conn_id: str

    def __getattr__(self, name: str) -> Any:
        if name == "emulator":  # not set yet (e.g. while copying): no endless recursion
            raise AttributeError(name)
        return getattr(self.emulator, name)

    def new_runtime(self, space_id: str | None = None) -> str:
        """Create one more runtime (e.g. for a DAG that moves files between two runtimes)."""
        return self.emulator.create_runtime(space_id=space_id)


@pytest.fixture(scope="session")
def bctrl_emulator_server() -> Iterator[BctrlEmulator]:
    """One BCTRL emulator for the whole test session, on a free loopback port in this process."""
    from airflow_provider_bctrl.testing.emulator import BctrlEmulator

    with BctrlEmulator(api_key=PLUGIN_API_KEY) as emulator:  # its temporary data dir goes with it
        yield emulator


@pytest.fixture
def bctrl_conn_id() -> str:
    """The Airflow connection id ``bctrl_emulator`` points at the emulator. Override to change it."""
    return "bctrl_default"


@pytest.fixture
def bctrl_emulator(
    bctrl_emulator_server: BctrlEmulator, bctrl_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BctrlEmulatorFixture]:
    """A ready runtime in a running emulator, with the Airflow connection ``bctrl_conn_id`` set to it."""
    emulator = bctrl_emulator_server
    emulator.clear_faults()
    emulator.clear_requests_log()
    monkeypatch.setenv(f"AIRFLOW_CONN_{bctrl_conn_id.upper()}", emulator.airflow_connection_json())
    yield BctrlEmulatorFixture(emulator=emulator, runtime_id=emulator.create_runtime(), conn_id=bctrl_conn_id)
    emulator.clear_faults()
