"""Which Airflow line is installed, read from package metadata (importing Airflow is not needed).

The provider's own answer to "what can this Airflow do", in the spirit of the official providers'
``version_compat`` modules. Import paths that moved between lines are not decided here: they come from
``airflow.providers.common.compat``.
"""

from __future__ import annotations

from importlib.metadata import version

from packaging.version import Version


def airflow_version() -> tuple[int, int, int]:
    """``(major, minor, micro)`` of the installed apache-airflow."""
    release = Version(version("apache-airflow")).release
    major, minor, micro = (*release, 0, 0)[:3]
    return major, minor, micro


AIRFLOW_V_3_0_PLUS: bool = airflow_version() >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS: bool = airflow_version() >= (3, 1, 0)
AIRFLOW_V_3_2_PLUS: bool = airflow_version() >= (3, 2, 0)
AIRFLOW_V_3_3_PLUS: bool = airflow_version() >= (3, 3, 0)

__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "airflow_version",
]
