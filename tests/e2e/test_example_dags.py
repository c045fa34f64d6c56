"""Every example DAG runs end to end with ``dag.test()`` against the emulator.

Each test checks the XCom contract (the return value is the API JSON, the extra keys carry the ids),
that the ids are the ones the emulator stored, and that the stored bytes are the source bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from _lines import AIRFLOW_3_LINES, memory_uri
from dagrun_helpers import DagRunResult, sha256_file

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

OUTPUT_PATH = "/tmp/runtime/output/results.json"
UPLOAD_KEYS = {"id", "name", "runtimeId", "runtimePath", "sizeBytes", "expiresAt"}


def _stored(emu: BctrlEmulator, file_id: str) -> dict[str, Any]:
    matches = [f for f in emu.stored_files() if f["id"] == file_id]
    assert len(matches) == 1, f"the emulator stored {len(matches)} files with id {file_id}"
    return matches[0]


def _artifact(emu: BctrlEmulator, artifact_id: str) -> dict[str, Any]:
    matches = [a for a in emu.artifacts() if a["id"] == artifact_id]
    assert len(matches) == 1, f"the emulator recorded {len(matches)} artifacts with id {artifact_id}"
    return matches[0]


def _browser_output(emu: BctrlEmulator, runtime_id: str) -> bytes:
    """Stand in for the browser: write the result file the example's placeholder step would produce."""
    data = json.dumps({"runtime": runtime_id, "rows": [{"site": "alpha", "status": "ok"}]}).encode()
    emu.write_runtime_file(runtime_id, OUTPUT_PATH, data)
    return data


