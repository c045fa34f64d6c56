"""The API key never leaks: DAG runs through failures, then every trace they left is searched for it.

The runs go through 401 (a wrong key), 429 (retries used up), 500 and a dropped connection. Searched:
everything the process printed (task logs, tracebacks, exception text), every XCom, and every
rendered template field stored in the metadata DB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from dagrun_helpers import DagRunResult

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

#: A second distinctive key, used where the connection must hold a wrong one.
WRONG_KEY = "bctrl_wrong_Zx81LeakCanary"


def _rendered_fields(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id
            )
        ).all()
        return [dict(row.rendered_fields) for row in rows]


def _traces(result: DagRunResult, captured: str, dag_id: str) -> str:
    xcoms = json.dumps({str(k): v for k, v in result.xcoms.items()}, default=str)
    rendered = json.dumps(_rendered_fields(dag_id, result.run_id), default=str)
    return "\n".join([captured, xcoms, rendered])


CASES: list[tuple[str, Callable[[BctrlEmulator, pytest.MonkeyPatch], None], str]] = [
    (
        "401 wrong key",
        lambda emu, mp: mp.setenv(
            "AIRFLOW_CONN_BCTRL_DEFAULT",
            json.dumps({"conn_type": "bctrl", "host": emu.url, "password": WRONG_KEY}),
        ),
        "upload_report",
    ),
    (
        "429 retries used up",
        lambda emu, mp: emu.add_fault("upload", count=10, status=429, retry_after="0"),
        "upload_report",
    ),
    ("500 on collect", lambda emu, mp: emu.add_fault("collect", status=500), "collect_results"),
    (
        "dropped upload",
        lambda emu, mp: emu.add_fault("upload", drop=True, after="processing"),
        "upload_report",
    ),
]


@pytest.mark.parametrize(("label", "arrange", "failing_task"), CASES, ids=[c[0] for c in CASES])
def test_key_appears_nowhere_after_failures(
    run_dag: Callable[..., DagRunResult],
    load_example: Callable[[str], Any],
    emu: BctrlEmulator,
    runtime_id: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    label: str,
    arrange: Callable[[BctrlEmulator, pytest.MonkeyPatch], None],
    failing_task: str,
) -> None:
    emu.write_runtime_file(runtime_id, "/tmp/runtime/output/results.json", b'{"ok": true}')
    arrange(emu, monkeypatch)
    result = run_dag(load_example("bctrl_report_pipeline"), conf={"runtime_id": runtime_id})
    out, err = capfd.readouterr()
    captured = out + err

    assert result.state == "failed", result.task_states
    assert result.task_states[(failing_task, -1)] == "failed", result.task_states
    assert "BCTRL" in captured  # the failure was logged: the search below had something to search
    everything = _traces(result, captured, "bctrl_report_pipeline")
    for key in (emu.api_key, WRONG_KEY):
        assert key not in everything, f"{label}: the API key leaked"
    # Not even a fragment long enough to matter.
    assert emu.api_key[6:18] not in everything
