"""OpenLineage facets of the four operators, with ``apache-airflow-providers-openlineage`` installed.

Each operator really runs against the emulator (real hook, real HTTP), then the OpenLineage method
is called the way the provider's listener calls it after a task finished: directly, and through
the provider's own ``ExtractorManager``. One test runs the operators in a DAG under ``dag.test()``
with the real listener and reads the events it emitted. Naming (``docs/lineage.md``): a stored file is
``bctrl://<space_id>`` + its storage path, a runtime file ``bctrl-runtime://<runtime_id>`` + its
path in the runtime, a local file ``file`` + its absolute path, object storage ``<scheme>://<bucket>``
+ key.
"""

from __future__ import annotations

import json
import sys
import textwrap
import types
import uuid
from pathlib import Path
from typing import Any

# The test extra installs the openlineage provider: its absence is an error here, never a silent skip.
import airflow.providers.openlineage  # noqa: F401
import fsspec
import pytest
from _lines import attach, outlet_event_accessors
from _openlineage_events import airflow_env, complete_event, run_checked
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_bctrl.operators import (
    BctrlCollectFileOperator,
    BctrlDownloadFileOperator,
    BctrlStageFileOperator,
    BctrlUploadFileOperator,
)
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

RESULTS = "/tmp/runtime/output/results.json"


