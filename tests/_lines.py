"""What differs between Airflow lines in the tests' own use of Airflow internals (not the provider's)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS

#: The Airflow 3 lines, for ``@pytest.mark.airflow_lines(*AIRFLOW_3_LINES, reason=...)``.
AIRFLOW_3_LINES = ("3.0", "3.1", "3.2", "3.3")


def dagbag_class() -> Any:
    """``DagBag``: ``airflow.dag_processing.dagbag`` from 3.2, ``airflow.models.dagbag`` before."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag
    return DagBag


def _upath_before_0_3() -> bool:
    from importlib.metadata import version

    from packaging.version import Version

    return Version(version("universal-pathlib")) < Version("0.3")


#: How ``ObjectStoragePath`` writes an fsspec memory URI back: ``memory:///bucket/key`` with
#: universal-pathlib < 0.3 (what Airflow 2.11-3.1 pin), ``memory://bucket/key`` from 0.3 on.
MEMORY_ROOT = "memory:///" if _upath_before_0_3() else "memory://"


def memory_uri(path: str) -> str:
    """``path`` (``bucket/key``) as this Airflow line's object storage spells a memory URI."""
    return MEMORY_ROOT + path


def attach(protocol: str, *, fs: Any) -> None:
    """Attach an fsspec filesystem to Airflow's object storage (``airflow.sdk.io``; 2.11: ``airflow.io.store``)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.providers.common.compat.sdk import io

        io.attach(protocol, fs=fs)
    else:
        from airflow.io.store import attach as attach_store

        attach_store(protocol, fs=fs)


def runtime_providers_manager() -> Any:
    """What task code and DAG parsing use to find providers' asset schemes, on this line."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime()
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def positional_arguments_error() -> type[Exception]:
    """What an operator given positional arguments raises: 2.11's ``apply_defaults`` refuses them
    with ``AirflowException`` before the operator's keyword-only signature can; 3.x: ``TypeError``."""
    if AIRFLOW_V_3_0_PLUS:
        return TypeError
    from airflow.exceptions import AirflowException

    return AirflowException


def outlet_event_accessors() -> Any:
    """An empty ``outlet_events`` mapping, as a task's context holds it on this line.

    3.x: ``airflow.sdk.execution_time.context`` (iterating gives the assets); 2.11:
    ``airflow.utils.context`` (iterating gives the datasets' URIs).
    """
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time.context import OutletEventAccessors
    else:
        from airflow.utils.context import OutletEventAccessors
    return OutletEventAccessors()


def outlet_event_keys(accessors: Any) -> list[str]:
    """The URIs of the assets (2.11: datasets) an ``outlet_events`` mapping was asked for, in order."""
    return [key if isinstance(key, str) else key.uri for key in accessors]


# ------------------------------------------------------------------- the in-process DAG harness


@contextlib.contextmanager
def _logging_kept(*names: str) -> Iterator[None]:
    """Put these loggers' handlers, level and propagation back as they were (2.11 rewires them)."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


def reset_metadata_db() -> None:
    """A fresh, migrated metadata DB; from 3.0 also the DAG bundles, which 2.11 does not have."""
    from airflow.utils import db

    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        db.resetdb()
        DagBundlesManager().sync_bundles_to_db()
        return
    # 2.11's migrations apply alembic.ini's logging config: the root logger at WARNING, with a
    # handler bound to the stderr of that moment (one test's capture). Later tests need theirs.
    with _logging_kept(""):
        db.resetdb()


def dag_test(dag: Any, *, logical_date: Any, run_conf: dict[str, Any] | None) -> Any:
    """``dag.test()`` once; returns the DagRun. 3.x: ``logical_date=`` (``None``: a run without one).

    2.11 names it ``execution_date=`` and has no runs without one (``None`` there means "now"), so a
    test asking for one must be marked for 3.x lines.
    """
    if AIRFLOW_V_3_0_PLUS:
        return dag.test(logical_date=logical_date, run_conf=run_conf)
    if logical_date is None:
        raise AssertionError("Airflow 2.11 has no runs without a logical date: mark the test for 3.x lines")
    # 2.11's dag.test() adds a stdout handler to the "airflow.task" logger once per process, bound to
    # the sys.stdout of that moment (one test's capture), and running a task turns that logger's
    # propagation off: put both back, so every later test sees its own task and hook logs.
    with _logging_kept("airflow.task"):
        return dag.test(execution_date=logical_date, run_conf=run_conf)


def xcom_rows_model() -> Any:
    """The XCom table's model, with a static ``deserialize_value(row)`` that reads ``row.value`` as
    stored: 3.x ``XComModel``; 2.11 ``XCom`` (the configured XCom backend class, same table)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel

        return XComModel
    from airflow.models.xcom import XCom

    return XCom
