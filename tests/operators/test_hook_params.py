"""``hook_params``: per-task timeout and retry settings, checked before any request, applied for real.

The effect tests run the operators' real ``execute`` against the emulator with injected faults, and
count the requests the emulator received.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from pathlib import Path
from typing import Any

import pytest
from _lines import outlet_event_accessors
from airflow.providers.common.compat.sdk import DAG, TaskDeferred

from airflow_provider_bctrl.exceptions import BctrlInputError, BctrlServerError, BctrlTransportError
from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.operators import (
    BctrlCollectFileOperator,
    BctrlDownloadFileOperator,
    BctrlStageFileOperator,
    BctrlStartRuntimeOperator,
    BctrlStopRuntimeOperator,
    BctrlUploadFileOperator,
)
from airflow_provider_bctrl.operators._base import check_hook_params
from airflow_provider_bctrl.testing.emulator import BctrlEmulator
from airflow_provider_bctrl.triggers.bctrl import BctrlRuntimeFileTrigger

OPERATORS: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "upload": (BctrlUploadFileOperator, {"runtime_id": "rt_1", "source": __file__}),
    "collect": (BctrlCollectFileOperator, {"runtime_id": "rt_1", "path": "/tmp/out.json"}),
    "stage": (BctrlStageFileOperator, {"runtime_id": "rt_1", "file_id": "f_1"}),
    "download": (BctrlDownloadFileOperator, {"file_id": "f_1", "destination": "/tmp/x.json"}),
    "start": (BctrlStartRuntimeOperator, {"runtime_id": "rt_1"}),
    "stop": (BctrlStopRuntimeOperator, {"runtime_id": "rt_1"}),
}


class _TI:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _context() -> dict[str, Any]:
    return {"ti": _TI(), "outlet_events": outlet_event_accessors()}


@pytest.mark.parametrize("kind", sorted(OPERATORS))
def test_every_operator_templates_hook_params(kind: str) -> None:
    operator, _ = OPERATORS[kind]
    assert "hook_params" in operator.template_fields
    assert operator.template_fields_renderers.get("hook_params") == "json"


@pytest.mark.parametrize("kind", sorted(OPERATORS))
def test_an_unknown_key_fails_when_the_dag_is_parsed(kind: str) -> None:
    operator, arguments = OPERATORS[kind]
    with pytest.raises(BctrlInputError, match=r"hook_params has an unknown key 'timout'.*max_retries"):
        operator(task_id=kind, hook_params={"timout": 30}, **arguments)


@pytest.mark.parametrize("kind", sorted(OPERATORS))
def test_hook_params_reach_the_hook(kind: str, bctrl_conn_env: str) -> None:
    operator, arguments = OPERATORS[kind]
    op = operator(
        task_id=kind, hook_params={"timeout": 7.5, "max_retries": 0, "max_retry_wait": 2}, **arguments
    )
    assert "hook" not in vars(op)  # nothing is created at parse time
    settings = op.hook.settings
    assert (settings.read_timeout, settings.max_retries, settings.max_retry_wait) == (7.5, 0, 2.0)
    plain = operator(task_id=f"{kind}_plain", **arguments).hook.settings  # the connection's defaults
    assert (plain.read_timeout, plain.max_retries, plain.max_retry_wait) == (60, 3, 60)


def test_templated_values_render_to_numbers(bctrl_conn_env: str) -> None:
    with DAG("hook_params_render", schedule=None, start_date=datetime.datetime(2030, 1, 1)):
        op = BctrlStageFileOperator(
            task_id="stage",
            runtime_id="rt_1",
            file_id="f_1",
            hook_params={"timeout": "{{ params.timeout }}", "max_retries": "{{ params.retries }}"},
        )
    op.render_template_fields({"params": {"timeout": "12.5", "retries": "4"}})  # type: ignore[arg-type]
    assert op.hook_params == {"timeout": "12.5", "max_retries": "4"}
    settings = op.hook.settings
    assert (settings.read_timeout, settings.max_retries) == (12.5, 4)


@pytest.mark.parametrize(
    ("hook_params", "message"),
    [
        ({"timeout": 0}, r"hook_params\['timeout'\] must be greater than 0"),
        ({"timeout": "soon"}, r"hook_params\['timeout'\] must be a number, got 'soon'"),
        ({"timeout": float("nan")}, r"hook_params\['timeout'\] must be a finite number"),
        ({"max_retries": 1.5}, r"hook_params\['max_retries'\] must be a whole number"),
        ({"max_retries": -1}, r"hook_params\['max_retries'\] must be at least 0"),
        ({"max_retries": True}, r"hook_params\['max_retries'\] must be a whole number"),
        ({"max_retry_wait": "-3"}, r"hook_params\['max_retry_wait'\] must be at least 0"),
        (["timeout", 5], r"hook_params must be a mapping"),
        ({"retries": 1}, r"unknown key 'retries'"),
    ],
)
def test_bad_values_are_refused_before_any_request(
    hook_params: Any, message: str, emu: BctrlEmulator, bctrl_conn_env: str, runtime_id: str
) -> None:
    op = BctrlStageFileOperator(task_id="stage", runtime_id=runtime_id, file_id="f_1")
    op.hook_params = hook_params  # as a template would leave it after rendering
    emu.clear_requests_log()
    with pytest.raises(BctrlInputError, match=message):
        op.execute(_context())  # type: ignore[arg-type]
    assert emu.requests_log() == []


def test_empty_values_mean_the_connection_settings() -> None:
    assert check_hook_params(None) == {}
    assert check_hook_params("") == {}  # an unset template
    assert check_hook_params({"timeout": "", "max_retries": None}) == {}
    assert check_hook_params({"max_retries": "3", "max_retry_wait": 0}) == {
        "max_retries": 3,
        "max_retry_wait": 0.0,
    }


def test_max_retries_zero_stops_the_retries_the_connection_allows(
    emu: BctrlEmulator, bctrl_conn_env: str, tmp_path: Path
) -> None:
    runtime = emu.create_runtime()
    emu.write_runtime_file(runtime, "/tmp/out.json", b"{}")
    emu.add_fault("collect", count=2, status=503, retry_after="0")
    emu.clear_requests_log()

    op = BctrlCollectFileOperator(
        task_id="collect", runtime_id=runtime, path="/tmp/out.json", hook_params={"max_retries": 0}
    )
    with pytest.raises(BctrlServerError):
        op.execute(_context())  # type: ignore[arg-type]
    collects = [entry["status"] for entry in emu.requests_log() if entry["route"] == "collect"]
    assert collects == [503]  # the connection's default (3 retries) would have tried again

    # Without hook_params the same connection retries the 503 and succeeds.
    emu.clear_requests_log()
    BctrlCollectFileOperator(task_id="collect2", runtime_id=runtime, path="/tmp/out.json").execute(
        _context()  # type: ignore[arg-type]
    )
    collects = [entry["status"] for entry in emu.requests_log() if entry["route"] == "collect"]
    assert collects[0] == 503
    assert len(collects) == 2
    assert 200 <= collects[1] < 300


def test_timeout_applies_to_the_task(emu: BctrlEmulator, bctrl_conn_env: str, tmp_path: Path) -> None:
    emu.add_fault("file", delay_seconds=3)
    # A directory destination needs the stored file's name first: GET /v1/files/f_slow, delayed 3 s.
    op = BctrlDownloadFileOperator(
        task_id="download",
        file_id="f_slow",
        destination=f"{tmp_path}/",
        hook_params={"timeout": 0.5, "max_retries": 0},
    )
    started = time.monotonic()
    with pytest.raises(BctrlTransportError, match=r"did not answer within 0\.5 s"):
        op.execute(_context())  # type: ignore[arg-type]
    assert time.monotonic() - started < 2.5


def test_a_deferred_collect_hands_its_hook_params_to_the_trigger(
    emu: BctrlEmulator, bctrl_conn_env: str, runtime_id: str
) -> None:
    op = BctrlCollectFileOperator(
        task_id="collect",
        runtime_id=runtime_id,
        path="/tmp/runtime/output/later.json",
        wait_for_file=True,
        deferrable=True,
        hook_params={"timeout": "2.5", "max_retries": 0},
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context())  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, BctrlRuntimeFileTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["hook_params"] == {"timeout": 2.5, "max_retries": 0}
    assert emu.api_key not in json.dumps(kwargs)
    # Rebuilt in the triggerer from its kwargs, the trigger reads the connection with the same overrides.
    rebuilt = BctrlRuntimeFileTrigger(**json.loads(json.dumps(kwargs)))
    settings = asyncio.run(rebuilt._settings())
    assert (settings.read_timeout, settings.max_retries) == (2.5, 0)


def test_a_trigger_without_hook_params_keeps_the_connection_settings(bctrl_conn_env: str) -> None:
    trigger = BctrlRuntimeFileTrigger(
        bctrl_conn_id="bctrl_default", runtime_id="rt_1", space_id="sp_1", path="/tmp/x", deadline=0
    )
    assert "hook_params" not in trigger.serialize()[1]
    settings = asyncio.run(trigger._settings())
    assert settings == BctrlHook("bctrl_default").settings