def _check_report_run(
    result: DagRunResult, emu: BctrlEmulator, runtime_id: str, ds: str, output: bytes
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Assertions shared by the two report pipelines (classic and TaskFlow)."""
    assert result.state == "success", result.task_states
    assert set(result.task_states.values()) == {"success"}, result.task_states

    # Upload: return value is the RuntimeStagedFile JSON; file_id/runtime_path repeat its fields.
    staged = result.xcom("upload_report")
    assert set(staged) == UPLOAD_KEYS
    assert staged["runtimeId"] == runtime_id
    assert staged["name"] == f"report-{ds}.csv"
    assert staged["runtimePath"] == f"inputs/report-{ds}.csv"
    assert result.xcom("upload_report", "file_id") == staged["id"]
    assert result.xcom("upload_report", "runtime_path") == staged["runtimePath"]
    assert result.keys("upload_report") == {"return_value", "file_id", "runtime_path"}

    source = result.xcom("generate_report")
    source_bytes = Path(source).read_bytes()
    assert ds.encode() in source_bytes
    stored_upload = _stored(emu, staged["id"])
    assert stored_upload["source"] == "upload"
    assert stored_upload["sha256"] == sha256_file(source)
    assert stored_upload["sizeBytes"] == staged["sizeBytes"] == len(source_bytes)
    assert stored_upload["metadata"]["report_date"] == ds
    assert emu.read_runtime_file(runtime_id, staged["runtimePath"]) == source_bytes

    # Collect: return value is {"file", "artifact"} as sent; file_id/artifact_id repeat the ids.
    collected = result.xcom("collect_results")
    assert set(collected) == {"file", "artifact"}
    file_id = collected["file"]["id"]
    artifact_id = collected["artifact"]["id"]
    assert result.xcom("collect_results", "file_id") == file_id
    assert result.xcom("collect_results", "artifact_id") == artifact_id
    assert result.keys("collect_results") == {"return_value", "file_id", "artifact_id"}
    assert collected["file"]["name"] == f"results-{ds}.json"
    stored_result = _stored(emu, file_id)
    assert stored_result["source"] == "runtime"
    assert stored_result["runtimeId"] == runtime_id
    assert stored_result["sha256"] == hashlib.sha256(output).hexdigest()
    artifact = _artifact(emu, artifact_id)
    if "download_results" in {task for task, _ in result.task_states}:
        # Downloaded next to the report, under the stored name, with the collected bytes.
        written = result.xcom("download_results")
        folder, name = written.removeprefix("file://").rsplit("/", 1)
        assert (folder, name) == (source.rsplit("/", 1)[0], f"results-{ds}.json")
        assert _read(written) == output
    assert artifact["fileId"] == file_id
    assert artifact["kind"] == "report"
    assert artifact["name"] == f"results-{ds}"
    # Rendered inside the nested artifact metadata: a macro and the upstream upload's file id.
    assert artifact["metadata"]["report_date"] == ds
    assert artifact["metadata"]["report_file_id"] == staged["id"]
    return staged, collected


def _read(location: str) -> bytes:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStoragePath(location).read_bytes()


def test_report_pipeline(run_dag, emu: BctrlEmulator, runtime_id: str, load_example) -> None:
    dag = load_example("bctrl_report_pipeline")
    output = _browser_output(emu, runtime_id)
    day = pendulum.datetime(2031, 3, 14, tz="UTC")

    result = run_dag(dag, conf={"runtime_id": runtime_id}, logical_date=day)

    staged, collected = _check_report_run(result, emu, runtime_id, "2031-03-14", output)
    assert _stored(emu, staged["id"])["metadata"] == {"report_date": "2031-03-14", "dag_run": result.run_id}
    # The downstream task got the ids both ways: XComArg (file_id) and Jinja (artifact_id, name).
    assert result.xcom("hand_off") == {
        "file_id": collected["file"]["id"],
        "artifact_id": collected["artifact"]["id"],
        "staged_name": "report-2031-03-14.csv",
    }


def test_report_pipeline_with_the_report_in_object_storage(
    run_dag, emu: BctrlEmulator, runtime_id: str, load_example
) -> None:
    """report_base on object storage: the report never touches the worker's disk, and the upload streams it."""
    import fsspec
    from _lines import attach
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    attach("memory", fs=fsspec.filesystem("memory"))
    _browser_output(emu, runtime_id)
    day = pendulum.datetime(2031, 3, 16, tz="UTC")

    result = run_dag(
        load_example("bctrl_report_pipeline"),
        conf={"runtime_id": runtime_id, "report_base": "memory://shared-reports"},
        logical_date=day,
    )

    assert result.state == "success", result.task_states
    source = result.xcom("generate_report")
    assert source.startswith(memory_uri("shared-reports/bctrl_report_pipeline/"))
    report_bytes = ObjectStoragePath(source).read_bytes()
    assert b"2031-03-16" in report_bytes
    staged = result.xcom("upload_report")
    assert _stored(emu, staged["id"])["sha256"] == hashlib.sha256(report_bytes).hexdigest()
    assert emu.read_runtime_file(runtime_id, staged["runtimePath"]) == report_bytes
    # The collected result was streamed back into the same object storage folder.
    written = result.xcom("download_results")
    assert written == f"{source.rsplit('/', 1)[0]}/results-2031-03-16.json"
    collected = _stored(emu, result.xcom("collect_results", "file_id"))
    assert hashlib.sha256(ObjectStoragePath(written).read_bytes()).hexdigest() == collected["sha256"]


@pytest.mark.airflow_lines(
    *AIRFLOW_3_LINES, reason="runs without a logical date exist from Airflow 3.0 (2.11 always has one)"
)
@pytest.mark.parametrize("dag_id", ["bctrl_report_pipeline", "bctrl_report_taskflow"])
def test_report_dags_run_without_a_logical_date(
    run_dag, emu: BctrlEmulator, runtime_id: str, load_example, dag_id: str
) -> None:
    """A run with no logical date (UI/REST trigger with "logical_date": null) has no ``ds``: still works.

    The report is dated by the day the run was due (its ``run_after``; ``dag.test()`` makes that now).
    """
    output = _browser_output(emu, runtime_id)
    before = pendulum.now("UTC").to_date_string()

    result = run_dag(load_example(dag_id), conf={"runtime_id": runtime_id}, logical_date=None)

    after = pendulum.now("UTC").to_date_string()
    day = result.xcom("upload_report")["name"].removeprefix("report-").removesuffix(".csv")
    assert day in {before, after}, result.xcom("upload_report")
    _check_report_run(result, emu, runtime_id, day, output)


def test_report_pipeline_takes_runtime_from_variable(
    run_dag, emu: BctrlEmulator, load_example, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the runtime_id param left empty, the Airflow Variable bctrl_runtime_id decides."""
    runtime_from_variable = emu.create_runtime()
    monkeypatch.setenv("AIRFLOW_VAR_BCTRL_RUNTIME_ID", runtime_from_variable)
    output = _browser_output(emu, runtime_from_variable)
    day = pendulum.datetime(2031, 3, 15, tz="UTC")

    result = run_dag(load_example("bctrl_report_pipeline"), logical_date=day)

    _check_report_run(result, emu, runtime_from_variable, "2031-03-15", output)


def test_report_pipeline_fails_clearly_without_runtime(
    run_dag, emu: BctrlEmulator, load_example, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No param and no Variable: the upload fails on its argument check and sends nothing."""
    monkeypatch.delenv("AIRFLOW_VAR_BCTRL_RUNTIME_ID", raising=False)
    emu.clear_requests_log()

    result = run_dag(load_example("bctrl_report_pipeline"))

    assert result.state == "failed"
    assert result.task_states[("generate_report", -1)] == "success"
    assert result.task_states[("upload_report", -1)] == "failed"
    assert "file_id" not in result.keys("upload_report")
    assert [r for r in emu.requests_log() if "/files/" in r["path"]] == []


def test_report_taskflow(run_dag, emu: BctrlEmulator, runtime_id: str, load_example) -> None:
    dag = load_example("bctrl_report_taskflow")
    output = _browser_output(emu, runtime_id)
    day = pendulum.datetime(2031, 4, 1, tz="UTC")

    result = run_dag(dag, conf={"runtime_id": runtime_id}, logical_date=day)

    # The runtime id reached both operators as an XComArg from the upstream task.
    assert result.xcom("choose_runtime") == runtime_id
    _staged, collected = _check_report_run(result, emu, runtime_id, "2031-04-01", output)
    assert result.xcom("hand_off") == {
        "file_id": collected["file"]["id"],
        "artifact_id": collected["artifact"]["id"],
        "size_bytes": len(output),
    }
    # upload_report became upstream of collect_results through the XComArg nested in artifact.
    assert "upload_report" in dag.get_task("collect_results").upstream_task_ids


def test_upload_many_maps_one_task_per_file(
    run_dag, emu: BctrlEmulator, runtime_id: str, load_example
) -> None:
    dag = load_example("bctrl_upload_many")

    result = run_dag(dag, conf={"runtime_id": runtime_id, "file_count": 4})

    assert result.state == "success", result.task_states
    sources = result.xcom("prepare_inputs")
    assert len(sources) == 4
    assert result.map_indexes("upload_inputs") == [0, 1, 2, 3]
    file_ids = []
    for index, source in enumerate(sources):
        staged = result.xcom("upload_inputs", map_index=index)
        name = Path(source).name
        assert set(staged) == UPLOAD_KEYS
        assert staged["runtimePath"] == f"inputs/batch/{name}"
        assert result.xcom("upload_inputs", "file_id", map_index=index) == staged["id"]
        assert result.xcom("upload_inputs", "runtime_path", map_index=index) == staged["runtimePath"]
        stored = _stored(emu, staged["id"])
        assert stored["sha256"] == sha256_file(source)
        assert stored["metadata"] == {"batch": result.run_id, "part": str(index)}
        assert emu.read_runtime_file(runtime_id, staged["runtimePath"]) == Path(source).read_bytes()
        file_ids.append(staged["id"])
    assert len(set(file_ids)) == 4
    summary = result.xcom("summarise")
    assert summary == {
        "file_ids": file_ids,
        "runtime_paths": [f"inputs/batch/{Path(s).name}" for s in sources],
    }
