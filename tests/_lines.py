"""What differs between Airflow lines in the tests' own use of Airflow internals (not the provider's)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_2_PLUS


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
    from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS

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
    from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        return TypeError
    from airflow.exceptions import AirflowException

    return AirflowException


#: The Airflow 3 lines, for ``airflow_lines`` markers of tests that need Airflow 3.
AIRFLOW_3_LINES = ("3.0", "3.1", "3.2", "3.3")

#: The marker of the operator tests that hand operators Airflow 3's ``OutletEventAccessors``.
OPERATORS_ON_AIRFLOW_3 = pytest.mark.airflow_lines(
    *AIRFLOW_3_LINES, reason="drives the operators with Airflow 3's OutletEventAccessors; not ported to 2.11"
)
