"""The asset producer/consumer example pair, run for real with ``dag.test()`` against the emulator.

1. The producer's collect emits an asset event on ``bctrl://<space>/reports/daily`` whose extra names
   the stored file; the event is read back from the metadata DB, and Airflow queued a run of the
   (unpaused) consumer for it, as it does for the scheduler.
2. The consumer runs the way the scheduler would start it: an asset-triggered DAG run that consumed
   that event, so ``triggering_asset_events`` holds it. ``dag.test()`` always creates a manual run,
   so its run factory is swapped for one doing what the scheduler's
   ``_create_dag_runs_asset_triggered`` does (the tasks then run through ``dag.test()`` unchanged).
3. A manual consumer run (no triggering event) falls back to the asset's latest event.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagrun_helpers import DagRunResult, collect_run

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

# Airflow 2.11 has no bctrl:// assets (refused at parse time: tests/test_airflow_lines.py). On 3.0,
# whose dag.test() registers nothing, the pair is registered first as 3.0's DAG processor does it
# (the ``pair_registered`` fixture below).
pytestmark = [
    pytest.mark.airflow_lines(
        "3.0", "3.1", "3.2", "3.3", reason="2.11 has no bctrl:// assets (refused at parse time)"
    ),
    pytest.mark.usefixtures("pair_registered"),
]

REPORT_PATH = "/tmp/runtime/output/report.json"
PRODUCER, CONSUMER = "bctrl_asset_producer", "bctrl_asset_consumer"
EXTRA_KEYS = {"file_id", "artifact_id", "run_id", "runtime_id", "space_id", "path", "uri"}


@pytest.fixture
def space(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """The pair's space, given the way a deployment gives it: the BCTRL_SPACE_ID environment variable."""
    monkeypatch.setenv("BCTRL_SPACE_ID", emu.space_id)
    return emu.space_id


@pytest.fixture
def pair_registered(space: str, load_example: Any, register_dag: Any) -> None:
    """Both DAGs of the pair in the metadata DB, their assets active, as a deployment has them.

    Under a scheduler the DAG processor registers every DAG it parses; ``dag.test()`` on 3.1+ does
    the same for the dags folder before its run. Airflow 3.0's ``dag.test()`` registers nothing, so a
    ``bctrl://`` outlet would be an inactive asset there (``AirflowInactiveAssetInInletOrOutletException``
    before any provider code runs) and no consumer run would be queued: register the pair here,
    through the DAG processor's own call. On 3.1+ nothing is done, so the suite keeps proving that
    ``dag.test()`` registers them itself.
    """
    from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_1_PLUS:
        for dag_id in (PRODUCER, CONSUMER):
            register_dag(load_example(dag_id))


@pytest.fixture
def consumer_runtime(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """The consumer's runtime, through the Airflow Variable its params fall back to."""
    runtime = emu.create_runtime()
    monkeypatch.setenv("AIRFLOW_VAR_BCTRL_RUNTIME_ID", runtime)
    return runtime


@pytest.fixture
def download_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # The param's default is the system temp dir; point it at this test's folder instead.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    tempfile.tempdir = None
    yield tmp_path / "bctrl-example-downloads"
    tempfile.tempdir = None


def _produce(run_dag: Any, load_example: Any, emu: BctrlEmulator) -> tuple[DagRunResult, bytes]:
    runtime = emu.create_runtime()
    report = json.dumps({"day": "today", "nonce": uuid.uuid4().hex}).encode()
    emu.write_runtime_file(runtime, REPORT_PATH, report)
    result = run_dag(load_example(PRODUCER), conf={"runtime_id": runtime})
    assert result.state == "success", result.task_states
    return result, report


def _asset_events(asset_uri: str, source_run_id: str | None = None) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == asset_uri)
            .order_by(AssetEvent.timestamp)
        )
        if source_run_id is not None:
            query = query.where(AssetEvent.source_run_id == source_run_id)
        events = list(session.scalars(query))
        session.expunge_all()
        return events


def _set_paused(dag_id: str, paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=paused))


