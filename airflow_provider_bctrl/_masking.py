"""Keep the API key out of the ``dag.test()`` debug log of Airflow 3.x.

The in-process task supervisor (used by ``dag.test()`` and ``airflow dags test``) logs every request a
task sends it at DEBUG, ``Sending request msg=MaskSecret(value=...)`` included. 3.0's ``mask_secret``
sends that request before it adds the value to the secrets masker; 3.1 and later add it first, but the
masker does not look inside the message object. Either way fetching a connection logs its password in
clear text, whichever provider fetches it (measured here on 3.1 and 3.2, and on 3.3.2 with this
provider's layered hook: tests/e2e/test_external_dag_cli.py). Real workers' task runners do not log
their requests.

:func:`guard_mask_secret_requests` wraps that supervisor's logger, on every 3.x line, so a
``MaskSecret`` request is logged without its value. The hook calls it before it fetches its
connection, and :func:`airflow_provider_bctrl._settings.mask` before it masks anything.
"""

from __future__ import annotations

import sys
from typing import Any

from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS


class _MaskSecretSafeLog:
    """A structlog logger proxy that logs ``MaskSecret`` requests without their value."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def debug(self, event: str, *args: Any, **kwargs: Any) -> Any:
        msg = kwargs.get("msg")
        if type(msg).__name__ == "MaskSecret":
            kwargs["msg"] = f"MaskSecret(value='***', name={getattr(msg, 'name', None)!r})"
        return self._log.debug(event, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def guard_mask_secret_requests() -> None:
    """On Airflow 3.x inside ``dag.test()``: make the in-process supervisor log ``MaskSecret`` masked."""
    if not AIRFLOW_V_3_0_PLUS:
        return
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms: Any = getattr(task_runner, "SUPERVISOR_COMMS", None)
    # Only the in-process comms log their requests; a worker's socket comms do not.
    if type(comms).__name__ != "InProcessSupervisorComms" or isinstance(comms.log, _MaskSecretSafeLog):
        return
    comms.log = _MaskSecretSafeLog(comms.log)
