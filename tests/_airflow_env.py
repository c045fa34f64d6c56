"""An Airflow command a test starts: this venv's ``airflow``, its own home and SQLite database, nothing of ours.

Every ``airflow ...`` subprocess of the tests (``dags test``, ``connections test``, ``standalone``) gets
the caller's environment without any ``AIRFLOW*`` variable, so the test session's own home, settings
and connections never leak into it, and then exactly the settings the test names.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: The ``airflow`` console script of the interpreter running the tests (the project's venv).
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))


def airflow_env(
    home: Path, dags_folder: Path | None = None, *, drop: tuple[str, ...] = (), **settings: str
) -> dict[str, str]:
    """``os.environ`` without ``AIRFLOW*`` (nor ``drop``-prefixed) variables, plus an isolated Airflow.

    :param home: ``AIRFLOW_HOME``; the SQLite metadata database is ``home/airflow.db``.
    :param dags_folder: ``[core] dags_folder``, when the command reads DAGs.
    :param drop: more variable-name prefixes to leave out (e.g. ``"OPENLINEAGE"``).
    :param settings: variables to set last (``AIRFLOW__...``, ``AIRFLOW_CONN_...``, anything).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", *drop))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONUNBUFFERED="1",
    )
    if dags_folder is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    env.update(settings)
    return env
