"""Small helpers shared by the end-to-end tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a local file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class DagRunResult:
    """What one ``dag.test()`` run left behind: its state, task states and every XCom."""

    run_id: str
    state: str
    task_states: dict[tuple[str, int], str]
    xcoms: dict[tuple[str, int, str], Any] = field(repr=False)

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """One XCom value; ``KeyError`` naming what exists when it was never pushed."""
        try:
            return self.xcoms[(task_id, map_index, key)]
        except KeyError:
            pushed = sorted(k for k in self.xcoms if k[0] == task_id)
            raise KeyError(f"no XCom {key!r} for {task_id}[{map_index}]; pushed: {pushed}") from None

    def keys(self, task_id: str, map_index: int = -1) -> set[str]:
        """The XCom keys a task instance pushed."""
        return {k for (t, m, k) in self.xcoms if t == task_id and m == map_index}

    def map_indexes(self, task_id: str) -> list[int]:
        """The map indexes a (mapped) task ran with, sorted."""
        return sorted({m for (t, m) in self.task_states if t == task_id})


def collect_run(dag_id: str, run_id: str) -> DagRunResult:
    """Read back a finished run from the metadata DB: its state, task states and every XCom."""
    from _lines import xcom_rows_model
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    XComModel = xcom_rows_model()

    with create_session() as session:
        dagrun = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one()
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        # Plain columns, not ORM objects: 2.11's XCom deserialises ``value`` when an object loads,
        # after which deserialize_value (which expects the stored bytes) would fail.
        rows = session.execute(
            select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id
            )
        ).all()
        return DagRunResult(
            run_id=run_id,
            state=str(dagrun.state),
            task_states={(ti.task_id, ti.map_index): str(ti.state) for ti in tis},
            # XCom values are stored serialised; deserialize_value gives back what the task pushed.
            xcoms={(x.task_id, x.map_index, x.key): XComModel.deserialize_value(x) for x in rows},
        )


def finish_after_first_miss(
    emu: Any, runtime_id: str, path: str, data: bytes, *, delay_seconds: float, within: float = 180.0
) -> threading.Thread:
    """Play the browser: once a collect of ``path`` found nothing (404), make the file appear later.

    Waiting for the first miss makes the test independent of how long the tasks before the collect
    take on a busy machine. Bounded by ``within`` seconds; returns the (daemon) thread.
    """

    def watch() -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if any(
                e["route"] == "collect" and e["status"] == 404 and runtime_id in e["path"]
                for e in emu.requests_log()
            ):
                emu.write_runtime_file_later(runtime_id, path, data, delay_seconds=delay_seconds)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, name="browser-stand-in", daemon=True)
    thread.start()
    return thread
