"""Operators that own a BCTRL runtime's life in a DAG: start it as a setup task, stop it as a teardown.

::

    start = BctrlStartRuntimeOperator(task_id="start", runtime_id="{{ params.runtime_id }}")
    stop = BctrlStopRuntimeOperator(task_id="stop", runtime_id="{{ params.runtime_id }}")
    start >> work >> stop.as_teardown(setups=start)

Start is billable, so :class:`BctrlStartRuntimeOperator` sends an ``Idempotency-Key`` derived from the
task instance (dag id, run id, task id, map index): an Airflow retry of the task, or the hook's own
retry of a start whose answer was lost, gets the run the first attempt started instead of a second.

Like the file operators, this module imports neither ``requests`` nor the hook at module level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_bctrl import DEFAULT_CONN_ID
from airflow_provider_bctrl._validation import MAX_IDEMPOTENCY_KEY, check_id, check_idempotency_key
from airflow_provider_bctrl.exceptions import BctrlError
from airflow_provider_bctrl.operators._base import BctrlBaseOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_bctrl.models import RuntimeStarted

__all__ = ["BctrlStartRuntimeOperator", "BctrlStopRuntimeOperator", "idempotency_key_for"]

#: XCom keys pushed by the start operator in addition to ``return_value`` (the run id).
XCOM_RUN_ID = "run_id"
XCOM_RUNTIME_ID = "runtime_id"
XCOM_CONNECT_URL = "connect_url"
#: How many ended runs a start may step past (one per earlier clear of the same DAG run).
MAX_KEY_HOPS = 20


def idempotency_key_for(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """The ``Idempotency-Key`` of a task instance's start: the same for every try of that instance.

    Readable (``airflow:<dag>:<run>:<task>:<map index>``) when it fits the header, else a SHA-256 of
    the same text, so it is always at most 255 printable ASCII characters.
    """
    text = f"airflow:{dag_id}:{run_id}:{task_id}:{map_index}"
    if len(text) <= MAX_IDEMPOTENCY_KEY and text.isascii() and text.isprintable():
        return text
    return "airflow-sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _next_key(key: str, ended_run_id: str) -> str:
    # Deterministic, so a retry of this very start computes the same key again.
    return "airflow-sha256:" + hashlib.sha256(f"{key}|after:{ended_run_id}".encode()).hexdigest()


class BctrlStartRuntimeOperator(BctrlBaseOperator):
    """Start a BCTRL runtime (open a run) and return the run id; meant as a DAG's setup task.

    A runtime that is already running answers its active run, so starting twice never opens a second
    run. The ``Idempotency-Key`` defaults to one derived from the dag id, run id, task id and map
    index: every try of the task instance sends the same key, so an Airflow retry after a crash gets
    the run the first try started. If the run that key started has ended meanwhile (the DAG run was
    cleared and runs again after its teardown stopped the runtime), a new key is derived from the
    ended run's id, deterministically, so the new start is idempotent as well.

    XCom: ``return_value`` is the run id; ``run_id`` and ``runtime_id`` are pushed as well. The
    connect URL (whoever holds it can drive the browser) is masked in logs and **not** pushed unless
    ``push_connect_url=True``: XCom values are stored in plain text in the metadata database and shown
    in the UI and REST API. A task that needs it can ask for it where it is used:
    ``BctrlHook().start_runtime(runtime_id).connect_url`` answers the active run without opening
    another one.

    .. seealso::
        ``docs/operators/start_runtime.md``.

    :param runtime_id: the runtime to start. (templated)
    :param idempotency_key: the ``Idempotency-Key`` to send; default: derived from the task instance
        (see :func:`idempotency_key_for`). (templated)
    :param push_connect_url: also push the connect URL under the XCom key ``connect_url``; off by
        default because XCom is not a secret store.
    :param bctrl_conn_id: the Airflow connection of type ``bctrl`` to use. (templated)
    :param hook_params: per-task ``timeout``, ``max_retries`` and ``max_retry_wait`` for the hook,
        overriding the connection's (see :class:`~airflow_provider_bctrl._arguments.HookParams`).
        (templated)
    """

    template_fields: Sequence[str] = ("runtime_id", "idempotency_key", "bctrl_conn_id", "hook_params")
    ui_color = "#c9f0d4"

    def __init__(
        self,
        *,
        runtime_id: str,
        idempotency_key: str | None = None,
        push_connect_url: bool = False,
        bctrl_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(bctrl_conn_id=bctrl_conn_id, **kwargs)
        self.runtime_id = runtime_id
        self.idempotency_key = idempotency_key
        self.push_connect_url = push_connect_url

    def _key(self, context: Context) -> str:
        if self.idempotency_key:
            return check_idempotency_key(self.idempotency_key, "idempotency_key")
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return idempotency_key_for(ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else map_index)

    def execute(self, context: Context) -> str:
        """Start the runtime; return the run id and push ``run_id``/``runtime_id``."""
        runtime_id = check_id(self.runtime_id, "runtime_id")
        key = self._key(context)
        started = self._start(runtime_id, key)
        values: dict[str, Any] = {XCOM_RUN_ID: started.run_id, XCOM_RUNTIME_ID: runtime_id}
        if self.push_connect_url and started.connect_url:
            values[XCOM_CONNECT_URL] = started.connect_url
        self._push_keys(context, values)
        return started.run_id

    def _start(self, runtime_id: str, key: str) -> RuntimeStarted:
        for _ in range(MAX_KEY_HOPS):  # bounded: one hop per earlier clear of this DAG run
            started = self.hook.start_runtime(runtime_id, idempotency_key=key)
            # A replayed key answers the run it started, which may have ended since (a server may
            # even replay the first answer verbatim, "active" included): the runtime says which run
            # is active now.
            if self.hook.get_runtime(runtime_id).active_run_id == started.run_id:
                return started
            self.log.info(
                "Run %s that Idempotency-Key %s started has ended; starting with a key derived from it",
                started.run_id,
                key,
            )
            key = _next_key(key, started.run_id)
        raise BctrlError(
            f"Runtime {runtime_id}: {MAX_KEY_HOPS} earlier runs of this task instance have ended; "
            "pass an explicit idempotency_key to start a new one."
        )


class BctrlStopRuntimeOperator(BctrlBaseOperator):
    """Stop a BCTRL runtime; meant as the teardown of the task that started it.

    Use it with ``.as_teardown(setups=start)``: it then runs when the work in between failed too,
    and a failing teardown does not decide the DAG run's state. Stopping a runtime that is not
    running (409 ``runtime.not_active``) is success: the goal, a stopped runtime, holds.

    XCom: ``return_value`` is the API's stop response JSON (``runId``, ``runtimeId``, ``status``,
    ``stopped``), or ``{"runId": None, "runtimeId": ..., "status": "stopped", "stopped": False}``
    when it was already stopped.

    .. seealso::
        ``docs/operators/stop_runtime.md``.

    :param runtime_id: the runtime to stop. (templated)
    :param bctrl_conn_id: the Airflow connection of type ``bctrl`` to use. (templated)
    :param hook_params: per-task ``timeout``, ``max_retries`` and ``max_retry_wait`` for the hook,
        overriding the connection's (see :class:`~airflow_provider_bctrl._arguments.HookParams`).
        (templated)
    """

    template_fields: Sequence[str] = ("runtime_id", "bctrl_conn_id", "hook_params")
    ui_color = "#f5d5d0"

    def __init__(self, *, runtime_id: str, bctrl_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(bctrl_conn_id=bctrl_conn_id, **kwargs)
        self.runtime_id = runtime_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Stop the runtime; a runtime that is not running counts as stopped."""
        from airflow_provider_bctrl.exceptions import BctrlRuntimeNotActiveError

        runtime_id = check_id(self.runtime_id, "runtime_id")
        try:
            return self.hook.stop_runtime(runtime_id).raw
        except BctrlRuntimeNotActiveError as exc:
            self.log.info(
                "Runtime %s was not running (%s, request id %s): nothing to stop",
                runtime_id,
                exc.code,
                exc.request_id,
            )
            return {"runId": None, "runtimeId": runtime_id, "status": "stopped", "stopped": False}