def _queued_for(dag_id: str) -> list[tuple[int, Any]]:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id))
        return [(row.asset_id, row.created_at) for row in rows]


def _clear_queue(dag_id: str) -> None:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id))


def _asset_triggered_run_factory(**kwargs: Any) -> Any:
    """Create the run the scheduler would: ASSET_TRIGGERED, consuming the queued assets' events.

    Mirrors ``SchedulerJobRunner._create_dag_runs_asset_triggered`` for a Dag scheduled on one asset:
    the events of the scheduled assets since the previous asset-triggered run, up to the newest
    queue entry, become the run's ``consumed_asset_events``; the queue entries are then removed.
    """
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, DagScheduleAssetReference
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import delete, func, select

    dag, session = kwargs["dag"], kwargs["session"]
    queued = session.scalars(
        select(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag.dag_id)
    ).all()
    assert queued, "Airflow queued no asset-triggered run for the consumer"
    triggered_date = max(row.created_at for row in queued)
    previous = session.scalar(
        select(func.max(DagRun.run_after)).where(
            DagRun.dag_id == dag.dag_id,
            DagRun.run_type == DagRunType.ASSET_TRIGGERED,
            DagRun.run_after < triggered_date,
        )
    )
    if previous is None and not dag.catchup:
        # No earlier asset-triggered run: with catchup off the window starts when the Dag began
        # scheduling on its assets.
        previous = session.scalar(
            select(func.min(DagScheduleAssetReference.created_at)).where(
                DagScheduleAssetReference.dag_id == dag.dag_id
            )
        )
    window = [
        AssetEvent.asset_id.in_(
            select(DagScheduleAssetReference.asset_id).where(DagScheduleAssetReference.dag_id == dag.dag_id)
        ),
        AssetEvent.timestamp <= triggered_date,
    ]
    if previous is not None:
        window.append(AssetEvent.timestamp > previous)
    events = list(session.scalars(select(AssetEvent).where(*window).order_by(AssetEvent.timestamp)))
    dag_run = dag.create_dagrun(
        run_id=DagRun.generate_run_id(
            run_type=DagRunType.ASSET_TRIGGERED, logical_date=None, run_after=triggered_date
        ),
        logical_date=None,
        data_interval=None,
        run_after=triggered_date,
        run_type=DagRunType.ASSET_TRIGGERED,
        triggered_by=DagRunTriggeredByType.ASSET,
        state=DagRunState.RUNNING,
        start_date=kwargs["start_date"],
        session=session,
    )
    dag_run.consumed_asset_events.extend(events)
    session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag.dag_id))
    session.commit()
    return dag_run


