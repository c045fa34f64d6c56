"""Waiting for a runtime file before collecting it: in the worker, or deferred to the triggerer.

Used by :class:`~airflow_provider_bctrl.operators.runtime_files.BctrlCollectFileOperator` with
``wait_for_file=True``. Both ways poll the collect endpoint itself, which is safe: while the runtime
has no file at the path, BCTRL answers 404 ``runtime_file.not_found`` and stores nothing, so the
first poll that finds the file is the one and only collect. Any other error ends the wait at once.

- In the worker (``deferrable=False``): :func:`collect_when_present` polls with the hook, sleeping
  ``poke_interval`` between polls, for at most ``timeout`` seconds. It holds a worker slot.
- Deferred (``deferrable=True``): :func:`defer_collect` hands the wait to
  :class:`~airflow_provider_bctrl.triggers.bctrl.BctrlRuntimeFileTrigger`; the task resumes on a worker
  with the trigger's event, which :func:`collected_from_event` turns into the collect result (or the
  error, with its type) without another request.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_bctrl.exceptions import BctrlFileWaitTimeoutError, BctrlInputError

if TYPE_CHECKING:
    from airflow_provider_bctrl._arguments import CollectArguments
    from airflow_provider_bctrl.hooks.bctrl import BctrlHook
    from airflow_provider_bctrl.models import CollectedFile
    from airflow_provider_bctrl.operators._base import BctrlBaseOperator

#: Shortest poll interval accepted, in seconds (a busy loop against the API helps nobody).
MIN_POKE_INTERVAL = 0.1
#: How much longer than ``timeout`` Airflow's own deferral timeout is: the trigger's deadline fires
#: first with a clear message; Airflow's is the backstop if the triggerer is gone for good.
DEFERRAL_GRACE = timedelta(minutes=5)


def check_wait_arguments(poke_interval: Any, timeout: Any) -> tuple[float, float]:
    """``(poke_interval, timeout)`` as positive seconds; ``BctrlInputError`` naming what is wrong."""
    values = []
    for name, value, minimum in (
        ("poke_interval", poke_interval, MIN_POKE_INTERVAL),
        ("timeout", timeout, 0.0),
    ):
        if isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise BctrlInputError(f"{name} must be a number of seconds or a timedelta, got {value!r}.")
        if value < minimum or (name == "timeout" and value <= 0):
            raise BctrlInputError(f"{name} must be at least {minimum:g} seconds and positive, got {value!r}.")
        values.append(float(value))
    return values[0], values[1]


def timeout_message(runtime_id: str, path: str, timeout: float, polls: int) -> str:
    """What a wait that ran out says."""
    return (
        f"No file at {path!r} in runtime {runtime_id} after waiting {timeout:g} s ({polls} polls). "
        "Nothing was collected. Did the browser write it elsewhere, or does it need a longer timeout?"
    )


def collect_when_present(
    hook: BctrlHook, args: CollectArguments, *, poke_interval: float, timeout: float, log: Any
) -> CollectedFile:
    """Poll collect in this process until the file is there (then that poll is the collect)."""
    from airflow_provider_bctrl.exceptions import BctrlNotFoundError
    from airflow_provider_bctrl.triggers.bctrl import WAIT_CODES

    deadline = time.monotonic() + timeout
    polls = 0
    while True:  # bounded by the deadline; every pass sleeps at least MIN_POKE_INTERVAL
        polls += 1
        try:
            return hook._collect(args)
        except BctrlNotFoundError as exc:
            if exc.code not in WAIT_CODES:
                raise
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BctrlFileWaitTimeoutError(timeout_message(args.runtime_id, args.path, timeout, polls))
        log.info("No file at %s yet (poll %d); next poll in %.1f s", args.path, polls, poke_interval)
        time.sleep(min(poke_interval, remaining))


def defer_collect(
    operator: BctrlBaseOperator, args: CollectArguments, *, poke_interval: float, timeout: float
) -> None:
    """Defer ``operator`` to the triggerer until the file is collected; resumes in ``execute_complete``.

    ``args.space_id`` must be set: the trigger does no whoami of its own.
    """
    from airflow_provider_bctrl.triggers.bctrl import BctrlRuntimeFileTrigger

    if args.space_id is None:
        raise BctrlInputError("Waiting in the triggerer needs a space id; resolve the default space first.")
    trigger = BctrlRuntimeFileTrigger(
        bctrl_conn_id=operator.bctrl_conn_id,
        runtime_id=args.runtime_id,
        space_id=args.space_id,
        path=args.path,
        deadline=time.time() + timeout,
        poke_interval=poke_interval,
        storage_path=args.storage_path,
        name=args.name,
        artifact=args.artifact,
        hook_params=operator._checked_hook_params,
    )
    operator.log.info(
        "Deferring: the triggerer waits up to %g s for %s in runtime %s", timeout, args.path, args.runtime_id
    )
    operator.defer(
        trigger=trigger,
        method_name="execute_complete",
        kwargs={"space_id": args.space_id},  # execute_complete needs no whoami to name the space
        timeout=timedelta(seconds=timeout) + DEFERRAL_GRACE,
    )


def collected_from_event(event: Any, *, runtime_id: str, path: str, timeout: float) -> CollectedFile:
    """The collect result the trigger's event carries; raises what the trigger met, with its type."""
    from airflow_provider_bctrl import exceptions
    from airflow_provider_bctrl.exceptions import BctrlApiError, BctrlError, BctrlUnexpectedResponseError
    from airflow_provider_bctrl.models import CollectedFile

    if not isinstance(event, dict):
        raise BctrlUnexpectedResponseError(f"The BCTRL trigger sent no event for {path!r}: {event!r}")
    status = event.get("status")
    if status == "success":
        return CollectedFile.from_api(event["collected"])
    if status == "timeout":
        raise BctrlFileWaitTimeoutError(
            timeout_message(runtime_id, path, timeout, int(event.get("polls", 0)))
        )
    cls = getattr(exceptions, str(event.get("error_class")), None)
    message = str(event.get("message") or "The BCTRL trigger failed without a message.")
    if isinstance(cls, type) and issubclass(cls, BctrlApiError):
        raise cls(
            message,
            status=event.get("api_status"),
            code=event.get("api_code"),
            error=event.get("api_error"),
            reason_class=event.get("api_reason_class"),
            hint=event.get("api_hint"),
            request_id=event.get("api_request_id"),
            details=event.get("api_details"),
            retry_after=event.get("api_retry_after"),
        )
    if isinstance(cls, type) and issubclass(cls, BctrlError):
        raise cls(message)
    raise BctrlError(f"Waiting for {path!r} in runtime {runtime_id} failed: {message}")
