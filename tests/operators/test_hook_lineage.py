"""Hook-level lineage: a ``@task`` that calls the hook yields lineage, as the S3 and GCS hooks' users get.

The end-to-end test runs a TaskFlow DAG with ``dag.test()`` in a fresh Airflow (its own home and
SQLite DB) with OpenLineage enabled through a file transport, then reads the events the listener
wrote. It runs in a subprocess because Airflow decides once per process whether anyone reads hook
lineage (the OpenLineage provider registers its reader only when a transport is configured, and the
rest of the suite runs without one). The in-process tests check what reaches the collector.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _openlineage_events import airflow_env, complete_event, run_checked

from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing.emulator import BctrlEmulator
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS

DAG_ID = "bctrl_hook_lineage"

DAG_FILE = textwrap.dedent(
    '''
    """A @task that uploads with the hook: no operator, so its lineage can only come from the hook."""
    from __future__ import annotations

    import os

    import pendulum
    from airflow.providers.common.compat.sdk import dag, task


    @dag(dag_id="bctrl_hook_lineage", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False)
    def bctrl_hook_lineage():
        @task
        def upload() -> str:
            from airflow_provider_bctrl.hooks.bctrl import BctrlHook

            with BctrlHook() as hook:
                staged = hook.upload_file(os.environ["BCTRL_TEST_RUNTIME"], os.environ["BCTRL_TEST_SOURCE"])
                hook.download_file(staged.id, os.environ["BCTRL_TEST_TARGET"])
                return staged.id

        upload()


    the_dag = bctrl_hook_lineage()

    if __name__ == "__main__":
        the_dag.test()
    '''
)


def _stored_path(emu: BctrlEmulator, file_id: str) -> str:
    return str(next(f for f in emu.stored_files() if f["id"] == file_id)["path"])


def test_a_taskflow_task_calling_the_hook_yields_openlineage_lineage(
    emu: BctrlEmulator, tmp_path: Path
) -> None:
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    source = tmp_path / "report.csv"
    source.write_text("a,b\n1,2\n")
    target = tmp_path / "back.csv"
    events = tmp_path / "events.jsonl"
    env = airflow_env(home, dags, events, emu)
    env.update(
        BCTRL_TEST_RUNTIME=emu.create_runtime(), BCTRL_TEST_SOURCE=str(source), BCTRL_TEST_TARGET=str(target)
    )

    run_checked([sys.executable, "-m", "airflow", "db", "migrate"], env, tmp_path)
    run_checked([sys.executable, str(dags / f"{DAG_ID}.py")], env, tmp_path)

    event = complete_event(events, f"{DAG_ID}.upload")
    inputs = {(d["namespace"], d["name"]) for d in event["inputs"]}
    outputs = {(d["namespace"], d["name"]) for d in event["outputs"]}
    (stored,) = [
        f for f in emu.stored_files() if f["name"] == "report.csv" and target.read_text() == "a,b\n1,2\n"
    ][-1:]
    stored_ds = (f"bctrl://{emu.space_id}", str(stored["path"]))
    # upload: the local file -> the stored copy; download: the stored copy -> the local file. Airflow
    # 2.11 cannot hold a bctrl:// Dataset (docs/installation.md): there only the local ends are reported.
    bctrl = {stored_ds} if AIRFLOW_V_3_0_PLUS else set()
    assert inputs == {("file", str(source.resolve()))} | bctrl
    assert outputs == {("file", str(target.resolve()))} | bctrl


# ------------------------------------------------------------------ in-process: what reaches the collector


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real, fresh ``HookLineageCollector`` as Airflow's global one, with common-compat's layers on it.

    Only Airflow's once-per-process choice "is there a reader?" is replaced: this suite runs without
    OpenLineage configured, so the global collector would be the no-op one.
    """
    from airflow.providers.common.compat import sdk
    from airflow.providers.common.compat.sdk import HookLineageCollector

    fresh = HookLineageCollector()
    monkeypatch.setattr(sdk, "get_hook_lineage_collector", lambda: fresh, raising=False)
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    compat = get_hook_lineage_collector()
    assert compat is fresh
    return compat


