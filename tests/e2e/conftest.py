"""Run real DAGs with ``dag.test()`` against the emulator and read back what they pushed to XCom.

The Airflow environment (home, SQLite file, dags folder = ``example_dags/``) is set in
``tests/conftest.py`` before airflow is imported; here the metadata DB is created once per session.
The ``deployment`` tests share one real ``airflow standalone`` (``standalone``), started on first use.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _standalone import STANDALONE_KEY, Standalone, run_standalone
from dagrun_helpers import DagRunResult, collect_run

from airflow_provider_bctrl.testing._wait import session_members
from airflow_provider_bctrl.testing.emulator import BctrlEmulator
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO_ROOT / "example_dags"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh, migrated metadata DB for this session (SQLite under the throwaway AIRFLOW_HOME)."""
    from _lines import reset_metadata_db

    reset_metadata_db()


def _register(dag: Any) -> None:
    """Write a DAG to the metadata DB as the DAG processor does: DAG row, serialized DAG, its assets.

    ``run_dag`` calls this for DAGs defined in a test module, which ``dag.test()`` would not find in
    the dags folder. Airflow 3.0's ``dag.test()`` registers nothing at all, so on 3.0 tests call it for
    example DAGs too when they need what registration brings (active assets, schedule references).
    Same call as 3.0's DAG processor (``_parse_file`` + ``process_parse_results``): the DAG serialized
    to a dict, wrapped in ``LazyDeserializedDAG``, handed to ``update_dag_parsing_results_in_db``,
    which writes the DAG, its version and its assets and activates the assets.

    Airflow 2.11's ``dag.test()`` runs the DAG object it is handed (no bundles, nothing to register).
    """
    if not AIRFLOW_V_3_0_PLUS:
        return
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG, SerializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        if AIRFLOW_V_3_1_PLUS:
            update_dag_parsing_results_in_db(
                "dags-folder",
                None,
                [LazyDeserializedDAG.from_dag(dag)],
                {},
                None,
                set(),
                session=session,
                files_parsed=set(),
            )
        else:
            if dag.relative_fileloc is None:
                # 3.0's DagBag sets it while parsing (a file outside any bundle keeps its full path);
                # a DAG built in a test module has none, and the DAG table needs one.
                dag.relative_fileloc = dag.fileloc
            update_dag_parsing_results_in_db(
                "dags-folder",
                None,
                [LazyDeserializedDAG(data=SerializedDAG.to_dict(dag))],
                {},
                set(),
                session=session,
            )


@pytest.fixture
def register_dag(airflow_db: None) -> Callable[[Any], None]:
    """:func:`_register`, for a test that must put a DAG into the metadata DB itself (Airflow 3.0)."""
    return _register


_run_counter = itertools.count(1)
#: run_dag's default: a fresh logical date per call. Pass ``logical_date=None`` for a run without one.
AUTO = object()


@pytest.fixture
def run_dag(airflow_db: None, bctrl_conn_env: str) -> Callable[..., DagRunResult]:
    """Run a DAG once with ``dag.test()`` and return a :class:`DagRunResult`.

    DAGs from ``example_dags/`` are found by Airflow itself; DAGs built in a test are registered first.
    Each call gets its own logical date (2030-01-01 plus one day per call) unless one is given, so
    runs never replace each other. ``logical_date=None`` makes a run without a logical date, like a
    trigger from the UI or REST API with ``"logical_date": null`` (no ``ds`` in its context); Airflow
    2.11 has no such runs, so tests that ask for one are marked for the 3.x lines.
    """
    import pendulum
    from _lines import dag_test

    def run(dag: Any, *, conf: dict[str, Any] | None = None, logical_date: Any = AUTO) -> DagRunResult:
        if not Path(dag.fileloc).resolve().is_relative_to(EXAMPLE_DAGS):
            _register(dag)
        if logical_date is AUTO:
            logical_date = pendulum.datetime(2030, 1, 1, tz="UTC").add(days=next(_run_counter))
        dagrun = dag_test(dag, logical_date=logical_date, run_conf=conf)
        return collect_run(dag.dag_id, dagrun.run_id)

    return run


@pytest.fixture
def load_example(airflow_db: None) -> Callable[[str], Any]:
    """Parse ``example_dags/<dag_id>.py`` afresh and return that DAG.

    A fresh parse per test matters: ``dag.test()`` runs tasks in this process, and a run's params
    can otherwise linger on a DAG object shared between tests.
    """
    from _lines import dagbag_class

    DagBag = dagbag_class()

    def load(dag_id: str) -> Any:
        bag = DagBag(dag_folder=str(EXAMPLE_DAGS / f"{dag_id}.py"))
        assert not bag.import_errors, bag.import_errors
        return bag.dags[dag_id]

    return load


# ------------------------------------------------------------------ one real deployment per session


@pytest.fixture(scope="session")
def standalone_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BctrlEmulator]:
    """The emulator in a child process of its own, as a deployment would reach a separate service."""
    with BctrlEmulator(
        api_key=STANDALONE_KEY, data_dir=tmp_path_factory.mktemp("standalone-emulator"), in_process=False
    ) as emu:
        yield emu


@pytest.fixture(scope="session")
def standalone(
    standalone_emulator: BctrlEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Standalone]:
    """One ``airflow standalone`` (scheduler, LocalExecutor, dag-processor, triggerer, api-server) for
    every ``deployment`` test, with the example DAGs and the emulator as ``bctrl_default``.

    Shared because a bring-up costs a minute on two busy cores; tests keep apart by DAG and run id.
    """
    with run_standalone(
        tmp_path_factory.mktemp("standalone-home"),
        EXAMPLE_DAGS,
        {"AIRFLOW_CONN_BCTRL_DEFAULT": standalone_emulator.airflow_connection_json()},
    ) as running:
        yield running
    left = session_members(running.process.pid)
    assert not left, f"airflow standalone left processes behind: {left}"