class RecordingTI:
    """Stands in for the task instance in ``execute``: records what the operator pushes to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _run(op: Any) -> Any:
    return op.execute({"ti": RecordingTI(), "outlet_events": outlet_event_accessors()})


def _pairs(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def _stored_path(emu: BctrlEmulator, file_id: str) -> str:
    return str(next(f for f in emu.stored_files() if f["id"] == file_id)["path"])


@pytest.fixture
def collected(bctrl_conn_env: str, emu: BctrlEmulator) -> tuple[BctrlCollectFileOperator, str, str]:
    """A collect that ran: ``(operator, runtime id, stored file id)``."""
    runtime = emu.create_runtime()
    emu.write_runtime_file(runtime, RESULTS, json.dumps({"nonce": uuid.uuid4().hex}).encode())
    op = BctrlCollectFileOperator(
        task_id="collect",
        runtime_id=runtime,
        path=RESULTS,
        storage_path=f"lineage/{uuid.uuid4().hex}/results.json",
    )
    response = _run(op)
    return op, runtime, response["file"]["id"]


def test_collect_reads_the_runtime_file_and_writes_the_stored_file(
    collected: tuple[BctrlCollectFileOperator, str, str], emu: BctrlEmulator
) -> None:
    op, runtime, file_id = collected
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _pairs(lineage.inputs) == [(f"bctrl-runtime://{runtime}", RESULTS)]
    assert _pairs(lineage.outputs) == [(f"bctrl://{emu.space_id}", _stored_path(emu, file_id))]


def test_upload_from_a_local_file(
    bctrl_conn_env: str, emu: BctrlEmulator, runtime_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "report.csv"
    source.write_text("a,b\n1,2\n")
    op = BctrlUploadFileOperator(
        task_id="upload", runtime_id=runtime_id, source=str(source), runtime_path="in/"
    )
    staged = _run(op)

    lineage = op.get_openlineage_facets_on_complete(None)

    assert _pairs(lineage.inputs) == [("file", str(source.resolve()))]
    assert _pairs(lineage.outputs) == [
        (f"bctrl://{emu.space_id}", _stored_path(emu, staged["id"])),
        (f"bctrl-runtime://{runtime_id}", "in/report.csv"),
    ]


def test_upload_from_object_storage(bctrl_conn_env: str, emu: BctrlEmulator, runtime_id: str) -> None:
    attach("memory", fs=fsspec.filesystem("memory"))
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    source = ObjectStoragePath(f"memory://{bucket}/2030/data.bin")
    source.parent.mkdir(parents=True, exist_ok=True)
    with source.open("wb") as handle:
        handle.write(b"\x00\x01" * 100)
    op = BctrlUploadFileOperator(
        task_id="upload", runtime_id=runtime_id, source=f"memory://{bucket}/2030/data.bin"
    )
    _run(op)

    lineage = op.get_openlineage_facets_on_complete(None)

    assert _pairs(lineage.inputs) == [(f"memory://{bucket}", "2030/data.bin")]
    assert [d.namespace for d in lineage.outputs] == [
        f"bctrl://{emu.space_id}",
        f"bctrl-runtime://{runtime_id}",
    ]


def test_stage_reads_the_stored_file_and_writes_the_runtime_file(
    collected: tuple[BctrlCollectFileOperator, str, str], emu: BctrlEmulator
) -> None:
    _, _, file_id = collected
    target = emu.create_runtime()
    op = BctrlStageFileOperator(task_id="stage", runtime_id=target, file_id=file_id, runtime_path="inputs/")
    _run(op)

    lineage = op.get_openlineage_facets_on_complete(None)

    assert _pairs(lineage.inputs) == [(f"bctrl://{emu.space_id}", _stored_path(emu, file_id))]
    assert _pairs(lineage.outputs) == [(f"bctrl-runtime://{target}", "inputs/results.json")]


def test_download_to_local_and_object_storage(
    collected: tuple[BctrlCollectFileOperator, str, str], emu: BctrlEmulator, tmp_path: Path
) -> None:
    _, _, file_id = collected
    stored = (f"bctrl://{emu.space_id}", _stored_path(emu, file_id))
    local = BctrlDownloadFileOperator(
        task_id="download", file_id=file_id, destination=str(tmp_path / "r.json")
    )
    _run(local)
    attach("memory", fs=fsspec.filesystem("memory"))
    remote = BctrlDownloadFileOperator(
        task_id="download_remote", file_id=file_id, destination="memory://lineage-bucket/reports/r.json"
    )
    _run(remote)

    local_lineage = local.get_openlineage_facets_on_complete(None)
    remote_lineage = remote.get_openlineage_facets_on_complete(None)

    assert _pairs(local_lineage.inputs) == [stored]
    assert _pairs(local_lineage.outputs) == [("file", str((tmp_path / "r.json").resolve()))]
    assert _pairs(remote_lineage.inputs) == [stored]
    assert _pairs(remote_lineage.outputs) == [("memory://lineage-bucket", "reports/r.json")]


def test_the_provider_extractor_uses_the_operator_method(
    collected: tuple[BctrlCollectFileOperator, str, str], emu: BctrlEmulator
) -> None:
    """What the OpenLineage listener does after a task succeeded: ExtractorManager.extract_metadata."""
    from airflow.providers.openlineage.extractors import ExtractorManager
    from airflow.utils.state import TaskInstanceState

    op, runtime, file_id = collected
    dagrun = types.SimpleNamespace(run_id="manual__lineage")  # read only for log messages

    lineage = ExtractorManager().extract_metadata(
        dagrun, op, task_instance_state=TaskInstanceState.SUCCESS, task_instance=None
    )

    assert _pairs(lineage.inputs) == [(f"bctrl-runtime://{runtime}", RESULTS)]
    assert _pairs(lineage.outputs) == [(f"bctrl://{emu.space_id}", _stored_path(emu, file_id))]


def test_a_failed_lookup_never_fails_the_task(
    collected: tuple[BctrlCollectFileOperator, str, str], emu: BctrlEmulator
) -> None:
    """Stage's input needs GET /v1/files/{id}; when that fails the dataset is left out, nothing raises."""
    _, _, file_id = collected
    target = emu.create_runtime()
    op = BctrlStageFileOperator(task_id="stage", runtime_id=target, file_id=file_id)
    _run(op)
    emu.add_fault("file", status=404)

    lineage = op.get_openlineage_facets_on_complete(None)

    assert lineage.inputs == []
    assert _pairs(lineage.outputs) == [(f"bctrl-runtime://{target}", "results.json")]


def test_a_task_that_did_not_run_reports_no_datasets() -> None:
    op = BctrlDownloadFileOperator(task_id="download", file_id="f_1", destination="/tmp/x.json")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert (lineage.inputs, lineage.outputs) == ([], [])