def _uris(infos: list[Any]) -> list[str]:
    return [info.asset.uri for info in infos]


@pytest.mark.usefixtures("bctrl_conn_env")
def test_collect_and_stage_report_the_stored_file(collector: Any, emu: BctrlEmulator) -> None:
    runtime = emu.create_runtime()
    emu.write_runtime_file(runtime, "/tmp/out/r.json", b"{}")
    with BctrlHook() as hook:
        collected = hook.collect_file(runtime, "/tmp/out/r.json", storage_path="hook-lineage/r.json")
        hook.stage_file(emu.create_runtime(), collected.file.id)

    stored = [f"bctrl://{emu.space_id}/hook-lineage/r.json"] if AIRFLOW_V_3_0_PLUS else []
    lineage = collector.collected_assets
    assert _uris(lineage.outputs) == stored  # collect wrote it (the runtime file is no asset)
    assert _uris(lineage.inputs) == stored  # stage read it
    assert all(isinstance(info.context, BctrlHook) for info in lineage.inputs + lineage.outputs)


@pytest.mark.usefixtures("bctrl_conn_env")
def test_on_airflow_2_no_lookup_is_made_for_lineage(
    collector: Any, emu: BctrlEmulator, tmp_path: Path
) -> None:
    """2.11 gets the local ends only, so no GET /v1/files/{id} is spent on a URI it cannot hold."""
    source = tmp_path / "in.csv"
    source.write_text("x\n")
    emu.clear_requests_log()
    with BctrlHook() as hook:
        staged = hook.upload_file(emu.create_runtime(), source)
    looked_up = f"/v1/files/{staged.id}" in [r["path"] for r in emu.requests_log()]
    assert looked_up is AIRFLOW_V_3_0_PLUS


@pytest.mark.usefixtures("bctrl_conn_env")
def test_upload_and_download_report_both_ends(collector: Any, emu: BctrlEmulator, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("x\n")
    with BctrlHook() as hook:
        staged = hook.upload_file(emu.create_runtime(), source)
        hook.download_file(staged.id, tmp_path / "out.csv")

    stored = [f"bctrl://{emu.space_id}/{_stored_path(emu, staged.id)}"] if AIRFLOW_V_3_0_PLUS else []
    lineage = collector.collected_assets
    assert _uris(lineage.inputs) == [f"file://{source.resolve()}", *stored]
    assert _uris(lineage.outputs) == [*stored, f"file://{(tmp_path / 'out.csv').resolve()}"]


@pytest.mark.usefixtures("bctrl_conn_env")
def test_nobody_collecting_costs_no_lookup(emu: BctrlEmulator, tmp_path: Path) -> None:
    """With no lineage reader (this suite), the hook asks for no file metadata just for lineage."""
    source = tmp_path / "in.csv"
    source.write_text("x\n")
    emu.clear_requests_log()
    with BctrlHook() as hook:
        staged = hook.upload_file(emu.create_runtime(), source)
        hook.download_file(staged.id, tmp_path / "out.csv")
    paths = [r["path"] for r in emu.requests_log()]
    assert f"/v1/files/{staged.id}" not in paths
    assert f"/v1/files/{staged.id}/content" in paths


@pytest.mark.usefixtures("bctrl_conn_env")
def test_a_failed_lookup_never_fails_the_call(collector: Any, emu: BctrlEmulator, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("x\n")
    emu.add_fault("file", status=404)
    with BctrlHook(max_retries=0) as hook:
        staged = hook.upload_file(emu.create_runtime(), source)

    assert staged.id
    lineage = collector.collected_assets
    assert _uris(lineage.inputs) == [f"file://{source.resolve()}"]
    assert _uris(lineage.outputs) == []