def _patch_run_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``dag.test()`` create its run with :func:`_asset_triggered_run_factory`."""
    from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_1_PLUS

    if AIRFLOW_V_3_1_PLUS:
        import airflow.models.dagrun

        monkeypatch.setattr(airflow.models.dagrun, "get_or_create_dagrun", _asset_triggered_run_factory)
    else:  # 3.0's dag.test() imports its run factory from airflow.models.dag at call time
        import airflow.models.dag

        monkeypatch.setattr(airflow.models.dag, "_get_or_create_dagrun", _asset_triggered_run_factory)


def _consumed_event_ids(dag_id: str, run_id: str) -> set[int]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dagrun = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one()
        return {e.id for e in dagrun.consumed_asset_events}


def _check_consumer(
    result: DagRunResult, emu: BctrlEmulator, runtime: str, extra: dict[str, Any], report: bytes
) -> None:
    assert result.state == "success", result.task_states
    picked = result.xcom("pick_report")
    assert picked["file_id"] == extra["file_id"]
    assert picked["artifact_id"] == extra["artifact_id"]
    assert picked["path"] == extra["path"]
    # Staged into the consumer's runtime from storage; downloaded byte-exact to the worker.
    staged = result.xcom("stage_report")
    assert staged["id"] == extra["file_id"]
    assert staged["runtimeId"] == runtime
    assert emu.read_runtime_file(runtime, staged["runtimePath"]) == report
    downloaded = Path(result.xcom("download_report"))  # a plain local path, not a file:// URI
    assert downloaded.is_absolute()
    assert downloaded.read_bytes() == report
    assert downloaded.name == staged["name"]


def test_producer_records_the_stored_file_in_the_asset_event(
    run_dag: Any, load_example: Any, emu: BctrlEmulator, space: str
) -> None:
    result, report = _produce(run_dag, load_example, emu)

    (event,) = _asset_events(f"bctrl://{space}/reports/daily", result.run_id)
    assert event.source_dag_id == PRODUCER
    assert event.source_task_id == "collect_report"
    extra = event.extra
    assert set(extra) == EXTRA_KEYS
    collected = result.xcom("collect_report")
    assert extra["file_id"] == collected["file"]["id"] == result.xcom("collect_report", "file_id")
    assert extra["artifact_id"] == collected["artifact"]["id"]
    assert extra["run_id"] == collected["artifact"]["runId"]
    assert extra["space_id"] == space
    assert extra["path"] == collected["file"]["path"]
    assert extra["path"].startswith("reports/daily/")
    assert extra["uri"] == f"bctrl://{space}/{extra['path']}"
    stored = next(f for f in emu.stored_files() if f["id"] == extra["file_id"])
    assert stored["path"] == extra["path"]
    assert stored["sha256"] == hashlib.sha256(report).hexdigest()


def test_every_producer_run_stores_a_new_file_under_the_same_asset(
    run_dag: Any, load_example: Any, emu: BctrlEmulator, space: str
) -> None:
    first, _ = _produce(run_dag, load_example, emu)
    second, _ = _produce(run_dag, load_example, emu)
    (one,) = _asset_events(f"bctrl://{space}/reports/daily", first.run_id)
    (two,) = _asset_events(f"bctrl://{space}/reports/daily", second.run_id)
    assert one.extra["file_id"] != two.extra["file_id"]
    assert one.extra["path"] != two.extra["path"]


def test_consumer_runs_on_the_triggering_event(
    run_dag: Any,
    load_example: Any,
    emu: BctrlEmulator,
    space: str,
    consumer_runtime: str,
    download_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _produce(run_dag, load_example, emu)  # on 3.1+ dag.test() registers both DAGs of the pair here
    _set_paused(CONSUMER, False)  # Airflow queues runs only for unpaused consumers
    _clear_queue(CONSUMER)
    try:
        result, report = _produce(run_dag, load_example, emu)
        (event,) = _asset_events(f"bctrl://{space}/reports/daily", result.run_id)
        # What the scheduler acts on: a queued run of the consumer for this asset.
        assert [asset_id for asset_id, _ in _queued_for(CONSUMER)] == [event.asset_id]

        _patch_run_factory(monkeypatch)
        dag_run = load_example(CONSUMER).test(logical_date=None)
    finally:
        _set_paused(CONSUMER, True)
        _clear_queue(CONSUMER)

    consumer = collect_run(CONSUMER, dag_run.run_id)
    assert dag_run.run_id.startswith("asset_triggered__")
    assert event.id in _consumed_event_ids(CONSUMER, dag_run.run_id)
    assert consumer.xcom("pick_report")["found_by"] == "triggering_asset_event"
    _check_consumer(consumer, emu, consumer_runtime, event.extra, report)
    assert str(download_dir) in consumer.xcom("download_report")


def test_manual_consumer_run_uses_the_latest_event(
    run_dag: Any,
    load_example: Any,
    emu: BctrlEmulator,
    space: str,
    consumer_runtime: str,
    download_dir: Path,
) -> None:
    _produce(run_dag, load_example, emu)
    latest, report = _produce(run_dag, load_example, emu)
    (event,) = _asset_events(f"bctrl://{space}/reports/daily", latest.run_id)

    consumer = run_dag(load_example(CONSUMER))

    assert consumer.xcom("pick_report")["found_by"] == "latest_asset_event"
    _check_consumer(consumer, emu, consumer_runtime, event.extra, report)
