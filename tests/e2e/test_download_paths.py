"""The download's path contract in a real DAG run: a local destination comes back as a plain path.

A folder with a space and a file name with non-ASCII characters travel from the download through
XCom into a downstream ``@task`` that opens the path as it is; the ``uri`` key holds the
percent-encoded ``file://`` form, and the task log names the readable path.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

FOLDER = "Q1 reports (final)"
FILE_NAME = "Übersicht März 2030 \u2713 日本.json"  # a check mark and CJK: multi-byte UTF-8


def _build_dag(file_id: str, destination: str) -> Any:
    from airflow.providers.common.compat.sdk import DAG, task

    from airflow_provider_bctrl.operators import BctrlDownloadFileOperator

    with DAG("bctrl_download_path_check", schedule=None, start_date=datetime.datetime(2030, 1, 1)) as dag:
        download = BctrlDownloadFileOperator(task_id="download", file_id=file_id, destination=destination)

        @task
        def read_it(path: str) -> dict[str, Any]:
            # What a user writes downstream: open the returned value, no URI handling.
            data = Path(path).read_bytes()
            return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "name": Path(path).name}

        read_it(download.output)
    return dag


def test_a_path_with_spaces_and_non_ascii_reaches_a_downstream_task_as_a_plain_path(
    run_dag: Any,
    emu: BctrlEmulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_bctrl.hooks import bctrl

    monkeypatch.setattr(
        bctrl, "PROGRESS_QUIET_SECONDS", 0.0
    )  # the start line at once, as for a long download
    runtime = emu.create_runtime()
    data = '{"Grüße": "naïve café"}'.encode()
    emu.write_runtime_file(runtime, "/tmp/out/result.json", data)

    from airflow_provider_bctrl.hooks.bctrl import BctrlHook

    with BctrlHook() as hook:
        file_id = hook.collect_file(runtime, "/tmp/out/result.json").file.id
    folder = tmp_path / FOLDER
    folder.mkdir()
    target = folder / FILE_NAME

    result = run_dag(_build_dag(file_id, str(target)))

    assert result.state == "success", result.task_states
    returned = result.xcom("download")
    assert returned == str(target.resolve())
    assert "%" not in returned
    assert not returned.startswith("file:")
    assert result.xcom("download", "uri") == target.resolve().as_uri()
    assert "%20" in result.xcom("download", "uri")  # the URI form stays a valid URI
    downstream = result.xcom("read_it")
    assert downstream == {
        "path": str(target.resolve()),
        "sha256": hashlib.sha256(data).hexdigest(),
        "name": FILE_NAME,
    }
    out, err = capfd.readouterr()
    log = out + err
    assert f"written to {target.resolve()}" in log
    assert f"Downloading file {file_id} from {emu.url} to {target.resolve()}" in log  # the start line
    # "Ü", percent-encoded, in no line but the `uri` XCom itself (Airflow 3.0's in-process supervisor
    # logs every SetXCom it receives at DEBUG); the hook's own lines about this file are there.
    assert len([line for line in log.splitlines() if file_id in line and "SetXCom" not in line]) >= 2
    assert not [line for line in log.splitlines() if "%C3%9C" in line and "SetXCom" not in line]


def test_the_upload_log_line_names_a_plain_path(
    bctrl_conn_env: str,
    runtime_id: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_bctrl.hooks import bctrl
    from airflow_provider_bctrl.hooks.bctrl import BctrlHook

    monkeypatch.setattr(bctrl, "PROGRESS_QUIET_SECONDS", 0.0)  # the start line at once, as for a long upload

    source = tmp_path / FOLDER / FILE_NAME
    source.parent.mkdir()
    source.write_bytes(b"a,b\n1,2\n")
    capfd.readouterr()
    with BctrlHook() as hook:
        hook.upload_file(runtime_id, str(source))
    out, err = capfd.readouterr()  # Airflow's structured logging writes to the terminal, not to caplog
    assert f"Uploading {source.resolve()} (8 bytes)" in out + err
    assert "file://" not in out + err