def test_a_memory_uri_is_one_dataset_however_the_line_spells_it() -> None:
    """universal-pathlib < 0.3 (Airflow 2.11-3.1) writes memory:///bucket/key for memory://bucket/key."""
    from airflow_provider_bctrl.operators._base import DatasetRef, uri_ref

    expected = DatasetRef(namespace="memory://b", name="k/x.json")
    assert uri_ref("memory:///b/k/x.json") == expected
    assert uri_ref("memory://b/k/x.json") == expected
    assert uri_ref("s3://bucket/key") == DatasetRef(namespace="s3://bucket", name="key")


LISTENER_DAG_ID = "bctrl_operator_lineage"
LISTENER_DAG = textwrap.dedent(
    '''
    """Upload, collect and download with the operators; run by its own dag.test() under OpenLineage."""
    from __future__ import annotations

    import os

    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_bctrl.operators import (
        BctrlCollectFileOperator,
        BctrlDownloadFileOperator,
        BctrlUploadFileOperator,
    )

    with DAG("bctrl_operator_lineage", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        upload = BctrlUploadFileOperator(
            task_id="upload", runtime_id=os.environ["BCTRL_TEST_RUNTIME"], source=os.environ["BCTRL_TEST_SOURCE"]
        )
        collect = BctrlCollectFileOperator(
            task_id="collect",
            runtime_id=os.environ["BCTRL_TEST_RUNTIME"],
            path="/tmp/runtime/output/results.json",
            storage_path=os.environ["BCTRL_TEST_STORAGE_PATH"],
        )
        download = BctrlDownloadFileOperator(
            task_id="download",
            file_id="{{ ti.xcom_pull(task_ids='collect', key='file_id') }}",
            destination=os.environ["BCTRL_TEST_TARGET"],
        )
        upload >> collect >> download

    if __name__ == "__main__":
        dag.test()
    '''
)


def test_the_openlineage_listener_reports_each_operator_in_a_dag_run(
    emu: BctrlEmulator, tmp_path: Path
) -> None:
    """What a deployment with an OpenLineage transport receives: one COMPLETE event per task, with the
    datasets the operator method gives (on every line, 2.11 included: OpenLineage datasets are not
    Airflow assets, so ``bctrl://`` namespaces need no asset support)."""
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / f"{LISTENER_DAG_ID}.py").write_text(LISTENER_DAG)
    runtime = emu.create_runtime()
    emu.write_runtime_file(runtime, RESULTS, json.dumps({"nonce": uuid.uuid4().hex}).encode())
    source, target = tmp_path / "report.csv", tmp_path / "out" / "results.json"
    source.write_text("a,b\n1,2\n")
    target.parent.mkdir()
    storage_path = f"lineage/{uuid.uuid4().hex}/results.json"
    events = tmp_path / "events.jsonl"
    env = airflow_env(home, dags, events, emu)
    env.update(
        BCTRL_TEST_RUNTIME=runtime,
        BCTRL_TEST_SOURCE=str(source),
        BCTRL_TEST_TARGET=str(target),
        BCTRL_TEST_STORAGE_PATH=storage_path,
    )

    run_checked([sys.executable, "-m", "airflow", "db", "migrate"], env, tmp_path)
    run_checked([sys.executable, str(dags / f"{LISTENER_DAG_ID}.py")], env, tmp_path)

    def datasets(task_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        event = complete_event(events, f"{LISTENER_DAG_ID}.{task_id}")
        return _pairs_of(event["inputs"]), _pairs_of(event["outputs"])

    space = f"bctrl://{emu.space_id}"
    (uploaded,) = [f for f in emu.stored_files() if f["source"] == "upload" and f["runtimeId"] == runtime]
    assert datasets("upload") == (
        [("file", str(source.resolve()))],
        [(space, uploaded["path"]), (f"bctrl-runtime://{runtime}", "report.csv")],
    )
    assert datasets("collect") == ([(f"bctrl-runtime://{runtime}", RESULTS)], [(space, storage_path)])
    assert datasets("download") == ([(space, storage_path)], [("file", str(target.resolve()))])


def _pairs_of(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]
