"""The runtime operators' shape and the Idempotency-Key derivation (runs against BCTRL are in tests/e2e)."""

from __future__ import annotations

import pytest
from _lines import positional_arguments_error

from airflow_provider_bctrl import get_provider_info
from airflow_provider_bctrl.operators import BctrlStartRuntimeOperator, BctrlStopRuntimeOperator
from airflow_provider_bctrl.operators.runtimes import idempotency_key_for


def test_templated_fields_and_no_io_at_init() -> None:
    start = BctrlStartRuntimeOperator(task_id="s", runtime_id="{{ params.rt }}", bctrl_conn_id="missing")
    stop = BctrlStopRuntimeOperator(task_id="t", runtime_id="{{ params.rt }}", bctrl_conn_id="missing")
    # hook_params (issue 15) is templated on every BCTRL operator, these two included.
    assert set(start.template_fields) == {"runtime_id", "idempotency_key", "bctrl_conn_id", "hook_params"}
    assert set(stop.template_fields) == {"runtime_id", "bctrl_conn_id", "hook_params"}
    assert start.push_connect_url is False
    assert "hook" not in start.__dict__
    assert "hook" not in stop.__dict__
    with pytest.raises(positional_arguments_error()):
        BctrlStartRuntimeOperator("rt", task_id="s")  # type: ignore[misc]


def test_key_is_readable_and_the_same_for_every_try() -> None:
    key = idempotency_key_for("etl", "manual__2031-03-14T09:00:00+00:00", "start_runtime", -1)
    assert key == "airflow:etl:manual__2031-03-14T09:00:00+00:00:start_runtime:-1"
    assert key == idempotency_key_for("etl", "manual__2031-03-14T09:00:00+00:00", "start_runtime", -1)
    assert key != idempotency_key_for("etl", "manual__2031-03-14T09:00:00+00:00", "start_runtime", 0)
    assert key != idempotency_key_for("etl", "scheduled__2031-03-15T00:00:00+00:00", "start_runtime", -1)


@pytest.mark.parametrize("run_id", ["r" * 300, "manual__ünïcode", "tab\there"])
def test_long_or_unusual_keys_are_hashed_to_a_valid_header(run_id: str) -> None:
    key = idempotency_key_for("dag", run_id, "start", 3)
    assert key.startswith("airflow-sha256:")
    assert len(key) <= 255
    assert key.isascii()
    assert key.isprintable()
    assert key == idempotency_key_for("dag", run_id, "start", 3)


def test_provider_info_lists_the_new_modules() -> None:
    info = get_provider_info()
    operators = {m for item in info["operators"] for m in item["python-modules"]}
    assert "airflow_provider_bctrl.operators.runtimes" in operators
    assert info["triggers"][0]["python-modules"] == ["airflow_provider_bctrl.triggers.bctrl"]
