# XComArgs (task outputs) stand in for values that Airflow resolves at run time; mypy cannot see that,
# so passing them where a str is annotated is allowed in this file.
# mypy: disable-error-code="arg-type, index"
"""Consumer of the BCTRL asset pair: runs whenever ``bctrl_asset_producer`` stored a new report.

The DAG is scheduled on the asset ``bctrl://<space_id>/reports/daily``. The producer's asset event
carries the stored file's ids in its extra, so this DAG needs no XCom from another DAG:

1. ``pick_report`` reads the ids from the event that triggered this run (``triggering_asset_events``).
   A run that no event triggered (started by hand, or with ``airflow dags test``) falls back to the
   asset's latest event, read through ``inlet_events``.
2. ``stage_report`` puts the stored file into this DAG's runtime (``inputs/``) without uploading it
   again, e.g. for a browser agent that checks it.
3. ``download_report`` streams the file to the worker, into a folder per run under ``download_dir``.

Configuration: the environment variable ``BCTRL_SPACE_ID`` (the same as the producer's: it names the
asset), params ``bctrl_conn_id``, ``runtime_id`` (empty: the Airflow Variable ``bctrl_runtime_id``)
and ``download_dir``.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

from airflow_provider_bctrl.assets import create_asset
from airflow_provider_bctrl.operators import BctrlDownloadFileOperator, BctrlStageFileOperator

#: Must name the same asset as the producer: same space, same logical path.
SPACE_ID = os.environ.get("BCTRL_SPACE_ID") or "set-BCTRL_SPACE_ID"
DAILY_REPORTS = create_asset(space_id=SPACE_ID, path="reports/daily")


def _usable(events: Any) -> list[Any]:
    """Events that name a stored file (an event created by hand in the UI may carry no ids)."""
    return [event for event in events if isinstance(event.extra, dict) and event.extra.get("file_id")]


def _newest(event: Any) -> Any:
    return event.timestamp


with DAG(
    dag_id="bctrl_asset_consumer",
    description="Stage and download the report named by the BCTRL asset event that triggered the run.",
    schedule=[DAILY_REPORTS],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["bctrl", "example", "assets"],
    doc_md=__doc__,
    params={
        "bctrl_conn_id": Param(
            "bctrl_default", type="string", description="Airflow connection of type bctrl."
        ),
        "runtime_id": Param(
            "",
            type="string",
            description="BCTRL runtime to stage the report into. Empty: the Airflow Variable bctrl_runtime_id.",
        ),
        "download_dir": Param(
            str(Path(tempfile.gettempdir()) / "bctrl-example-downloads"),
            type="string",
            description="Folder on the worker that receives one subfolder per run.",
        ),
    },
):

    @task(inlets=[DAILY_REPORTS], multiple_outputs=True)
    def pick_report() -> dict[str, Any]:
        """The stored report this run works on: from the triggering event, else the latest event."""
        context = get_current_context()
        triggering = [
            event for events in context["triggering_asset_events"].values() for event in _usable(events)
        ]
        # One run may consume several events (the producer ran more than once since the last
        # consumer run, or while the consumer was paused): the newest report is the one to use.
        if triggering:
            event, found_by = max(triggering, key=_newest), "triggering_asset_event"
        else:
            latest = _usable(context["inlet_events"][DAILY_REPORTS])
            if not latest:
                raise RuntimeError(f"No asset event of {DAILY_REPORTS.uri} names a stored file yet.")
            event, found_by = max(latest, key=_newest), "latest_asset_event"
        extra = event.extra
        print(f"Using file {extra['file_id']} at {extra.get('uri')} ({found_by}).")
        return {
            "file_id": extra["file_id"],
            "artifact_id": extra.get("artifact_id"),
            "path": extra.get("path"),
            "found_by": found_by,
        }

    @task
    def make_download_dir() -> str:
        """A fresh folder for this run; the trailing '/' tells the download to keep the stored name."""
        context = get_current_context()
        run_dir = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
        folder = Path(context["params"]["download_dir"]) / run_dir
        folder.mkdir(parents=True, exist_ok=True)
        return f"{folder}/"

    report = pick_report()

    BctrlStageFileOperator(
        task_id="stage_report",
        bctrl_conn_id="{{ params.bctrl_conn_id }}",
        runtime_id="{{ params.runtime_id or var.value.get('bctrl_runtime_id', '') }}",
        file_id=report["file_id"],
        runtime_path="inputs/",
    )

    BctrlDownloadFileOperator(
        task_id="download_report",
        bctrl_conn_id="{{ params.bctrl_conn_id }}",
        file_id=report["file_id"],
        destination=make_download_dir(),
    )
