"""Real DAG runs where ids and paths come from upstream XComs, params and macros.

One DAG exercises every templating route at once (it is the expensive part, so it runs once):

- ``start_runtime`` stands in for "a task that started the runtime": it creates one in the emulator,
  puts the browser's result file there, and returns the runtime id;
- ``upload`` takes that id as an ``XComArg`` and its source path from a Jinja ``xcom_pull``;
- ``collect`` takes the id from Jinja, its path from params + macros, and artifact metadata from
  the upload's XCom keys;
- ``collect_back`` collects the uploaded file back out of the workspace (path from upload's
  ``runtime_path`` key) without an artifact, so ``artifact_id`` is ``None``;
- ``quiet_upload`` has ``do_xcom_push=False`` and pushes nothing;
- ``upload_object`` uploads from an object storage URI built from a macro.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from typing import Any

import fsspec
import pendulum
from dagrun_helpers import sha256_file

from airflow_provider_bctrl.operators.runtime_files import BctrlCollectFileOperator, BctrlUploadFileOperator
from airflow_provider_bctrl.testing.emulator import BctrlEmulator
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_1_PLUS

DAY = pendulum.datetime(2032, 6, 30, tz="UTC")
DS, DS_NODASH = "2032-06-30", "20320630"
# The source's name ends in .sql and its content looks like a template: it must travel untouched.
SOURCE_TEXT = "SELECT '{{ ds }}' AS day; -- not a template\n"


def _build_dag(emu: BctrlEmulator, source_dir: str, result_bytes: bytes) -> Any:
    from airflow.providers.common.compat.sdk import DAG, get_current_context, task

    with DAG(
        "bctrl_templating_check",
        schedule=None,
        start_date=datetime.datetime(2030, 1, 1),
        params={
            "tag": "nightly",
            "out_dir": "/tmp/browser/out",
            "space_id": emu.space_id,
            "prefix": f"templating-{uuid.uuid4().hex}",  # storage paths must be new in every run
        },
    ) as dag:

        @task
        def start_runtime() -> str:
            runtime_id = emu.create_runtime()
            ds = get_current_context()["ds"]
            emu.write_runtime_file(runtime_id, f"/tmp/browser/out/result-{ds}.json", result_bytes)
            return runtime_id

        @task
        def make_source() -> str:
            path = f"{source_dir}/payload.sql"
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(SOURCE_TEXT)
            return path

        runtime = start_runtime()
        source = make_source()
        upload = BctrlUploadFileOperator(
            task_id="upload",
            runtime_id=runtime,
            source="{{ ti.xcom_pull(task_ids='make_source') }}",
            name="{{ params.tag }}-{{ ds_nodash }}.sql",
            runtime_path="{{ params.tag }}/{{ ds }}/",
            destination_path="{{ params.prefix }}/uploads/{{ ds_nodash }}.sql",
            metadata={
                "day": "{{ ds }}",
                "runtime": "{{ ti.xcom_pull(task_ids='start_runtime') }}",
                "nested": {"tags": ["{{ params.tag }}", "static"], "count": 3, "flag": True},
            },
        )
        source >> upload
        collect = BctrlCollectFileOperator(
            task_id="collect",
            runtime_id="{{ ti.xcom_pull(task_ids='start_runtime') }}",
            path="{{ params.out_dir }}/result-{{ ds }}.json",
            space_id="{{ params.space_id }}",
            storage_path="{{ params.prefix }}/collected/{{ ds_nodash }}.json",
            name="result-{{ ds_nodash }}.json",
            artifact={
                "kind": "{{ params.tag }}",
                "name": "art-{{ ds }}",
                "metadata": {
                    "upload_file_id": "{{ ti.xcom_pull(task_ids='upload', key='file_id') }}",
                    "uploaded_to": "{{ ti.xcom_pull(task_ids='upload', key='runtime_path') }}",
                    "list": ["{{ ds }}", 1],
                },
            },
        )
        collect_back = BctrlCollectFileOperator(
            task_id="collect_back",
            runtime_id=runtime,
            path=upload.output["runtime_path"],
        )
        quiet = BctrlUploadFileOperator(
            task_id="quiet_upload",
            runtime_id=runtime,
            source=source,
            runtime_path="quiet/",
            do_xcom_push=False,
        )
        upload_object = BctrlUploadFileOperator(
            task_id="upload_object",
            runtime_id=runtime,
            source="memory://bctrl-templating/{{ ds }}/object.csv",
            runtime_path="objects/",
        )
        upload >> [collect, collect_back]
    assert {"start_runtime", "upload"} <= collect_back.upstream_task_ids
    assert "make_source" in quiet.upstream_task_ids
    assert "start_runtime" in upload_object.upstream_task_ids
    return dag


def test_ids_and_paths_render_from_xcom_params_and_macros(run_dag, emu: BctrlEmulator, tmp_path) -> None:
    result_bytes = json.dumps({"ok": True, "day": DS}).encode()
    dag = _build_dag(emu, str(tmp_path), result_bytes)
    from _lines import attach

    # fsspec's in-memory filesystem stands in for S3/GCS: the task runs in this process and sees it.
    attach("memory", fs=fsspec.filesystem("memory"))
    object_bytes = b"id,value\n1,from object storage\n"
    with fsspec.filesystem("memory").open(f"/bctrl-templating/{DS}/object.csv", "wb") as handle:
        handle.write(object_bytes)
    emu.clear_requests_log()

    result = run_dag(dag, logical_date=DAY)

    assert result.state == "success", result.task_states
    runtime_id = result.xcom("start_runtime")
    stored = {f["id"]: f for f in emu.stored_files()}
    prefix = dag.params["prefix"]

    # upload: XComArg runtime id, Jinja source, params/macros in name, paths and nested metadata.
    staged = result.xcom("upload")
    assert staged["runtimeId"] == runtime_id
    assert staged["name"] == f"nightly-{DS_NODASH}.sql"
    assert staged["runtimePath"] == f"nightly/{DS}/nightly-{DS_NODASH}.sql"
    assert result.xcom("upload", "runtime_path") == staged["runtimePath"]
    upload_file = stored[result.xcom("upload", "file_id")]
    assert upload_file["path"] == f"{prefix}/uploads/{DS_NODASH}.sql"
    assert upload_file["metadata"] == {
        "day": DS,
        "runtime": runtime_id,
        "nested": {"tags": ["nightly", "static"], "count": 3, "flag": True},
    }
    source_sha = hashlib.sha256(SOURCE_TEXT.encode()).hexdigest()
    assert upload_file["sha256"] == source_sha == sha256_file(tmp_path / "payload.sql")

    # collect: Jinja runtime id, params + macro path, explicit space, templated artifact.
    collected = result.xcom("collect")
    assert result.xcom("collect", "file_id") == collected["file"]["id"]
    assert result.xcom("collect", "artifact_id") == collected["artifact"]["id"]
    collect_file = stored[collected["file"]["id"]]
    assert collect_file["path"] == f"{prefix}/collected/{DS_NODASH}.json"
    assert collect_file["name"] == f"result-{DS_NODASH}.json"
    assert collect_file["spaceId"] == emu.space_id
    assert collect_file["sha256"] == hashlib.sha256(result_bytes).hexdigest()
    (artifact,) = [a for a in emu.artifacts() if a["id"] == collected["artifact"]["id"]]
    assert (artifact["kind"], artifact["name"]) == ("nightly", f"art-{DS}")
    assert artifact["metadata"] == {
        "upload_file_id": staged["id"],
        "uploaded_to": staged["runtimePath"],
        "list": [DS, 1],
    }
    collect_calls = [r for r in emu.requests_log() if r["path"].endswith("/files/collect")]
    assert f"/v1/spaces/{emu.space_id}/runtimes/{runtime_id}/files/collect" in {
        r["path"] for r in collect_calls
    }

    # collect_back: the path came from upload's runtime_path key; no artifact was asked for.
    back = result.xcom("collect_back")
    assert back["artifact"] is None
    if AIRFLOW_V_3_1_PLUS:
        assert result.xcom("collect_back", "artifact_id") is None
        assert result.keys("collect_back") == {"return_value", "file_id", "artifact_id"}
    else:  # 3.0's execution API refuses a None XCom: the key is not pushed (pulling it gives None)
        assert result.keys("collect_back") == {"return_value", "file_id"}
    assert stored[result.xcom("collect_back", "file_id")]["sha256"] == source_sha

    # do_xcom_push=False: the upload happened, nothing was pushed.
    assert result.task_states[("quiet_upload", -1)] == "success"
    assert result.keys("quiet_upload") == set()
    assert emu.read_runtime_file(runtime_id, "quiet/payload.sql") == SOURCE_TEXT.encode()

    # An object storage URI (rendered from a macro) is streamed from there, not checked as a local path.
    from_object = result.xcom("upload_object")
    assert from_object["runtimePath"] == "objects/object.csv"
    assert stored[from_object["id"]]["sha256"] == hashlib.sha256(object_bytes).hexdigest()


def test_bad_rendered_argument_fails_the_task_before_any_request(run_dag, emu: BctrlEmulator) -> None:
    from airflow.providers.common.compat.sdk import DAG

    with DAG(
        "bctrl_templating_bad_argument",
        schedule=None,
        start_date=datetime.datetime(2030, 1, 1),
        params={"runtime": "rt_1/../other"},
    ) as dag:
        BctrlCollectFileOperator(task_id="collect", runtime_id="{{ params.runtime }}", path="/tmp/x.json")
    emu.clear_requests_log()

    result = run_dag(dag)

    assert result.state == "failed"
    assert result.task_states[("collect", -1)] == "failed"
    assert result.keys("collect") == set()
    assert emu.requests_log() == []
