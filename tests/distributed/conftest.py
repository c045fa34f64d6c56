"""The distributed leg runs in its own venv (.venv-celery, `make test-distributed`): say so if it is not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The stack launcher is shared with `make demo-celery`; it lives in scripts/.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


@pytest.hookimpl(trylast=True)  # after -m has deselected what is not asked for
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Selecting a distributed test without the Celery/S3 packages stops pytest, naming the command to use."""
    import importlib.util

    if not any(item.get_closest_marker("distributed") for item in items):
        return
    missing = [m for m in ("celery", "psycopg2", "moto", "s3fs") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    reason = (
        f"{', '.join(missing)} not installed in {sys.prefix}: the distributed test runs in .venv-celery; "
        "use `make test-distributed` (or deselect it with -m 'not distributed')."
    )
    raise pytest.UsageError(reason)
